package health

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/handoff"
)

// fixture is a handler over a snapshot and a clock the test moves.
type fixture struct {
	snap atomic.Pointer[cluster.Snapshot]
	now  atomic.Int64 // nanoseconds after t0
	h    http.Handler
}

func newFixture(s *cluster.Snapshot) *fixture {
	f := &fixture{}
	f.snap.Store(s)
	f.h = Handler(f.snap.Load, Options{
		LivenessGrace: 30 * time.Second,
		Now:           func() time.Time { return t0.Add(time.Duration(f.now.Load())) },
	})
	return f
}

func (f *fixture) do(method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestProbeEndpoints(t *testing.T) {
	L, O := cluster.StateListening, cluster.StateOnline
	good := snap(worker(0, L), worker(1, L))
	starting := with(snap(worker(0, L), worker(1, O), worker(2, O), worker(3, cluster.StateStarting)), func(s *cluster.Snapshot) {
		s.StartedUp = false
		s.Workers[1].Listening = t0
	})
	draining := with(snap(worker(0, L)), func(s *cluster.Snapshot) { s.Draining = true })
	down := with(snap(worker(0, cluster.StateDead)), func(s *cluster.Snapshot) {
		s.LastListening = t0.Add(-45 * time.Second)
		s.Slots[0].CrashLoop = true
	})
	tests := []struct {
		name   string
		snap   *cluster.Snapshot
		now    time.Duration // after t0
		target string
		code   int
		body   string
	}{
		{"livez ok", good, 0, "/livez", 200, "ok\n"},
		{"readyz ok", good, 0, "/readyz", 200, "ok\n"},
		{"startupz ok", good, 0, "/startupz", 200, "ok\n"},
		{"livez verbose ok", good, 0, "/livez?verbose", 200, "[+]heartbeat ok\n[+]listening ok\nlivez check passed\n"},
		{"readyz verbose ok", good, 0, "/readyz?verbose=1", 200,
			"[+]heartbeat ok\n[+]started ok\n[+]shutdown ok\n[+]listening ok\nreadyz check passed\n"},
		{"startupz verbose ok", good, 0, "/startupz?verbose", 200, "[+]started ok\nstartupz check passed\n"},

		{"startupz starting", starting, 0, "/startupz", 503, "2 of 4 workers of the first cohort have listened\n"},
		{"startupz starting verbose", starting, 0, "/startupz?verbose", 503,
			"[-]started failed: 2 of 4 workers of the first cohort have listened\nstartupz check failed\n"},
		{"readyz starting", starting, 0, "/readyz", 503, "2 of 4 workers of the first cohort have listened\n"},
		{"livez starting", starting, 0, "/livez", 200, "ok\n"},

		{"readyz draining", draining, 0, "/readyz", 503, "draining: herd received a stop signal (SIGTERM or SIGINT)\n"},
		{"readyz draining verbose", draining, 0, "/readyz?verbose", 503,
			"[+]heartbeat ok\n[+]started ok\n[-]shutdown failed: draining: herd received a stop signal (SIGTERM or SIGINT)\n[+]listening ok\nreadyz check failed\n"},
		{"livez draining", draining, 0, "/livez", 200, "ok\n"},

		{"readyz crash loop", down, 0, "/readyz", 503, "0 workers listening, 1 needed; slot 0 in a crash loop\n"},
		{"livez crash loop", down, 0, "/livez", 503, "no worker has been listening for 45s (HERD_LIVENESS_GRACE=30s); slot 0 in a crash loop\n"},
		{"livez crash loop verbose", down, 0, "/livez?verbose", 503,
			"[+]heartbeat ok\n[-]listening failed: no worker has been listening for 45s (HERD_LIVENESS_GRACE=30s); slot 0 in a crash loop\nlivez check failed\n"},

		{"livez stuck", good, 12 * time.Second, "/livez", 503, "supervisor stuck: last heartbeat 12s ago (limit 5s)\n"},
		{"readyz stuck", good, 12 * time.Second, "/readyz", 503, "supervisor stuck: last heartbeat 12s ago (limit 5s)\n"},
		{"startupz stuck stays started", good, 12 * time.Second, "/startupz", 200, "ok\n"},
		{"livez stuck and down", down, 12 * time.Second, "/livez", 503,
			"supervisor stuck: last heartbeat 12s ago (limit 5s)\nno worker has been listening for 57s (HERD_LIVENESS_GRACE=30s); slot 0 in a crash loop\n"},

		{"startupz no snapshot", nil, 0, "/startupz", 503, noSnapshot + "\n"},
		{"readyz no snapshot", nil, 0, "/readyz", 503, noSnapshot + "\n"},
		{"readyz no snapshot verbose", nil, 0, "/readyz?verbose", 503,
			"[-]heartbeat failed: " + noSnapshot + "\n[-]started failed: " + noSnapshot + "\n[+]shutdown ok\n[-]listening failed: " + noSnapshot + "\nreadyz check failed\n"},
		{"livez no snapshot within grace", nil, 30 * time.Second, "/livez", 200, "ok\n"},
		{"livez no snapshot past grace", nil, 31 * time.Second, "/livez", 503,
			"supervisor stuck: no state published 31s after start (HERD_LIVENESS_GRACE=30s)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.snap)
			f.now.Store(int64(tt.now))
			rec := f.do("GET", tt.target)
			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.target, rec.Code, rec.Body, tt.code, tt.body)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
		})
	}
}

