package health

import (
	"slices"
	"testing"
	"time"

	"github.com/herd-sh/herd/cluster"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// opts are the settings the table tests use.
var opts = Options{ReadyMin: 1, LivenessGrace: 30 * time.Second, StaleAfter: 5 * time.Second}.withDefaults()

func worker(index int, state cluster.State) cluster.WorkerInfo {
	w := cluster.WorkerInfo{ID: index + 1, Index: index, Pid: 100 + index, State: state, Started: t0.Add(-time.Minute)}
	if state == cluster.StateListening {
		w.Listening = t0.Add(-50 * time.Second)
	}
	return w
}

func slots(n int) []cluster.SlotInfo {
	s := make([]cluster.SlotInfo, n)
	for i := range s {
		s[i].Index = i
	}
	return s
}

// snap is a fresh snapshot of a started-up herd with the given workers.
func snap(workers ...cluster.WorkerInfo) *cluster.Snapshot {
	return &cluster.Snapshot{
		Time: t0, Desired: len(workers), Workers: workers, Slots: slots(len(workers)),
		Started: len(workers), StartedUp: true, LastListening: t0,
	}
}

func with(s *cluster.Snapshot, f func(*cluster.Snapshot)) *cluster.Snapshot {
	f(s)
	return s
}

func failed(checks []Check) map[string]string {
	m := map[string]string{}
	for _, c := range checks {
		if !c.OK {
			m[c.Name] = c.Reason
		}
	}
	return m
}

func names(checks []Check) []string {
	var out []string
	for _, c := range checks {
		out = append(out, c.Name)
	}
	return out
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestStartup(t *testing.T) {
	L, O, S := cluster.StateListening, cluster.StateOnline, cluster.StateStarting
	tests := []struct {
		name string
		snap *cluster.Snapshot
		want map[string]string // failed checks; empty: 200
	}{
		{"no snapshot", nil, map[string]string{"started": noSnapshot}},
		{"started up", snap(worker(0, L), worker(1, L)), nil},
		{"started up, then all workers gone", with(snap(worker(0, O)), func(s *cluster.Snapshot) { s.Draining = true }), nil},
		{"2 of 4", with(snap(worker(0, L), worker(1, L), worker(2, O), worker(3, S)), func(s *cluster.Snapshot) { s.StartedUp = false }),
			map[string]string{"started": "2 of 4 workers of the first cohort have listened"}},
		{"listened once, now online again", with(snap(worker(0, L), func() cluster.WorkerInfo {
			w := worker(1, O)
			w.Listening = t0.Add(-time.Second)
			return w
		}()), func(s *cluster.Snapshot) { s.StartedUp = false }),
			map[string]string{"started": "2 of 2 workers of the first cohort have listened"}},
		{"nothing started", &cluster.Snapshot{Time: t0},
			map[string]string{"started": "no worker of the first cohort has started yet"}},
		{"desired from slots", with(snap(worker(0, O), worker(1, O), worker(2, O)), func(s *cluster.Snapshot) { s.StartedUp, s.Desired = false, 0 }),
			map[string]string{"started": "0 of 3 workers of the first cohort have listened"}},
		{"crash loop", with(snap(worker(0, L), worker(1, O)), func(s *cluster.Snapshot) {
			s.StartedUp = false
			s.Slots[1].CrashLoop = true
		}), map[string]string{"started": "1 of 2 workers of the first cohort have listened; slot 1 in a crash loop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, checks := startup(tt.snap)
			if got := failed(checks); ok != (len(tt.want) == 0) || !equal(got, tt.want) {
				t.Errorf("startup = %v, failed %q; want failed %q", ok, got, tt.want)
			}
			if got := names(checks); !slices.Equal(got, []string{"started"}) {
				t.Errorf("checks %q", got)
			}
		})
	}
}

func TestReady(t *testing.T) {
	L, O, D := cluster.StateListening, cluster.StateOnline, cluster.StateDead
	tests := []struct {
		name string
		snap *cluster.Snapshot
		opts Options
		now  time.Time
		want map[string]string
	}{
		{"no snapshot", nil, opts, t0, map[string]string{"heartbeat": noSnapshot, "started": noSnapshot, "listening": noSnapshot}},
		{"one listening", snap(worker(0, L)), opts, t0, nil},
		{"one of two listening", snap(worker(0, L), worker(1, O)), opts, t0, nil},
		{"none listening", snap(worker(0, O), worker(1, D)), opts, t0,
			map[string]string{"listening": "0 workers listening, 1 needed"}},
		{"ready min 2", snap(worker(0, L), worker(1, O)), Options{ReadyMin: 2}.withDefaults(), t0,
			map[string]string{"listening": "1 worker listening, 2 needed"}},
		{"ready min above desired", snap(worker(0, L)), Options{ReadyMin: 3}.withDefaults(), t0,
			map[string]string{"listening": "1 worker listening, 3 needed (HERD_READY_MIN=3, but only 1 desired)"}},
		{"ready min 0 means 1", snap(worker(0, O)), Options{}.withDefaults(), t0,
			map[string]string{"listening": "0 workers listening, 1 needed"}},
		{"not started up", with(snap(worker(0, L), worker(1, O)), func(s *cluster.Snapshot) { s.StartedUp = false }), opts, t0,
			map[string]string{"started": "1 of 2 workers of the first cohort have listened"}},
		{"draining", with(snap(worker(0, L)), func(s *cluster.Snapshot) { s.Draining = true }), opts, t0,
			map[string]string{"shutdown": "draining: herd received a stop signal (SIGTERM or SIGINT)"}},
		{"draining, workers stopping", with(snap(worker(0, cluster.StateStopping)), func(s *cluster.Snapshot) { s.Draining = true }), opts, t0,
			map[string]string{
				"shutdown":  "draining: herd received a stop signal (SIGTERM or SIGINT)",
				"listening": "0 workers listening, 1 needed",
			}},
		{"crash loop fails readiness", with(snap(worker(0, D), worker(1, D), worker(2, D)), func(s *cluster.Snapshot) {
			s.Slots[2].CrashLoop = true
			s.Slots[0].Failing = true
			s.Slots[1].Failing = true
		}), opts, t0, map[string]string{"listening": "0 workers listening, 1 needed; slot 2 in a crash loop; slots 0, 1 failing, restarts delayed"}},
		{"crash loop of one slot of two, other listening", with(snap(worker(0, L), worker(1, D)), func(s *cluster.Snapshot) {
			s.Slots[1].CrashLoop = true
		}), opts, t0, nil},
		{"heartbeat fresh", snap(worker(0, L)), opts, t0.Add(4900 * time.Millisecond), nil},
		{"heartbeat stale", snap(worker(0, L)), opts, t0.Add(12 * time.Second),
			map[string]string{"heartbeat": "supervisor stuck: last heartbeat 12s ago (limit 5s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, checks := ready(tt.snap, tt.opts, tt.now)
			if got := failed(checks); ok != (len(tt.want) == 0) || !equal(got, tt.want) {
				t.Errorf("ready = %v, failed %q; want failed %q", ok, got, tt.want)
			}
			if got := names(checks); !slices.Equal(got, []string{"heartbeat", "started", "shutdown", "listening"}) {
				t.Errorf("checks %q", got)
			}
		})
	}
}

func TestLive(t *testing.T) {
	L, O, D := cluster.StateListening, cluster.StateOnline, cluster.StateDead
	created := t0.Add(-10 * time.Second)
	gone := func(since time.Duration, ws ...cluster.WorkerInfo) *cluster.Snapshot {
		return with(snap(ws...), func(s *cluster.Snapshot) { s.LastListening = t0.Add(-since) })
	}
	tests := []struct {
		name string
		snap *cluster.Snapshot
		now  time.Time
		want map[string]string
	}{
		{"no snapshot, within grace", nil, created.Add(30 * time.Second), nil},
		{"no snapshot, past grace", nil, created.Add(45 * time.Second),
			map[string]string{"heartbeat": "supervisor stuck: no state published 45s after start (HERD_LIVENESS_GRACE=30s)"}},
		{"listening", snap(worker(0, L)), t0, nil},
		{"stale heartbeat", snap(worker(0, L)), t0.Add(12 * time.Second),
			map[string]string{"heartbeat": "supervisor stuck: last heartbeat 12s ago (limit 5s)"}},
		{"heartbeat at the limit", snap(worker(0, L)), t0.Add(5 * time.Second),
			map[string]string{"heartbeat": "supervisor stuck: last heartbeat 5s ago (limit 5s)"}},
		{"heartbeat just stale", snap(worker(0, L)), t0.Add(5300 * time.Millisecond),
			map[string]string{"heartbeat": "supervisor stuck: last heartbeat 5.3s ago (limit 5s)"}},
		{"no heartbeat time", with(snap(worker(0, L)), func(s *cluster.Snapshot) { s.Time = time.Time{} }), t0,
			map[string]string{"heartbeat": "supervisor stuck: its state carries no heartbeat time"}},
		{"none listening, within grace", gone(30*time.Second, worker(0, O)), t0, nil},
		{"none listening, past grace", gone(45*time.Second, worker(0, D)), t0,
			map[string]string{"listening": "no worker has been listening for 45s (HERD_LIVENESS_GRACE=30s)"}},
		{"crash loop, past grace", with(gone(45*time.Second, worker(0, D)), func(s *cluster.Snapshot) { s.Slots[0].CrashLoop = true }), t0,
			map[string]string{"listening": "no worker has been listening for 45s (HERD_LIVENESS_GRACE=30s); slot 0 in a crash loop"}},
		{"crash loop of one slot, other listening", with(gone(45*time.Second, worker(0, L), worker(1, D)), func(s *cluster.Snapshot) { s.Slots[1].CrashLoop = true }), t0, nil},
		{"not started up: startupz judges", with(gone(time.Hour, worker(0, O)), func(s *cluster.Snapshot) { s.StartedUp = false }), t0, nil},
		{"draining stays live", with(gone(time.Hour, worker(0, cluster.StateStopping)), func(s *cluster.Snapshot) { s.Draining = true }), t0, nil},
		{"draining but stuck", with(snap(worker(0, cluster.StateStopping)), func(s *cluster.Snapshot) { s.Draining = true }), t0.Add(time.Minute),
			map[string]string{"heartbeat": "supervisor stuck: last heartbeat 1m0s ago (limit 5s)"}},
		{"no LastListening, worker's own Listening within grace", with(snap(func() cluster.WorkerInfo {
			w := worker(0, O)
			w.Listening = t0.Add(-20 * time.Second)
			return w
		}()), func(s *cluster.Snapshot) { s.LastListening = time.Time{} }), t0, nil},
		{"never listening after start-up", with(snap(worker(0, O)), func(s *cluster.Snapshot) { s.LastListening = time.Time{} }), t0,
			map[string]string{"listening": "no worker has been listening since start-up (HERD_LIVENESS_GRACE=30s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, checks := live(tt.snap, opts, tt.now, created)
			if got := failed(checks); ok != (len(tt.want) == 0) || !equal(got, tt.want) {
				t.Errorf("live = %v, failed %q; want failed %q", ok, got, tt.want)
			}
			if got := names(checks); !slices.Equal(got, []string{"heartbeat", "listening"}) {
				t.Errorf("checks %q", got)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.ReadyMin != 1 || o.LivenessGrace != 30*time.Second || o.StaleAfter != 5*time.Second || o.Now == nil {
		t.Errorf("defaults: %+v", o)
	}
	o = Options{ReadyMin: 3, LivenessGrace: time.Minute, StaleAfter: 2 * time.Second}.withDefaults()
	if o.ReadyMin != 3 || o.LivenessGrace != time.Minute || o.StaleAfter != 2*time.Second {
		t.Errorf("set values changed: %+v", o)
	}
	if DefaultStaleAfter <= cluster.Heartbeat {
		t.Errorf("DefaultStaleAfter %s must exceed cluster.Heartbeat %s", DefaultStaleAfter, cluster.Heartbeat)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		250 * time.Millisecond:   "250ms",
		1234 * time.Millisecond:  "1.2s",
		12400 * time.Millisecond: "12s",
		90 * time.Second:         "1m30s",
	} {
		if got := age(d).String(); got != want {
			t.Errorf("age(%s) = %s, want %s", d, got, want)
		}
	}
}
