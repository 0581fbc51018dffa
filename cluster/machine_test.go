package cluster

import (
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/notify"
	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
)

// The supervisor's rules, run against fake processes in a synctest bubble:
// time is the bubble's, so a 16 s backoff takes no time and every delay is
// exact. What the kernel does with real processes is the acceptance tests'.

// fakeProc is one process the supervisor started.
type fakeProc struct {
	pid     int
	started time.Time
	exited  func(reaper.Status)
	signals []unix.Signal
	gone    bool
}

// fakeProcs implements procs. By default a process ends at once by any
// signal whose default action ends it (TERM, INT, QUIT, KILL, ...); ignore
// lists signals its processes catch and survive.
type fakeProcs struct {
	mu     sync.Mutex
	next   int
	byPid  map[int]*fakeProc
	order  []*fakeProc
	ignore map[unix.Signal]bool
	// memory: each process's size, the working set, the OOM kills
	mem  map[int]int64
	ws   int64
	ooms uint64
}

func newFakeProcs() *fakeProcs {
	return &fakeProcs{next: 100, byPid: map[int]*fakeProc{}, ignore: map[unix.Signal]bool{}, mem: map[int]int64{}}
}

func (f *fakeProcs) start(path string, argv []string, attr *syscall.ProcAttr, exited func(reaper.Status)) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := &fakeProc{pid: f.next, started: time.Now(), exited: exited}
	f.byPid[p.pid] = p
	f.order = append(f.order, p)
	return p.pid, nil
}

func (f *fakeProcs) kill(pid int, sig unix.Signal) error {
	f.mu.Lock()
	p := f.byPid[max(pid, -pid)]
	if p == nil || p.gone {
		f.mu.Unlock()
		return unix.ESRCH
	}
	p.signals = append(p.signals, sig)
	ends := sig == unix.SIGKILL || !f.ignore[sig] && (sig == unix.SIGTERM || sig == unix.SIGINT || sig == unix.SIGQUIT)
	f.mu.Unlock()
	if ends {
		f.end(p.pid, unix.WaitStatus(sig))
	}
	return nil
}

func (f *fakeProcs) descendants(bool) ([]initproc.Proc, bool) { return nil, true }

func (f *fakeProcs) sizes(pids []int) map[int]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]int64{}
	for _, pid := range pids {
		if n, ok := f.mem[pid]; ok {
			out[pid] = n
		}
	}
	return out
}

func (f *fakeProcs) workingSet(string, int) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ws, true
}

func (f *fakeProcs) oomKills(string, int) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ooms, true
}

// setMemory sets pid's size and the working set.
func (f *fakeProcs) setMemory(pid int, size, ws int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mem[pid] = size
	f.ws = ws
}
func (f *fakeProcs) childrenLeft() bool { return false }
func (f *fakeProcs) reap()              {}

// end makes pid exit with status ws (exit code n is WaitStatus(n<<8)).
func (f *fakeProcs) end(pid int, ws unix.WaitStatus) {
	f.mu.Lock()
	p := f.byPid[pid]
	if p == nil || p.gone {
		f.mu.Unlock()
		return
	}
	p.gone = true
	f.mu.Unlock()
	p.exited(reaper.Status{Pid: pid, Wait: ws})
}

// exit makes pid exit with code.
func (f *fakeProcs) exit(pid, code int) { f.end(pid, unix.WaitStatus(code<<8)) }

// live lists the processes still running, in start order.
func (f *fakeProcs) live() []*fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeProc
	for _, p := range f.order {
		if !p.gone {
			out = append(out, p)
		}
	}
	return out
}

// all lists every process started, in order.
func (f *fakeProcs) all() []*fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

func (f *fakeProcs) signalsOf(pid int) []unix.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.byPid[pid].signals)
}

// machine is one supervisor in a bubble, with its fakes.
type machine struct {
	t       *testing.T
	f       *fakeProcs
	s       *Supervisor
	sigs    chan os.Signal
	notes   chan notify.Message
	result  chan Result
	budgets chan cpus.Result
}