// TestHandlerReadsEachRequest: the handler holds no state of its own; each
// request sees the snapshot published last.
func TestHandlerReadsEachRequest(t *testing.T) {
	f := newFixture(nil)
	if rec := f.do("GET", "/readyz"); rec.Code != 503 {
		t.Fatalf("before publish: %d", rec.Code)
	}
	f.snap.Store(snap(worker(0, cluster.StateListening)))
	if rec := f.do("GET", "/readyz"); rec.Code != 200 {
		t.Fatalf("after publish: %d %q", rec.Code, rec.Body)
	}
	f.snap.Store(with(snap(worker(0, cluster.StateListening)), func(s *cluster.Snapshot) { s.Draining = true }))
	if rec := f.do("GET", "/readyz"); rec.Code != 503 {
		t.Fatalf("after SIGTERM: %d", rec.Code)
	}
}

func TestMethods(t *testing.T) {
	f := newFixture(snap(worker(0, cluster.StateListening)))
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		if rec := f.do(method, "/metrics"); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /metrics = %d, want 405", method, rec.Code)
		}
	}
	for _, path := range []string{"/", "/livez", "/readyz", "/startupz", "/status"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			rec := f.do(method, path)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d, Allow %q; want 405, GET, HEAD", method, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
		get, head := f.do("GET", path), f.do("HEAD", path)
		if head.Code != get.Code || head.Body.Len() != 0 {
			t.Errorf("HEAD %s = %d with %d body bytes; GET = %d", path, head.Code, head.Body.Len(), get.Code)
		}
		if cl := head.Header().Get("Content-Length"); cl != get.Header().Get("Content-Length") || cl == "0" {
			t.Errorf("HEAD %s Content-Length %q, GET %q", path, cl, get.Header().Get("Content-Length"))
		}
	}
}

func TestIndexAndNotFound(t *testing.T) {
	f := newFixture(nil)
	rec := f.do("GET", "/")
	if rec.Code != 200 {
		t.Fatalf("GET / = %d", rec.Code)
	}
	for _, p := range []string{"/livez", "/readyz", "/startupz", "/status", "/metrics", "?verbose", "?exclude="} {
		if !strings.Contains(rec.Body.String(), p) {
			t.Errorf("index does not list %s:\n%s", p, rec.Body)
		}
	}
	for _, p := range []string{"/healthz", "/livez/", "/readyz/heartbeat", "/metrics/", "/index.html"} {
		rec := f.do("GET", p)
		if rec.Code != 404 || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s = %d, Cache-Control %q; want 404, no-store", p, rec.Code, rec.Header().Get("Cache-Control"))
		}
	}
}

