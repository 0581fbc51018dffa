package health

import (
	"bytes"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/handoff"
)

// busySnap is a herd in the middle of things: a rolling restart in slot 0,
// a restart pending in slot 2, reuseport sockets and a shared one.
func busySnap() *cluster.Snapshot {
	return with(snap(worker(0, cluster.StateListening), worker(1, cluster.StateOnline), worker(2, cluster.StateStopping)), func(s *cluster.Snapshot) {
		s.Workers[2].Index = 0
		s.Desired = 3
		s.Started, s.Restarts = 9, 4
		s.Exits = cluster.ExitCounts{Success: 2, Failure: 3, Signal: 1}
		s.CPU = &cluster.CPUInfo{CPUs: 2.5, Available: 3, Source: "cgroup-v2", Workers: 3}
		s.Listeners = []cluster.ListenerInfo{
			{Address: "[::]:8080", Slot: -1, Queue: 5, Limit: 4096},
			{Address: "0.0.0.0:9000", Slot: 0, Queue: 1, Limit: 128},
			{Address: "0.0.0.0:9000", Slot: 1, Queue: 0, Limit: 128},
		}
		s.Draining = true
	})
}

var busyOpts = Options{
	Version: "v9.8.7",
	Handoffs: func() handoff.Stats {
		return handoff.Stats{Accepted: 40, HandedOff: map[int]uint64{0: 20, 1: 17, 7: 1}, Refused: 3, Queued: 2}
	},
	Orphans: func() uint64 { return 11 },
}

// scrape fetches /metrics through the handler and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, s *cluster.Snapshot, o Options) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	f := &fixture{}
	f.snap.Store(s)
	f.h = Handler(f.snap.Load, o)
	rec := f.do("GET", "/metrics")
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	text := rec.Body.String()
	mfs, err := parseText(strings.NewReader(text))
	if err != nil {
		t.Fatalf("text parser: %v\n%s", err, text)
	}
	return mfs, text
}

// parseText is the Prometheus text format parser.
func parseText(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// value finds the sample of family name whose labels are exactly labels
// (pairs of name, value).
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			if lp.GetValue() != "" {
				got[lp.GetName()] = lp.GetValue()
			}
		}
		if !maps.Equal(got, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsValues(t *testing.T) {
	mfs, text := scrape(t, busySnap(), busyOpts)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"herd_build_info", []string{"version", "v9.8.7", "goversion", runtime.Version()}, 1},
		{"herd_workers", []string{"state", "starting"}, 0},
		{"herd_workers", []string{"state", "online"}, 1},
		{"herd_workers", []string{"state", "listening"}, 1},
		{"herd_workers", []string{"state", "draining"}, 0},
		{"herd_workers", []string{"state", "stopping"}, 1},
		{"herd_workers", []string{"state", "dead"}, 1}, // slot 2 has no worker
		{"herd_workers_desired", nil, 3},
		{"herd_worker_starts_total", nil, 9},
		{"herd_worker_restarts_total", nil, 4},
		{"herd_worker_exits_total", []string{"reason", "success"}, 2},
		{"herd_worker_exits_total", []string{"reason", "failure"}, 3},
		{"herd_worker_exits_total", []string{"reason", "signal"}, 1},
		{"herd_cpu_budget_cpus", []string{"source", "cgroup-v2"}, 2.5},
		{"herd_connections_accepted_total", nil, 40},
		{"herd_connections_handed_off_total", []string{"slot", "0"}, 20},
		{"herd_connections_handed_off_total", []string{"slot", "1"}, 17},
		{"herd_connections_handed_off_total", []string{"slot", "2"}, 0}, // a current slot, none yet
		{"herd_connections_handed_off_total", []string{"slot", "7"}, 1}, // a slot scaled away since
		{"herd_connections_refused_total", nil, 3},
		{"herd_handoff_queue_connections", nil, 2},
		{"herd_listener_accept_queue_connections", []string{"listener", "[::]:8080"}, 5},
		{"herd_listener_accept_queue_limit_connections", []string{"listener", "[::]:8080"}, 4096},
		{"herd_listener_accept_queue_connections", []string{"listener", "0.0.0.0:9000", "slot", "0"}, 1},
		{"herd_listener_accept_queue_connections", []string{"listener", "0.0.0.0:9000", "slot", "1"}, 0},
		{"herd_listener_accept_queue_limit_connections", []string{"listener", "0.0.0.0:9000", "slot", "1"}, 128},
		{"herd_orphans_reaped_total", nil, 11},
		{"herd_draining", nil, 1},
		{"herd_heartbeat_timestamp_seconds", nil, float64(t0.Unix())},
	}
	for _, tt := range tests {
		got, ok := value(t, mfs, tt.name, tt.labels...)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// Counters are counters and end in _total; everything of herd's is
	// prefixed; labels come from fixed sets or slot indexes, never pids.
	allowed := []string{"state", "reason", "source", "slot", "listener", "version", "goversion"}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "herd_") {
			continue
		}
		if (mf.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %v", name, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(allowed, lp.GetName()) {
					t.Errorf("%s has label %s", name, lp.GetName())
				}
			}
		}
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_open_fds", "go_goroutines", "go_info"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("no %s: the process and Go collectors are missing", name)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// TestMetricsLint runs promlint (testutil.GatherAndLint) over every state
// the collector can be in.
func TestMetricsLint(t *testing.T) {
	for name, tc := range map[string]struct {
		s *cluster.Snapshot
		o Options
	}{
		"busy":           {busySnap(), busyOpts},
		"before publish": {nil, busyOpts},
		"no totals":      {snap(worker(0, cluster.StateListening)), Options{}},
	} {
		t.Run(name, func(t *testing.T) {
			s := tc.s
			reg := newRegistry(func() *cluster.Snapshot { return s }, tc.o.withDefaults())
			problems, err := testutil.GatherAndLint(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("promlint: %s: %s", p.Metric, p.Text)
			}
			// The registry is herd's own: nothing reaches the global one.
			var buf bytes.Buffer
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := parseText(&buf); err != nil {
				t.Errorf("parse: %v", err)
			}
		})
	}
}

