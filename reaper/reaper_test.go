package reaper

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startSh(script string) func() (int, error) {
	return func() (int, error) {
		path, err := exec.LookPath("sh")
		if err != nil {
			return 0, err
		}
		p, err := os.StartProcess(path, []string{"sh", "-c", script}, &os.ProcAttr{})
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		return pid, p.Release()
	}
}

// A child that exits before Spawn returns must still reach its owner: the
// pid is registered under the same lock the drain takes.
func TestSpawnRegistersBeforeReap(t *testing.T) {
	r := New(quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	const n = 50
	got := make(chan Status, n)
	want := map[int]int{}
	for i := 0; i < n; i++ {
		code := i % 7
		pid, err := r.Spawn(startSh("exit "+string(rune('0'+code))), func(s Status) { got <- s })
		if err != nil {
			t.Fatal(err)
		}
		want[pid] = code
	}
	timeout := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case s := <-got:
			code, ok := want[s.Pid]
			if !ok {
				t.Fatalf("status for unknown pid %d", s.Pid)
			}
			if s.Code() != code {
				t.Errorf("pid %d: code %d, want %d", s.Pid, s.Code(), code)
			}
			delete(want, s.Pid)
		case <-timeout:
			t.Fatalf("%d statuses never arrived", len(want))
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0}, {"exit 7", 7}, {"exit 255", 255}, {"kill -TERM $$", 143}, {"kill -KILL $$", 137},
	} {
		t.Run(tc.script, func(t *testing.T) {
			r := New(quiet())
			var mu sync.Mutex
			var got *Status
			if _, err := r.Spawn(startSh(tc.script), func(s Status) { mu.Lock(); got = &s; mu.Unlock() }); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				r.Drain()
				mu.Lock()
				g := got
				mu.Unlock()
				if g != nil {
					if g.Code() != tc.want {
						t.Fatalf("code %d, want %d", g.Code(), tc.want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("no status")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// Orphans are statuses of pids nobody registered.
func TestOrphanCounted(t *testing.T) {
	r := New(quiet())
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Release()
	deadline := time.Now().Add(10 * time.Second)
	for r.Orphans() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("orphan never reaped")
		}
		r.Drain()
		time.Sleep(5 * time.Millisecond)
	}
	if left := r.Drain(); left {
		t.Fatal("Drain reports children left after the only child was reaped")
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(p.Pid, &ws, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Fatalf("child still waitable after reap: %v", err)
	}
}