func TestStatus(t *testing.T) {
	s := with(snap(worker(0, cluster.StateListening), worker(1, cluster.StateDead)), func(s *cluster.Snapshot) {
		s.Draining = true
		s.Restarts = 7
		s.Slots[1].CrashLoop = true
		s.Slots[1].Restarts = 7
		s.Workers[0].Status = "serving"
	})
	f := newFixture(s)
	rec := f.do("GET", "/status")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /status = %d, headers %v", rec.Code, rec.Header())
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, rec.Body)
	}
	if !st.Started || st.Ready || !st.Live || st.Listening != 1 {
		t.Errorf("started %v ready %v live %v listening %d; want true false true 1", st.Started, st.Ready, st.Live, st.Listening)
	}
	wantReasons := map[string]string{"ready": "draining: herd received a stop signal (SIGTERM or SIGINT)"}
	if !equal(st.Reasons, wantReasons) {
		t.Errorf("reasons %q, want %q", st.Reasons, wantReasons)
	}
	if len(st.Checks["started"]) != 1 || len(st.Checks["ready"]) != 4 || len(st.Checks["live"]) != 2 {
		t.Errorf("checks %+v", st.Checks)
	}
	got := st.Snapshot
	if got == nil || !got.Time.Equal(s.Time) || got.Restarts != 7 || len(got.Workers) != 2 || got.Workers[0].Status != "serving" ||
		!got.Slots[1].CrashLoop || !got.Draining || !got.StartedUp || got.Started != 2 {
		t.Errorf("snapshot %+v", got)
	}

	// The keys: the probe results on top, the snapshot under "snapshot"
	// with cluster.Snapshot's own names.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "policy", "cpu", "desired", "actual", "listening", "started", "ready", "live", "reasons",
		"workers", "connections", "checks", "snapshot"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q in %s", k, rec.Body)
		}
	}
	var snapKeys map[string]json.RawMessage
	if err := json.Unmarshal(top["snapshot"], &snapKeys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "desired", "workers", "slots", "started", "restarts", "exits", "started_up", "last_listening",
		"draining", "policy", "cpu", "listeners"} {
		if _, ok := snapKeys[k]; !ok {
			t.Errorf("no %q in snapshot %s", k, top["snapshot"])
		}
	}
}

func TestStatusBeforePublish(t *testing.T) {
	f := newFixture(nil)
	rec := f.do("GET", "/status")
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, rec.Body)
	}
	if st.Snapshot != nil || st.Started || st.Ready || !st.Live || st.Reasons["ready"] != noSnapshot || st.Reasons["started"] != noSnapshot {
		t.Errorf("status before publish: %s", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), `"snapshot": null`) {
		t.Errorf("snapshot not null: %s", rec.Body)
	}
}

func TestHandlerNilSnap(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler(nil, ...) did not panic")
		}
	}()
	Handler(nil, Options{})
}