// TestMetricsPartial: before the first publish only what does not need a
// snapshot is there; without hand-off totals (not wired) no connection
// metrics; without a budget no CPU gauge.
func TestMetricsPartial(t *testing.T) {
	mfs, _ := scrape(t, nil, busyOpts)
	for _, name := range []string{"herd_workers", "herd_workers_desired", "herd_worker_exits_total", "herd_draining"} {
		if _, ok := mfs[name]; ok {
			t.Errorf("%s before the first publish", name)
		}
	}
	for _, name := range []string{"herd_build_info", "herd_orphans_reaped_total", "herd_connections_accepted_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("no %s before the first publish", name)
		}
	}
	mfs, _ = scrape(t, snap(worker(0, cluster.StateListening)), Options{})
	for _, name := range []string{"herd_connections_accepted_total", "herd_connections_handed_off_total", "herd_orphans_reaped_total",
		"herd_cpu_budget_cpus", "herd_listener_accept_queue_connections"} {
		if _, ok := mfs[name]; ok {
			t.Errorf("%s without its source", name)
		}
	}
	if v, ok := value(t, mfs, "herd_workers", "state", "listening"); !ok || v != 1 {
		t.Errorf("herd_workers{state=listening} = %v %v", v, ok)
	}
}

// TestMetricsReadEachScrape: nothing is cached between scrapes.
func TestMetricsReadEachScrape(t *testing.T) {
	var handed uint64
	f := &fixture{}
	f.snap.Store(snap(worker(0, cluster.StateListening)))
	f.h = Handler(f.snap.Load, Options{Handoffs: func() handoff.Stats {
		return handoff.Stats{Accepted: handed, HandedOff: map[int]uint64{0: handed}}
	}})
	for _, n := range []uint64{0, 1, 5} {
		handed = n
		text := f.do("GET", "/metrics").Body.String()
		mfs, err := parseText(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := value(t, mfs, "herd_connections_handed_off_total", "slot", "0"); !ok || v != float64(n) {
			t.Errorf("after %d hand-offs: %v %v", n, v, ok)
		}
	}
	f.snap.Store(with(snap(worker(0, cluster.StateDead)), func(s *cluster.Snapshot) { s.Time = t0.Add(time.Second) }))
	mfs, _ := parseText(strings.NewReader(f.do("GET", "/metrics").Body.String()))
	if v, _ := value(t, mfs, "herd_workers", "state", "listening"); v != 0 {
		t.Errorf("listening after the worker died: %v", v)
	}
}
