package acceptance

// herd's probe server: /startupz, /readyz, /livez, /status and /metrics.

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herd-sh/herd/health"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// probeURL waits for herd's "serving probes" line and returns the base URL.
func probeURL(t *testing.T, r *herdRun) string {
	t.Helper()
	return "http://" + r.waitLog("serving probes").str("address")
}

// get fetches path from the probe server.
func (r *service) get(path string) (int, string, error) {
	return get(r.probeClient, "http://"+r.probe+path)
}

// expect checks that path answers code with a body that contains each of
// parts ("ok\n" must be the whole body).
func (r *service) expect(t *testing.T, step, path string, code int, parts ...string) string {
	t.Helper()
	got, body, err := r.get(path)
	if err != nil {
		t.Errorf("%s: GET %s: %v", step, path, err)
		return ""
	}
	if got != code {
		t.Errorf("%s: GET %s = %d %q, want %d", step, path, got, body, code)
	}
	for _, p := range parts {
		if p == "ok\n" && body != p || !strings.Contains(body, p) {
			t.Errorf("%s: GET %s = %q, want %q in it", step, path, body, p)
		}
	}
	return body
}

// status fetches and decodes /status.
func (r *service) status(t *testing.T) health.Status {
	t.Helper()
	code, body, err := r.get("/status")
	if err != nil {
		t.Fatalf("/status: %v", err)
	}
	var st health.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Snapshot == nil {
		t.Fatalf("/status (%d): %v\n%s", code, err, body)
	}
	return st
}

// waitStatus polls /status until ok accepts it; after hangGuard, or when
// herd exits, it fails the test with the last workers /status showed.
func (r *service) waitStatus(t *testing.T, what string, ok func(health.Status) bool) health.Status {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		st := r.status(t)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) || r.exited() {
			b, _ := json.MarshalIndent(st.Workers, "", " ")
			t.Fatalf("/status never showed %s (herd exited: %v); desired %d, workers: %s", what, r.exited(), st.Snapshot.Desired, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listeningPids are the pids of the workers /status shows listening, sorted.
func listeningPids(st health.Status) []int {
	var pids []int
	for _, w := range st.Snapshot.Workers {
		if w.State == "listening" {
			pids = append(pids, w.Pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// row is the /status row of the worker in slot (its last, by id).
func row(st health.Status, slot int) (health.WorkerStatus, bool) {
	var w health.WorkerStatus
	found := false
	for _, x := range st.Workers {
		if x.Slot == slot {
			w, found = x, true
		}
	}
	return w, found
}

// waitHandedOff polls /metrics until the hand-off totals reach want (a
// worker's acknowledgement may come after its answer), then checks they
// stay there: each connection is counted exactly once.
func (r *service) waitHandedOff(t *testing.T, step string, want float64) scrape {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	var m scrape
	for {
		m = r.metrics(t)
		if m.sum("herd_connections_handed_off_total") >= want && m.sum("herd_connections_accepted_total") >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: handed off %v, accepted %v; want %v", step, m.sum("herd_connections_handed_off_total"), m.sum("herd_connections_accepted_total"), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	m = r.metrics(t)
	if h, a := m.sum("herd_connections_handed_off_total"), m.sum("herd_connections_accepted_total"); h != want || a != want {
		t.Errorf("%s: handed off %v, accepted %v; want exactly %v of each", step, h, a, want)
	}
	return m
}

// scrape is one parsed /metrics answer.
type scrape struct {
	text string
	mfs  map[string]*dto.MetricFamily
}

// metrics fetches /metrics and parses it with the Prometheus text parser.
func (r *service) metrics(t *testing.T) scrape {
	t.Helper()
	code, b, err := r.get("/metrics")
	if err != nil && code == 0 {
		t.Fatalf("/metrics: %v", err)
	}
	if err != nil || code != 200 {
		t.Fatalf("/metrics = %d, %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, b)
	}
	return scrape{text: b, mfs: mfs}
}

// value is the sample of name whose labels are exactly labels (pairs);
// ok is false when there is none.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	mf := s.mfs[name]
	if mf == nil {
		return 0, false
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
		if m.Counter != nil {
			return m.GetCounter().GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// sum adds every sample of name.
func (s scrape) sum(name string) float64 {
	var n float64
	if mf := s.mfs[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return n
}

// want checks samples: name, labels (pairs), value, in triples of a
// metric string such as `herd_workers{state="listening"}`.
func (s scrape) want(t *testing.T, step string, want map[string]float64) {
	t.Helper()
	for key, v := range want {
		name, labels := parseMetricKey(key)
		got, ok := s.value(name, labels...)
		if !ok || got != v {
			t.Errorf("%s: %s = %v (present %v), want %v", step, key, got, ok, v)
		}
	}
}

// parseMetricKey splits `name{a="x",b="y"}` into the name and label pairs.
func parseMetricKey(key string) (string, []string) {
	name, rest, ok := strings.Cut(key, "{")
	if !ok {
		return key, nil
	}
	var labels []string
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		labels = append(labels, k, strings.Trim(v, `"`))
	}
	return name, labels
}

// lint runs promlint (testutil.GatherAndLint) over the parsed answer.
func (s scrape) lint(t *testing.T) {
	t.Helper()
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		out := make([]*dto.MetricFamily, 0, len(s.mfs))
		for _, name := range slices.Sorted(maps.Keys(s.mfs)) {
			out = append(out, s.mfs[name])
		}
		return out, nil
	})
	problems, err := testutil.GatherAndLint(g)
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

var metricName = regexp.MustCompile("`(herd_[a-z0-9_]+)")

// checkDocumented: every metric of herd's that /metrics serves is in the
// README, and the README names no metric that /metrics lacks.
func checkDocumented(t *testing.T, m scrape) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]bool{}
	for _, sm := range metricName.FindAllStringSubmatch(string(b), -1) {
		doc[sm[1]] = true
	}
	for name := range m.mfs {
		if strings.HasPrefix(name, "herd_") && !doc[name] {
			t.Errorf("README does not document %s", name)
		}
	}
	for name := range doc {
		if _, ok := m.mfs[name]; !ok {
			t.Errorf("README documents %s, which /metrics does not serve", name)
		}
	}
}