// boot starts a supervisor of cfg (defaults filled in) in the bubble and
// waits until its first workers are started.
func boot(t *testing.T, cfg Config) *machine {
	t.Helper()
	m := &machine{t: t, f: newFakeProcs(), sigs: make(chan os.Signal, 8), notes: make(chan notify.Message),
		result: make(chan Result, 1)}
	cfg.Path, cfg.Args = "/app", []string{"app"}
	cfg.Ready = ReadyNotify
	cfg.Notes = m.notes
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Restart == "" {
		cfg.Restart = RestartOnFailure
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Min: 250 * time.Millisecond, Max: 16 * time.Second, Reset: 30 * time.Second}
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	m.s = newSupervisor(cfg, m.f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { m.result <- m.s.Run(m.sigs) }()
	synctest.Wait()
	return m
}

// ready has pid say READY=1, and lets the supervisor act on it.
func (m *machine) ready(pid int) {
	m.notes <- notify.Message{Pid: pid, Ready: true}
	synctest.Wait()
}

// signal sends sig to herd and lets it act.
func (m *machine) signal(sig unix.Signal) {
	m.sigs <- sig
	synctest.Wait()
}

// after lets d of the bubble's time pass.
func (m *machine) after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// exit has pid exit with code, and lets the supervisor act on it.
func (m *machine) exit(pid, code int) {
	m.f.exit(pid, code)
	synctest.Wait()
}

// restarted lets time pass until slot's pending restart has come (none
// pending: no time passes) and returns the new worker.
func (m *machine) restarted(slot int) *fakeProc {
	m.t.Helper()
	if next := m.s.Snapshot().Slots[slot].NextStart; !next.IsZero() {
		m.after(time.Until(next))
	}
	return m.only()
}

// only returns the one live process, failing unless there is exactly one.
func (m *machine) only() *fakeProc {
	m.t.Helper()
	live := m.f.live()
	if len(live) != 1 {
		m.t.Fatalf("%d processes running, want 1", len(live))
	}
	return live[0]
}

// end stops herd with SIGTERM and returns its result.
func (m *machine) end() Result {
	m.t.Helper()
	m.sigs <- unix.SIGTERM
	select {
	case r := <-m.result:
		return r
	case <-time.After(time.Minute):
		m.t.Fatal("herd did not end within a minute of SIGTERM")
		return Result{}
	}
}

// A worker that dies before it listens is failing to start: the restarts
// back off from HERD_BACKOFF_MIN, doubling, up to HERD_BACKOFF_MAX, and
// the slot shows the crash loop.
func TestMachineCrashBeforeListeningBacksOffToCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := boot(t, Config{})
		var delays []time.Duration
		for i := 0; i < 9; i++ {
			p := m.only()
			died := time.Now()
			m.exit(p.pid, 1)
			next := m.restarted(0)
			delays = append(delays, next.started.Sub(died))
		}
		want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
			4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
		if !slices.Equal(delays, want) {
			t.Errorf("restart delays %v, want %v", delays, want)
		}
		sl := m.s.Snapshot().Slots[0]
		if !sl.Failing || !sl.CrashLoop || sl.Restarts != 9 {
			t.Errorf("slot %+v, want failing, in a crash loop, 9 restarts", sl)
		}
		if r := m.end(); r.Code != 143 {
			t.Errorf("exit code %d, want 143 (the last worker stopped by SIGTERM)", r.Code)
		}
	})
}

// A worker that proved it serves (listening for a second) and then dies
// is replaced at once, and its slot's delays start again from the minimum;
// one that dies within a second of listening, having served nothing, is
// still failing to start.
func TestMachineCrashAfterListeningRestartsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := boot(t, Config{})
		// Two failed starts first: the slot's delay has grown.
		for i := 0; i < 2; i++ {
			m.exit(m.only().pid, 1)
			m.restarted(0)
		}
		for _, tc := range []struct {
			listenFor time.Duration
			want      time.Duration
		}{
			{2 * time.Second, 0},                      // proved: at once
			{100 * time.Millisecond, time.Second / 4}, // unproved: the minimum again, as the proof reset it
			{500 * time.Millisecond, time.Second / 2}, // and doubling
			{servingProof, 0},                         // proved again
		} {
			p := m.only()
			m.ready(p.pid)
			m.after(tc.listenFor)
			died := time.Now()
			m.exit(p.pid, 1)
			if got := m.restarted(0).started.Sub(died); got != tc.want {
				t.Errorf("listening %v, then exit 1: restarted after %v, want %v", tc.listenFor, got, tc.want)
			}
		}
		m.end()
	})
}

// Exits after listening: an exit 0 nobody asked for is replaced (the
// service is a worker short), one after STOPPING=1 (the worker said it
// leaves) has finished, and exit 0 without ever listening has finished.
func TestMachineExitZero(t *testing.T) {
	for _, tc := range []struct {
		name     string
		listen   bool
		stopping bool
		replaced bool
	}{
		{"listened, then left unasked", true, false, true},
		{"said it was leaving", true, true, false},
		{"never listened", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := boot(t, Config{Workers: 2})
				p := m.f.live()[0]
				if tc.listen {
					m.ready(p.pid)
				}
				if tc.stopping {
					m.notes <- notify.Message{Pid: p.pid, Stopping: true}
					synctest.Wait()
				}
				m.exit(p.pid, 0)
				m.after(time.Hour)
				if got := len(m.f.all()) == 3; got != tc.replaced {
					t.Errorf("%d processes started, want the worker replaced: %v", len(m.f.all()), tc.replaced)
				}
				if r := m.end(); r.Code != 143 {
					t.Errorf("exit code %d, want 143", r.Code)
				}
			})
		})
	}
}

