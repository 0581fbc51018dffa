package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-sh/herd/cluster/cpus"
	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
	"golang.org/x/sys/unix"
)

// Config is what the supervisor runs and how.
type Config struct {
	Path string   // executable, already resolved
	Args []string // argv, Args[0] included
	Env  []string // environment every worker starts from
	Dir  string   // working directory of every worker

	// Workers is the number of workers to start with.
	Workers int
	// CPU is the budget Workers came from, nil when the count was set by
	// hand. With Hints, each worker's environment tells it its share.
	CPU   *cpus.Result
	Hints bool
	// Recompute, when set, is asked for a new budget every Recheck (if
	// positive) and on SIGHUP; the worker count follows its Workers: up at
	// once, down only after ScaleDownChecks readings in a row were lower.
	Recompute       func() (cpus.Result, error)
	Recheck         time.Duration
	ScaleDownChecks int

	Restart         Restart
	Backoff         Backoff
	StopSignal      unix.Signal // 0: the signal herd received
	ShutdownTimeout time.Duration

	// Foreground hands the controlling terminal on fd 0 to the worker in
	// slot 0 (one worker, interactive use).
	Foreground bool
	// PID1 says herd is the first process of its PID namespace: at shutdown
	// every process in /proc is herd's to stop, not only its descendants.
	PID1 bool
}

// Result is how the supervisor ended.
type Result struct {
	Code   int    // exit code for herd, before any remapping
	Reason string // one line a person can read
}

// killGrace bounds the wait for processes after SIGKILL: one in
// uninterruptible sleep may never go, and herd must still exit.
const killGrace = 5 * time.Second

// shutdownTick is how often a shutdown looks for processes left and for new
// orphans to signal.
const shutdownTick = 50 * time.Millisecond

// Supervisor runs the workers. Create it with New and call Run once.
type Supervisor struct {
	cfg    Config
	reaper *reaper.Reaper
	log    *slog.Logger

	exits   chan exitEvent
	calls   chan func() // timers' work, run on the loop
	budgets chan budgetEvent
	recheck chan struct{}
	done    chan struct{}
	snap    atomic.Pointer[Snapshot]

	// Owned by the Run goroutine.
	slots     []*slot // slots 0..desired-1
	retiring  []*slot // slots dropped by a scale-down, worker still stopping
	desired   int
	budget    *cpus.Result
	scale     scaler
	nextID    int
	live      int // workers with a process
	pending   int // slots waiting for a restart timer
	started   int // workers ever started
	failure   *int
	stopping  bool
	stopSig   unix.Signal
	reason    string
	deadline  time.Time
	killed    int
	killUntil time.Time
	groups    map[int]bool // process groups the stop signal went to
	signalled map[int]bool // other processes the stop signal went to
	lastScan  time.Time
}

type slot struct {
	index    int
	w        *worker
	unstable int
	timer    *time.Timer // pending restart
	finished bool        // never to be restarted
}

type budgetEvent struct {
	res    cpus.Result
	err    error
	reason string
}

type worker struct {
	id, pid int
	slot    *slot
	start   time.Time
	state   State
}

type exitEvent struct {
	w  *worker
	st reaper.Status
}

// New returns a supervisor for cfg that starts and learns of processes
// through r.
func New(cfg Config, r *reaper.Reaper, log *slog.Logger) *Supervisor {
	s := &Supervisor{
		cfg:       cfg,
		reaper:    r,
		log:       log,
		exits:     make(chan exitEvent, 256),
		calls:     make(chan func()),
		budgets:   make(chan budgetEvent),
		recheck:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		desired:   cfg.Workers,
		budget:    cfg.CPU,
		scale:     scaler{checks: cfg.ScaleDownChecks},
		groups:    map[int]bool{},
		signalled: map[int]bool{},
	}
	s.publish()
	return s
}

// Run starts the workers and handles events until none is left to run, then
// returns how herd should exit. signals carries every signal herd caught.
func (s *Supervisor) Run(signals <-chan os.Signal) Result {
	defer close(s.done)
	for i := 0; i < s.desired; i++ {
		s.slots = append(s.slots, &slot{index: i})
	}
	if s.cfg.Recompute != nil {
		go s.watch()
	}
	for _, sl := range s.slots {
		if s.stopping {
			break
		}
		s.start(sl)
	}
	s.publish()

	var tick <-chan time.Time
	for {
		if s.finished() {
			return s.result()
		}
		if s.stopping && tick == nil {
			t := time.NewTicker(shutdownTick)
			defer t.Stop()
			tick = t.C
		}
		select {
		case sig := <-signals:
			s.signal(sig.(unix.Signal))
		case ev := <-s.exits:
			s.exited(ev)
		case f := <-s.calls:
			f()
		case ev := <-s.budgets:
			s.budgetChanged(ev)
		case <-tick:
			s.shutdownTick()
		}
		s.publish()
	}
}