// TestExclude: ?exclude=name skips a check as the kube-apiserver does: one
// name per parameter, repeatable; the skipped check passes and ?verbose
// shows it as "[+]name excluded: ok"; a name matching no check changes
// nothing but a warning under ?verbose (k8s.io/apiserver's healthz
// handler behaves so).
func TestExclude(t *testing.T) {
	L := cluster.StateListening
	good := snap(worker(0, L))
	draining := with(snap(worker(0, L)), func(s *cluster.Snapshot) { s.Draining = true })
	down := with(snap(worker(0, cluster.StateDead)), func(s *cluster.Snapshot) { s.LastListening = t0.Add(-45 * time.Second) })
	starting := with(snap(worker(0, cluster.StateOnline)), func(s *cluster.Snapshot) { s.StartedUp = false })
	const drainMsg = "draining: herd received a stop signal (SIGTERM or SIGINT)"
	tests := []struct {
		name   string
		snap   *cluster.Snapshot
		now    time.Duration
		target string
		code   int
		body   string
	}{
		{"failing check excluded", draining, 0, "/readyz?exclude=shutdown", 200, "ok\n"},
		{"failing check excluded, verbose", draining, 0, "/readyz?verbose&exclude=shutdown", 200,
			"[+]heartbeat ok\n[+]started ok\n[+]shutdown excluded: ok\n[+]listening ok\nreadyz check passed\n"},
		{"passing check excluded, other still fails", draining, 0, "/readyz?exclude=listening", 503, drainMsg + "\n"},
		{"passing check excluded, verbose", draining, 0, "/readyz?exclude=listening&verbose", 503,
			"[+]heartbeat ok\n[+]started ok\n[-]shutdown failed: " + drainMsg + "\n[+]listening excluded: ok\nreadyz check failed\n"},
		{"two excluded", down, 12 * time.Second, "/livez?exclude=heartbeat&exclude=listening", 200, "ok\n"},
		{"one of two failing excluded", down, 12 * time.Second, "/livez?exclude=listening", 503,
			"supervisor stuck: last heartbeat 12s ago (limit 5s)\n"},
		{"startupz excluded", starting, 0, "/startupz?exclude=started", 200, "ok\n"},
		{"unknown name ignored", good, 0, "/readyz?exclude=etcd", 200, "ok\n"},
		{"unknown name does not pass a failing probe", draining, 0, "/readyz?exclude=etcd", 503, drainMsg + "\n"},
		{"unknown names warned once each, in order", good, 0, "/livez?verbose&exclude=zeta&exclude=etcd&exclude=zeta", 200,
			"[+]heartbeat ok\n[+]listening ok\nwarn: some health checks cannot be excluded: no matches for \"zeta\",\"etcd\"\nlivez check passed\n"},
		{"no comma lists: one name per parameter", draining, 0, "/readyz?verbose&exclude=shutdown,listening", 503,
			"[+]heartbeat ok\n[+]started ok\n[-]shutdown failed: " + drainMsg + "\n[+]listening ok\n" +
				"warn: some health checks cannot be excluded: no matches for \"shutdown,listening\"\nreadyz check failed\n"},
		{"name of another probe's check", starting, 0, "/livez?verbose&exclude=started", 200,
			"[+]heartbeat ok\n[+]listening ok\nwarn: some health checks cannot be excluded: no matches for \"started\"\nlivez check passed\n"},
		{"empty name", good, 0, "/readyz?exclude=", 200, "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.snap)
			f.now.Store(int64(tt.now))
			rec := f.do("GET", tt.target)
			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.target, rec.Code, rec.Body, tt.code, tt.body)
			}
		})
	}
	// /status judges every check whatever the query says.
	f := newFixture(draining)
	var st Status
	if err := json.Unmarshal(f.do("GET", "/status?exclude=shutdown").Body.Bytes(), &st); err != nil || st.Ready {
		t.Errorf("/status?exclude=shutdown: ready %v, err %v; want not ready", st.Ready, err)
	}
}

