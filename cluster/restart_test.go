package cluster

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Reset: 10 * time.Second}
	quick := time.Millisecond
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	n := 0
	for i, w := range want {
		var d time.Duration
		d, n = b.Next(n, quick)
		if d != w*time.Millisecond {
			t.Fatalf("restart %d: delay %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	// A stable run resets the sequence.
	d, n := b.Next(n, 10*time.Second)
	if d != 100*time.Millisecond || n != 1 {
		t.Fatalf("after stable uptime: delay %v count %d, want 100ms and 1", d, n)
	}
	// Min 0 restarts at once, forever.
	z := Backoff{Max: time.Second, Reset: time.Second}
	for i, n := 0, 0; i < 100; i++ {
		if d, n = z.Next(n, 0); d != 0 {
			t.Fatalf("Min 0: delay %v", d)
		}
	}
	// A huge count does not overflow past Max.
	if d, _ := b.Next(1<<20, 0); d != time.Second {
		t.Fatalf("huge count: delay %v", d)
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		r       Restart
		code    int
		unasked bool // listened, then left without saying so
		want    bool
	}{
		{RestartOnFailure, 0, false, false}, {RestartOnFailure, 1, false, true}, {RestartOnFailure, 143, false, true},
		{RestartOnFailure, 0, true, true}, {RestartOnFailure, 1, true, true},
		{RestartAlways, 0, false, true}, {RestartAlways, 9, false, true},
		{RestartNever, 0, false, false}, {RestartNever, 1, false, false}, {RestartNever, 0, true, false},
	} {
		if got := tc.r.restarts(tc.code, tc.unasked); got != tc.want {
			t.Errorf("%s, code %d, unasked %v: restarts=%v, want %v", tc.r, tc.code, tc.unasked, got, tc.want)
		}
	}
	if _, err := parseRestart("sometimes"); err == nil {
		t.Error("parseRestart accepted sometimes")
	}
}

func TestProved(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name      string
		listening time.Time
		served    bool
		want      bool
	}{
		{"never listened", time.Time{}, false, false},
		{"listened a moment, no connection", now.Add(-10 * time.Millisecond), false, false},
		{"listened a moment, took a connection", now.Add(-10 * time.Millisecond), true, true},
		{"listened a second", now.Add(-servingProof), false, true},
	} {
		if got := proved(tc.listening, tc.served, now); got != tc.want {
			t.Errorf("%s: proved=%v, want %v", tc.name, got, tc.want)
		}
	}
}