// start runs a new worker in sl. A command that cannot be executed ends the
// slot and every slot not yet started: the same command would fail again.
func (s *Supervisor) start(sl *slot) {
	s.nextID++
	w := &worker{id: s.nextID, slot: sl, state: StateStarting}
	attr := &os.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   s.workerEnv(w.id, sl.index),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if s.cfg.Foreground && sl.index == 0 {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	pid, err := s.reaper.Spawn(func() (int, error) {
		p, err := os.StartProcess(s.cfg.Path, s.cfg.Args, attr)
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		// Release closes the pidfd os keeps; the reaper collects the status.
		return pid, p.Release()
	}, func(st reaper.Status) { s.exits <- exitEvent{w, st} })
	if err != nil {
		code, permanent := StartErrorCode(err)
		if !permanent {
			s.log.Error("worker start failed", "id", w.id, "index", sl.index, "err", err)
			var delay time.Duration
			delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, 0)
			s.schedule(sl, w.id, delay)
			return
		}
		s.log.Error("cannot start command", "path", s.cfg.Path, "err", unwrapStart(err), "code", code)
		s.fail(code)
		for _, other := range s.slots {
			if other.w == nil && other.timer == nil {
				other.finished = true
			}
		}
		sl.finished = true
		if s.live == 0 && s.pending == 0 {
			s.beginStop(0, "command cannot start")
		}
		return
	}
	w.pid = pid
	w.start = time.Now()
	w.state = StateOnline
	sl.w = w
	s.live++
	s.started++
	s.log.Info("worker started", "id", w.id, "index", sl.index, "pid", pid)
}

// workerEnv is the configured environment plus the worker's identity and,
// with hints on, its share of the CPU budget.
func (s *Supervisor) workerEnv(id, index int) []string {
	var share *cpus.Fraction
	if s.cfg.Hints && s.budget != nil {
		f := s.budget.Budget.Per(s.desired)
		share = &f
	}
	return workerEnv(s.cfg.Env, id, index, s.desired, share)
}

// workerEnv is base plus the worker's identity, replacing inherited values
// of the same names so each appears once. With a share of the CPU budget
// it adds HERD_WORKER_CPUS, and sizes GOMAXPROCS (Go's scheduler threads)
// and UV_THREADPOOL_SIZE (libuv's pool for file system, DNS, crypto and
// zlib work in Node) to it, unless the environment sets them already: a
// runtime that sizes itself to the whole pod would give N workers N times
// the threads the pod has CPUs for. The pool keeps at least 2 threads, so
// one slow DNS lookup cannot hold up every file read.
func workerEnv(base []string, id, index, workers int, share *cpus.Fraction) []string {
	env := make([]string, 0, len(base)+6)
	var hasGo, hasUV bool
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HERD_WORKER_ID", "HERD_WORKER_INDEX", "HERD_WORKERS", "HERD_WORKER_CPUS":
			continue
		case "GOMAXPROCS":
			hasGo = true
		case "UV_THREADPOOL_SIZE":
			hasUV = true
		}
		env = append(env, kv)
	}
	env = append(env,
		"HERD_WORKER_ID="+strconv.Itoa(id),
		"HERD_WORKER_INDEX="+strconv.Itoa(index),
		"HERD_WORKERS="+strconv.Itoa(workers))
	if share == nil {
		return env
	}
	threads := max(share.Ceil(), 1)
	env = append(env, "HERD_WORKER_CPUS="+share.String())
	if !hasGo {
		env = append(env, "GOMAXPROCS="+strconv.FormatUint(threads, 10))
	}
	if !hasUV {
		env = append(env, "UV_THREADPOOL_SIZE="+strconv.FormatUint(max(threads, 2), 10))
	}
	return env
}

// StartErrorCode maps an error from starting a process to the exit code a
// shell would give, and says whether trying again is pointless: 127 when the
// program does not exist, 126 when it cannot be executed. Other errors (no
// memory, process limit) are passing and get code 1.
func StartErrorCode(err error) (code int, permanent bool) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		if errors.Is(err, os.ErrNotExist) {
			return initproc.ExitNotFound, true
		}
		if errors.Is(err, os.ErrPermission) {
			return initproc.ExitNotExecutable, true
		}
		return 1, false
	}
	switch errno {
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.ENAMETOOLONG:
		return initproc.ExitNotFound, true
	case unix.EACCES, unix.EPERM, unix.ENOEXEC, unix.EISDIR, unix.ELIBBAD, unix.EINVAL:
		return initproc.ExitNotExecutable, true
	}
	return 1, false
}

