package cluster

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/reaper"
)

// superviseScript runs sh -c script under a supervisor until it returns, and
// returns the supervisor (for its last Snapshot) and the result.
func superviseScript(t *testing.T, cfg Config, script string) (*Supervisor, Result) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(&logBuf{}, nil))
	r := reaper.New(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	cfg.Path, cfg.Args = "/bin/sh", []string{"sh", "-c", script}
	cfg.Env = os.Environ()
	cfg.Backoff = Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond, Reset: time.Minute}
	cfg.ShutdownTimeout = 10 * time.Second
	sup := New(cfg, r, log)
	done := make(chan Result, 1)
	go func() { done <- sup.Run(make(chan os.Signal)) }()
	select {
	case res := <-done:
		return sup, res
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not return")
	}
	return nil, Result{}
}

// TestSnapshotExits: every exit is counted by reason, each slot keeps its
// last, and Summary says so.
func TestSnapshotExits(t *testing.T) {
	t.Run("one slot restarted", func(t *testing.T) {
		sup, res := superviseScript(t, Config{Workers: 1, Restart: RestartOnFailure},
			`case $HERD_WORKER_ID in 1) exit 3;; 2) kill -KILL $$;; *) exit 0;; esac`)
		s := sup.Snapshot()
		if res.Code != 0 {
			t.Errorf("code %d, want 0", res.Code)
		}
		if s.Exits != (ExitCounts{Success: 1, Failure: 1, Signal: 1}) || s.Exits.Total() != 3 || s.Restarts != 2 || s.Started != 3 {
			t.Errorf("exits %+v, restarts %d, started %d; want 1 of each, 2, 3", s.Exits, s.Restarts, s.Started)
		}
		if len(s.Slots) != 1 || s.Slots[0].LastExit == nil {
			t.Fatalf("slots %+v", s.Slots)
		}
		if e := s.Slots[0].LastExit; e.ID != 3 || e.Code != 0 || e.Signal != "" || e.Pid <= 0 || e.Time.IsZero() || e.String() != "exit 0" {
			t.Errorf("last exit %+v", e)
		}
		sum := s.Summary(16)
		for _, want := range []string{"workers: 1 desired, 3 started, 2 restarts after failure; exits: 1 with code 0, 1 non-zero, 1 by signal\n",
			"last exits: slot 0 worker 3 (pid "} {
			if !strings.Contains(sum, want) {
				t.Errorf("summary %q lacks %q", sum, want)
			}
		}
	})
	t.Run("code and signal per slot", func(t *testing.T) {
		sup, res := superviseScript(t, Config{Workers: 3, Restart: RestartNever},
			`case $HERD_WORKER_INDEX in 0) exit 4;; 1) sleep 0.2; kill -TERM $$;; *) sleep 0.4; exit 0;; esac`)
		s := sup.Snapshot()
		if res.Code != 4 {
			t.Errorf("code %d, want 4", res.Code)
		}
		want := []string{"exit 4", "signal SIGTERM", "exit 0"}
		for i, sl := range s.Slots {
			if sl.LastExit == nil || sl.LastExit.String() != want[i] {
				t.Errorf("slot %d last exit %+v, want %s", i, sl.LastExit, want[i])
			}
		}
		if e := s.Slots[1].LastExit; e == nil || e.Code != 143 {
			t.Errorf("slot 1 exit %+v, want code 143", e)
		}
		sum := s.Summary(2)
		if !strings.Contains(sum, "exit 4; slot 1 worker 2 (pid ") || !strings.Contains(sum, "signal SIGTERM; ...\n") || strings.Contains(sum, "slot 2") {
			t.Errorf("summary limited to 2 slots: %q", sum)
		}
	})
}

// TestReadQueues: the accept queue of a listening socket, from TCP_INFO,
// counts the connections the kernel completed and nobody accepted, and
// its limit is the backlog; unix and closed sockets are left out.
func TestReadQueues(t *testing.T) {
	bind := func(addr string, backlog int, reuse bool) *listen.Listener {
		t.Helper()
		specs, err := listen.Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		l, err := specs[0].Bind(backlog, reuse)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	shared := bind("127.0.0.1:0", 8, false)
	own := bind("127.0.0.1:0", 16, true)
	closed := bind("127.0.0.1:0", 8, false)
	_ = closed.Close()
	sock := bind("unix://"+filepath.Join(t.TempDir(), "q.sock"), 8, false)
	s := &Supervisor{cfg: Config{Listeners: []*listen.Listener{shared, closed, sock}}, slots: []*slot{{index: 1, sockets: []*listen.Listener{own}}}}

	const k = 3
	for range k {
		c, err := net.Dial("tcp", shared.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var got []ListenerInfo
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = s.readQueues(); len(got) == 2 && got[0].Queue == k {
			break
		}
	}
	want := []ListenerInfo{
		{Address: shared.Addr.String(), Slot: -1, Queue: k, Limit: 8},
		{Address: own.Addr.String(), Slot: 1, Queue: 0, Limit: 16},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("readQueues = %+v, want %+v", got, want)
	}
}

// TestPublishReadsQueuesAtMostEvery: publish, which follows every event,
// reads the sockets only once per queueEvery and never changes a slice it
// published.
func TestPublishReadsQueuesAtMostEvery(t *testing.T) {
	specs, err := listen.Parse("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := specs[0].Bind(8, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := New(Config{Listeners: []*listen.Listener{l}, Policy: PolicyNone}, nil, slog.New(slog.NewTextHandler(&logBuf{}, nil)))
	first := s.Snapshot()
	if len(first.Listeners) != 1 || first.Listeners[0].Queue != 0 || first.Policy != PolicyNone {
		t.Fatalf("first snapshot: %+v", first)
	}
	c, err := net.Dial("tcp", l.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(20 * time.Millisecond)
	s.queuesRead = time.Now() // as if just read
	s.publish()
	if q := s.Snapshot().Listeners[0].Queue; q != 0 {
		t.Errorf("queue read again within queueEvery: %d", q)
	}
	s.queuesRead = time.Now().Add(-queueEvery)
	s.publish()
	if q := s.Snapshot().Listeners[0].Queue; q != 1 {
		t.Errorf("queue %d after queueEvery, want 1", q)
	}
	if first.Listeners[0].Queue != 0 {
		t.Errorf("a published snapshot changed")
	}
}