// TestStatusWorkers: /status has herd's version, policy, CPU budget,
// desired and actual counts, and per worker its slot, id, pid, state,
// start, restarts, last exit, hand-offs and STATUS= line; a slot without
// a worker shows as dead with its pending restart.
func TestStatusWorkers(t *testing.T) {
	L, D := cluster.StateListening, cluster.StateStopping
	killed := &cluster.Exit{Time: t0.Add(-5 * time.Second), ID: 3, Pid: 203, Code: 137, Signal: "SIGKILL"}
	failed := &cluster.Exit{Time: t0.Add(-time.Second), ID: 4, Pid: 204, Code: 3}
	s := with(snap(worker(0, L), worker(1, L), worker(2, D)), func(s *cluster.Snapshot) {
		s.Policy = cluster.PolicyRR
		s.CPU = &cluster.CPUInfo{CPUs: 1.5, Available: 1.5, Source: "cgroup-v2", Workers: 2}
		s.Desired = 3
		s.Workers[0].Status = "serving HTTP"
		s.Workers[1].ID, s.Workers[1].Pid = 5, 205 // slot 1's replacement
		s.Workers[2].Index = 0                     // slot 0's old worker, stopping during a rolling restart
		s.Workers[2].ID = 0                        // started before the others
		s.Slots[1].Restarts, s.Slots[1].LastExit = 1, killed
		s.Slots[2].Restarts, s.Slots[2].LastExit, s.Slots[2].NextStart = 2, failed, t0.Add(4*time.Second)
	})
	f := &fixture{}
	f.snap.Store(s)
	f.h = Handler(f.snap.Load, Options{
		Version: "v1.2.3",
		Now:     func() time.Time { return t0 },
		Handoffs: func() handoff.Stats {
			return handoff.Stats{Accepted: 12, HandedOff: map[int]uint64{0: 7, 1: 4}, Refused: 2, Queued: 1}
		},
	})
	rec := f.do("GET", "/status")
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, rec.Body)
	}
	if st.Version != "v1.2.3" || st.Policy != cluster.PolicyRR || st.CPU == nil || st.CPU.CPUs != 1.5 || st.CPU.Source != "cgroup-v2" ||
		st.Desired != 3 || st.Actual != 3 || st.Listening != 2 {
		t.Errorf("summary: version %q policy %q cpu %+v desired %d actual %d listening %d", st.Version, st.Policy, st.CPU, st.Desired, st.Actual, st.Listening)
	}
	if c := st.Connections; c == nil || *c != (Connections{Accepted: 12, HandedOff: 11, Refused: 2, Queued: 1}) {
		t.Errorf("connections %+v", c)
	}
	type row struct {
		slot, id, pid int
		state         cluster.State
		restarts      int
		exit          *cluster.Exit
		handed        uint64
		status        string
		next          time.Time
	}
	want := []row{
		{0, 0, 102, D, 0, nil, 7, "", time.Time{}},
		{0, 1, 100, L, 0, nil, 7, "serving HTTP", time.Time{}},
		{1, 5, 205, L, 1, killed, 4, "", time.Time{}},
		{2, 0, 0, cluster.StateDead, 2, failed, 0, "", t0.Add(4 * time.Second)},
	}
	if len(st.Workers) != len(want) {
		t.Fatalf("%d worker rows, want %d: %+v", len(st.Workers), len(want), st.Workers)
	}
	for i, w := range want {
		g := st.Workers[i]
		got := row{g.Slot, g.ID, g.Pid, g.State, g.Restarts, g.LastExit, g.HandedOff, g.Status, g.NextStart}
		sameExit := (got.exit == nil) == (w.exit == nil) && (w.exit == nil || (got.exit.Code == w.exit.Code && got.exit.Signal == w.exit.Signal &&
			got.exit.ID == w.exit.ID && got.exit.Pid == w.exit.Pid && got.exit.Time.Equal(w.exit.Time)))
		got.exit, w.exit = nil, nil
		if !sameExit || got.slot != w.slot || got.id != w.id || got.pid != w.pid || got.state != w.state || got.restarts != w.restarts ||
			got.handed != w.handed || got.status != w.status || !got.next.Equal(w.next) {
			t.Errorf("row %d = %+v (exit %+v), want %+v", i, got, g.LastExit, w)
		}
		if w.id != 0 && !g.Started.Equal(t0.Add(-time.Minute)) {
			t.Errorf("row %d started %v", i, g.Started)
		}
	}
	// The JSON a person reads: the exit by code and signal name.
	for _, frag := range []string{`"version": "v1.2.3"`, `"policy": "rr"`, `"source": "cgroup-v2"`,
		`"signal": "SIGKILL"`, `"code": 137`, `"code": 3`, `"last_exit": null`, `"handed_off": 7`, `"status": "serving HTTP"`} {
		if !strings.Contains(rec.Body.String(), frag) {
			t.Errorf("/status lacks %s:\n%s", frag, rec.Body)
		}
	}

	// Without hand-off totals, connections is null; without a budget, cpu.
	f2 := newFixture(with(snap(worker(0, L)), func(s *cluster.Snapshot) { s.CPU = nil }))
	body := f2.do("GET", "/status").Body.String()
	if !strings.Contains(body, `"connections": null`) || !strings.Contains(body, `"cpu": null`) {
		t.Errorf("/status without hand-offs or budget:\n%s", body)
	}
}