func unwrapStart(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// exited handles the end of a worker.
func (s *Supervisor) exited(ev exitEvent) {
	w, sl := ev.w, ev.w.slot
	code := ev.st.Code()
	uptime := time.Since(w.start)
	w.state = StateDead
	sl.w = nil
	s.live--
	s.log.Info("worker exited", "id", w.id, "index", sl.index, "pid", w.pid,
		"code", code, "status", describe(ev.st.Wait), "uptime", uptime.Round(time.Millisecond).String())
	if i := slices.Index(s.retiring, sl); i >= 0 {
		// Stopped by a scale-down: its code is no failure of the service.
		s.retiring = slices.Delete(s.retiring, i, i+1)
		return
	}

	if s.cfg.Foreground && !s.stopping && ev.st.Wait.Signaled() && ev.st.Wait.Signal() == unix.SIGINT {
		// The terminal sent ^C to the worker holding it: the person at the
		// terminal wants everything to stop, not a restart.
		sl.finished = true
		s.fail(code)
		s.beginStop(unix.SIGINT, "interrupted at the terminal")
		return
	}
	if !s.stopping && !sl.finished && s.cfg.Restart.restarts(code) {
		var delay time.Duration
		delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, uptime)
		s.schedule(sl, w.id, delay)
		return
	}
	sl.finished = true
	if code != 0 {
		s.fail(code)
	}
	if !s.stopping && s.live == 0 && s.pending == 0 {
		s.beginStop(0, "no worker left to run")
	}
}

// later runs f on the loop after d, unless Run has returned by then.
func (s *Supervisor) later(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case s.calls <- f:
		case <-s.done:
		}
	})
}

// schedule restarts sl after delay; id is the worker being replaced.
func (s *Supervisor) schedule(sl *slot, id int, delay time.Duration) {
	s.pending++
	s.log.Info("worker restart scheduled", "id", id, "index", sl.index, "delay", delay.String())
	var t *time.Timer
	t = s.later(delay, func() {
		if sl.timer == t { // not cancelled, not replaced
			s.restart(sl)
		}
	})
	sl.timer = t
}

// cancelRestart drops sl's pending restart, if any.
func (s *Supervisor) cancelRestart(sl *slot) {
	if sl.timer != nil {
		sl.timer.Stop()
		sl.timer = nil
		s.pending--
	}
}

func (s *Supervisor) restart(sl *slot) {
	sl.timer = nil
	s.pending--
	s.start(sl)
	if !s.stopping && s.live == 0 && s.pending == 0 {
		s.beginStop(0, "no worker left to run")
	}
}

// fail records a failing final exit; the first one decides herd's code.
func (s *Supervisor) fail(code int) {
	if s.failure == nil {
		s.failure = &code
	}
}

// signal handles one signal herd caught.
func (s *Supervisor) signal(sig unix.Signal) {
	switch sig {
	case unix.SIGHUP:
		if s.cfg.Recompute != nil {
			select {
			case s.recheck <- struct{}{}:
			default:
			}
		}
		s.forward(sig)
	case unix.SIGTERM, unix.SIGINT:
		if s.stopping {
			s.log.Warn("second stop signal: killing without waiting", "signal", initproc.SignalName(sig))
			s.kill()
			return
		}
		s.beginStop(sig, "stopped by SIG"+initproc.SignalName(sig))
	default:
		s.forward(sig)
	}
}

// forward sends sig to every worker's process group.
func (s *Supervisor) forward(sig unix.Signal) {
	s.log.Debug("signal forwarded", "signal", initproc.SignalName(sig), "workers", s.live)
	s.eachWorker(func(w *worker) { s.signalGroup(w.pid, sig) })
}

// eachWorker calls f for every worker with a process, retiring ones too.
func (s *Supervisor) eachWorker(f func(*worker)) {
	for _, list := range [][]*slot{s.slots, s.retiring} {
		for _, sl := range list {
			if sl.w != nil {
				f(sl.w)
			}
		}
	}
}

// signalGroup sends sig to the process group led by pid. ESRCH (the group is
// gone and its leader reaped a moment ago) is not an error.
func (s *Supervisor) signalGroup(pgid int, sig unix.Signal) {
	if err := unix.Kill(-pgid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Warn("signal to worker group failed", "pgid", pgid, "signal", initproc.SignalName(sig), "err", err)
	}
}