// SIGHUP replaces every slot's worker in turn: the replacement starts,
// says it listens, then the old worker gets the stop signal, and the next
// slot follows once the old one is gone. A replacement that does not
// listen within HERD_READY_TIMEOUT is stopped and the old workers stay.
func TestMachineRollingRestart(t *testing.T) {
	t.Run("every worker replaced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := boot(t, Config{Workers: 2})
			old := m.f.live()
			for _, p := range old {
				m.ready(p.pid)
			}
			m.signal(unix.SIGHUP)
			for i, o := range old {
				live := m.f.live()
				if len(live) != 3 {
					t.Fatalf("slot %d: %d processes during its replacement, want 3", i, len(live))
				}
				repl := live[2]
				if sig := m.f.signalsOf(o.pid); len(sig) != 0 {
					t.Fatalf("slot %d: the old worker got %v before its replacement listened", i, sig)
				}
				m.ready(repl.pid)
				if sig := m.f.signalsOf(o.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM}) {
					t.Fatalf("slot %d: old worker got %v, want SIGTERM once its replacement listened", i, sig)
				}
			}
			if live := m.f.live(); len(live) != 2 || live[0].pid == old[0].pid || live[1].pid == old[1].pid {
				t.Errorf("after the rolling restart: %v", live)
			}
			m.end()
		})
	})
	t.Run("ready timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := boot(t, Config{Workers: 2, ReadyTimeout: 5 * time.Second})
			old := m.f.live()
			for _, p := range old {
				m.ready(p.pid)
			}
			m.signal(unix.SIGHUP)
			repl := m.f.live()[2]
			m.after(5*time.Second - time.Millisecond)
			if sig := m.f.signalsOf(repl.pid); len(sig) != 0 {
				t.Errorf("the replacement got %v before the timeout", sig)
			}
			m.after(time.Millisecond)
			if sig := m.f.signalsOf(repl.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM}) {
				t.Errorf("the replacement got %v at the timeout, want SIGTERM", sig)
			}
			m.after(time.Hour)
			if live := m.f.live(); len(live) != 2 || live[0] != old[0] || live[1] != old[1] {
				t.Errorf("after the abandoned restart: %d live, want the two old workers", len(live))
			}
			for _, o := range old {
				if sig := m.f.signalsOf(o.pid); len(sig) != 0 {
					t.Errorf("old worker %d got %v", o.pid, sig)
				}
			}
			m.end()
		})
	})
}

// A CPU budget that falls stops workers only once HERD_SCALE_DOWN_CHECKS
// readings in a row agree; one that rises starts them at once.
func TestMachineScaleByBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		reading := 3
		budget := func() (cpus.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			return cpus.Result{Workers: reading}, nil
		}
		set := func(n int) { mu.Lock(); reading = n; mu.Unlock() }
		m := boot(t, Config{Workers: 3, Recompute: budget, Recheck: 5 * time.Second, ScaleDownChecks: 3})
		if n := len(m.f.live()); n != 3 {
			t.Fatalf("%d workers, want 3", n)
		}
		set(2)
		m.after(10 * time.Second) // two lower readings
		if n := len(m.f.live()); n != 3 {
			t.Errorf("after two lower readings: %d workers, want still 3", n)
		}
		m.after(5 * time.Second) // the third
		if n := len(m.f.live()); n != 2 {
			t.Errorf("after three lower readings: %d workers, want 2", n)
		}
		if got := m.s.Snapshot().Desired; got != 2 {
			t.Errorf("desired %d, want 2", got)
		}
		set(4)
		m.after(5 * time.Second)
		if n := len(m.f.live()); n != 4 {
			t.Errorf("after one higher reading: %d workers, want 4", n)
		}
		m.end()
	})
}

// SIGTERM asks every worker to stop with the stop signal; one that does
// not stop is killed at HERD_SHUTDOWN_TIMEOUT, and herd exits 137. A
// second SIGTERM skips the wait.
func TestMachineShutdownEscalation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		second   bool          // a second SIGTERM a moment later
		killedAt time.Duration // when SIGKILL comes
	}{
		{"timeout", false, 10 * time.Second},
		{"second signal", true, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := boot(t, Config{Workers: 2})
				m.f.ignore[unix.SIGTERM] = true
				for _, p := range m.f.live() {
					m.ready(p.pid)
				}
				stopped := time.Now()
				m.sigs <- unix.SIGTERM
				if tc.second {
					time.Sleep(time.Second)
					m.sigs <- unix.SIGTERM
				}
				var r Result
				select {
				case r = <-m.result:
				case <-time.After(time.Hour):
					t.Fatal("herd did not end within an hour of SIGTERM")
				}
				for _, p := range m.f.all() {
					if sig := m.f.signalsOf(p.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM, unix.SIGKILL}) {
						t.Errorf("worker %d got %v, want SIGTERM then SIGKILL", p.pid, sig)
					}
				}
				if took := time.Since(stopped); took != tc.killedAt {
					t.Errorf("herd ended %v after SIGTERM, want %v", took, tc.killedAt)
				}
				if r.Code != initproc.ExitKilled {
					t.Errorf("exit code %d, want %d", r.Code, initproc.ExitKilled)
				}
			})
		})
	}
}
