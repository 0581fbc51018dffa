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
	for _, p := range []string{"/livez", "/readyz", "/startupz", "/status"} {
		if !strings.Contains(rec.Body.String(), p) {
			t.Errorf("index does not list %s:\n%s", p, rec.Body)
		}
	}
	for _, p := range []string{"/healthz", "/livez/", "/readyz/heartbeat", "/metrics", "/index.html"} {
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
	for _, k := range []string{"started", "ready", "live", "reasons", "checks", "listening", "snapshot"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q in %s", k, rec.Body)
		}
	}
	var snapKeys map[string]json.RawMessage
	if err := json.Unmarshal(top["snapshot"], &snapKeys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "desired", "workers", "slots", "started", "restarts", "started_up", "last_listening", "draining"} {
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