// beginStop starts the shutdown: no more restarts, the stop signal to every
// worker group and to every other process herd is responsible for, then
// waiting until all are gone or the timeout passes. sig is what herd
// received, 0 when the workers simply ended.
func (s *Supervisor) beginStop(sig unix.Signal, reason string) {
	s.stopping = true
	s.reason = reason
	s.deadline = time.Now().Add(s.cfg.ShutdownTimeout)
	s.stopSig = s.cfg.StopSignal
	if s.stopSig == 0 {
		s.stopSig = sig
	}
	if s.stopSig == 0 {
		s.stopSig = unix.SIGTERM
	}
	if sig != 0 && s.started == 0 && s.failure == nil {
		code := 128 + int(sig)
		s.failure = &code // stopped before any worker ran: as if killed
	}
	for _, sl := range s.slots {
		s.cancelRestart(sl)
		sl.finished = true
	}
	if sig != 0 {
		s.log.Info("shutdown", "signal", initproc.SignalName(sig), "stop_signal", initproc.SignalName(s.stopSig),
			"timeout", s.cfg.ShutdownTimeout.String(), "workers", s.live)
	}
	s.eachWorker(func(w *worker) {
		w.state = StateStopping
		s.groups[w.pid] = true
		s.signalGroup(w.pid, s.stopSig)
	})
	s.signalOthers(s.stopSig)
}

// others lists the processes, besides the worker groups already signalled,
// that a shutdown must stop: herd's descendants (reparented orphans,
// daemonised children in other process groups), and as PID 1 every process
// of the namespace. ok is false when /proc does not show herd's own PID
// namespace, and then nothing can be listed safely.
// With all set, members of the signalled groups are listed too.
func (s *Supervisor) others(all bool) (procs []initproc.Proc, ok bool) {
	if !initproc.OwnProcfs() {
		return nil, false
	}
	list, err := initproc.ReadProcs(os.DirFS("/proc"))
	if err != nil {
		return nil, false
	}
	for _, p := range initproc.Descendants(list, os.Getpid(), s.cfg.PID1) {
		if all || !s.groups[p.PGid] {
			procs = append(procs, p)
		}
	}
	return procs, true
}

// signalOthers sends sig once to each process others lists.
func (s *Supervisor) signalOthers(sig unix.Signal) {
	s.lastScan = time.Now()
	procs, _ := s.others(false)
	for _, p := range procs {
		if s.signalled[p.Pid] {
			continue
		}
		s.signalled[p.Pid] = true
		s.log.Debug("stop signal to descendant", "pid", p.Pid, "signal", initproc.SignalName(sig))
		if err := unix.Kill(p.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			s.log.Warn("signal to descendant failed", "pid", p.Pid, "err", err)
		}
	}
}

// kill ends everything at once: SIGKILL to every worker group and every
// process herd is responsible for, including members of a worker's group
// that outlived the worker.
func (s *Supervisor) kill() {
	if !s.killUntil.IsZero() {
		return
	}
	n := 0
	s.eachWorker(func(w *worker) {
		if unix.Kill(-w.pid, unix.SIGKILL) == nil {
			n++
		}
	})
	procs, ok := s.others(true)
	for _, p := range procs {
		if unix.Kill(p.Pid, unix.SIGKILL) == nil {
			n++
		}
	}
	if !ok && s.cfg.PID1 {
		// /proc is not this namespace's; as its PID 1 kill(-1) reaches
		// exactly the namespace's other processes. Never when not PID 1.
		if unix.Kill(-1, unix.SIGKILL) == nil {
			n++
		}
	}
	s.killed += n
	s.killUntil = time.Now().Add(killGrace)
	s.log.Warn("shutdown timeout", "killed", n, "timeout", s.cfg.ShutdownTimeout.String())
}

// shutdownTick looks for orphans to signal and applies the deadline.
func (s *Supervisor) shutdownTick() {
	if s.killUntil.IsZero() && !time.Now().Before(s.deadline) {
		s.kill()
		return
	}
	if s.killUntil.IsZero() && time.Since(s.lastScan) >= 5*shutdownTick {
		s.signalOthers(s.stopSig)
	}
	if s.reaper.ChildrenLeft() {
		s.reaper.Kick()
	}
}

// finished reports whether Run may return: stopping, no worker left, and no
// child left, or the grace after SIGKILL spent.
func (s *Supervisor) finished() bool {
	if !s.stopping || s.live > 0 {
		return false
	}
	if !s.reaper.ChildrenLeft() {
		return true
	}
	return !s.killUntil.IsZero() && time.Now().After(s.killUntil)
}

// result applies the exit-code rules: the first failing final exit, 0 when
// every worker ended with 0, 137 when the shutdown had to kill.
func (s *Supervisor) result() Result {
	code := 0
	if s.failure != nil {
		code = *s.failure
	}
	reason := s.reason
	if s.killed > 0 {
		code = initproc.ExitKilled
		reason += fmt.Sprintf("; shutdown timeout: %d killed", s.killed)
	}
	return Result{Code: code, Reason: reason}
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		s := "signal " + initproc.SignalName(ws.Signal())
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}
