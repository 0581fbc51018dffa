package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/handoff"
	"github.com/herd-sh/herd/cluster/ipc"
	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/cluster/notify"
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

	Restart    Restart
	Backoff    Backoff
	StopSignal unix.Signal // sent to a worker to stop it; 0: SIGTERM
	// NodeStop says how a worker that speaks the cluster protocol is asked
	// to stop; with NodeStopDisconnect, one still running DisconnectGrace
	// after the disconnect gets StopSignal too.
	NodeStop        NodeStop
	DisconnectGrace time.Duration
	ShutdownTimeout time.Duration
	// ShutdownDelay keeps everything running, with readiness failing, for
	// this long after SIGTERM before the workers are asked to stop.
	ShutdownDelay time.Duration

	// Policy says how workers get the listening sockets. Under PolicyNone
	// every worker receives Listeners; under PolicyReuseport each slot binds
	// its own SO_REUSEPORT socket for each of Specs, kept across restarts.
	Policy    Policy
	Listeners []*listen.Listener
	Specs     []listen.Spec
	Backlog   int
	// Launcher is herd's own executable. A worker that receives sockets or
	// Node's channel is started through it (LaunchArg), so that LISTEN_PID
	// names the worker's own pid; so is every worker when ResetSignals is
	// set.
	Launcher string
	// ResetSignals says that herd has signals set to SIG_IGN (inherited,
	// and kept by Go's runtime), which a worker started directly would
	// inherit: the launcher sets them back to SIG_DFL. Every worker starts
	// with an empty signal mask either way (sigstate.go).
	ResetSignals bool

	// Ready says what makes a worker count as listening; ReadyTimeout
	// bounds the wait for a replacement during a rolling restart.
	Ready        ReadySignal
	ReadyTimeout time.Duration
	// Notes carries sd_notify messages from NotifyAddr (NOTIFY_SOCKET).
	Notes      <-chan notify.Message
	NotifyAddr string
	// Watchdog, when positive, restarts a worker that has not sent
	// WATCHDOG=1 for this long (WATCHDOG_USEC tells it the period).
	Watchdog time.Duration

	// Channel gives every worker Node's cluster IPC channel
	// (NODE_CHANNEL_FD): herd then plays Node's cluster primary.
	Channel bool

	// Credential, when set, is the user and group the workers run as.
	Credential *syscall.Credential
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

// Supervisor runs the workers. Create it with New and call Run once.
type Supervisor struct {
	cfg   Config
	procs procs
	log   *slog.Logger

	exits   chan exitEvent
	calls   chan func() // timers' work, run on the loop
	budgets chan budgetEvent
	recheck chan struct{}
	done    chan struct{}
	snap    atomic.Pointer[Snapshot]

	ipcEvents chan ipcEvent
	// hand is the hot path: it reads every channel and, under rr, hands
	// connections out, on its own goroutine (package handoff). The
	// supervisor drives it; it owns its records.
	hand *handoff.Handoff

	// Owned by the Run goroutine.
	slots        []*slot         // slots 0..desired-1
	workers      map[int]*worker // every worker with a process, by pid
	base, offset int             // desired: base (setting or budget) + offset (SIGTTIN/SIGTTOU)
	budget       *cpus.Result
	scale        scaler
	roll         *rolling // a rolling restart under way
	nextID       int
	pending      int // slots waiting for a restart timer
	started      int // workers ever started
	restarts     int // restarts after failures
	failure      *int
	stop         stopState
	closeLater   map[*slot]struct{} // removed slots whose sockets wait for their workers
	servers      map[string]*server // addresses workers listen on through the protocol, by key
	// readiness
	initialSlots  map[*slot]bool // the first cohort, until each has listened once
	startedUp     bool
	lastListening time.Time
	warnedReady   bool
	warnedOnline  bool
	// for the Snapshot (snapshot.go)
	exitCounts ExitCounts
	queues     []ListenerInfo
	queuesRead time.Time
}

type slot struct {
	index    int
	w        *worker // the worker serving in this slot
	next     *worker // its replacement, starting during a rolling restart
	unstable int     // quick failures in a row
	restarts int
	timer    *time.Timer        // pending restart
	due      time.Time          // when the pending restart is due
	capped   bool               // the restart delay has reached its cap
	finished bool               // never to be restarted
	sockets  []*listen.Listener // PolicyReuseport: this slot's own sockets
	lastExit *Exit              // how its last worker ended, for the Snapshot
}

type worker struct {
	id, pid   int
	slot      *slot
	start     time.Time
	state     State
	listening time.Time // when it last became listening
	status    string    // last sd_notify STATUS=
	beat      time.Time // last WATCHDOG=1, or the start
	retired   bool      // asked to stop for good (scale-down, rolling restart)
	launch    int       // read end of the launcher's status pipe, or -1
	// leaving: the worker said it is going (Node's exitedAfterDisconnect,
	// or sd_notify STOPPING=1), so its exit is intended.
	leaving bool

	ch     *ipc.Channel    // Node's cluster channel, nil without one
	hw     *handoff.Worker // the hand-off's record of it, while its channel is read
	online bool            // the worker speaks the cluster protocol
}

type exitEvent struct {
	w  *worker
	st reaper.Status
}

type budgetEvent struct {
	res    cpus.Result
	err    error
	reason string
}

// New returns a supervisor for cfg that starts and learns of processes
// through r.
func New(cfg Config, r *reaper.Reaper, log *slog.Logger) *Supervisor {
	return newSupervisor(cfg, kernel{r}, log)
}

// newSupervisor is New with p for the processes (tests give fakes).
func newSupervisor(cfg Config, p procs, log *slog.Logger) *Supervisor {
	if cfg.StopSignal == 0 {
		cfg.StopSignal = unix.SIGTERM
	}
	if cfg.Ready == "" {
		cfg.Ready = ReadyListening
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = time.Minute
	}
	if cfg.NodeStop == "" {
		cfg.NodeStop = NodeStopDisconnect
		if cfg.DisconnectGrace == 0 {
			cfg.DisconnectGrace = cfg.ShutdownTimeout / 2
		}
	}
	// The stop signal must leave the app time before SIGKILL.
	cfg.DisconnectGrace = min(cfg.DisconnectGrace, cfg.ShutdownTimeout/2)
	cfg.Specs = slices.Clone(cfg.Specs) // port 0 is rewritten once bound
	s := &Supervisor{
		cfg:          cfg,
		procs:        p,
		log:          log,
		exits:        make(chan exitEvent, 256),
		calls:        make(chan func()),
		budgets:      make(chan budgetEvent),
		recheck:      make(chan struct{}, 1),
		done:         make(chan struct{}),
		workers:      map[int]*worker{},
		base:         cfg.Workers,
		budget:       cfg.CPU,
		scale:        scaler{checks: cfg.ScaleDownChecks},
		stop:         stopState{groups: map[int]bool{}, signalled: map[int]bool{}},
		closeLater:   map[*slot]struct{}{},
		servers:      map[string]*server{},
		ipcEvents:    make(chan ipcEvent, 1024),
		hand:         handoff.New(log),
		initialSlots: map[*slot]bool{},
	}
	s.publish()
	return s
}

func (s *Supervisor) desired() int { return len(s.slots) }

// Run starts the workers and handles events until none is left to run, then
// returns how herd should exit. signals carries every signal herd caught.
func (s *Supervisor) Run(signals <-chan os.Signal) Result {
	if s.cfg.Channel {
		if err := s.hand.Start(); err != nil {
			s.log.Error("cannot create an epoll set", "err", err)
			return Result{Code: 1, Reason: "no epoll set: " + err.Error()}
		}
		defer s.hand.Stop()
	}
	// The hand-off's goroutine keeps its P while it waits in epoll_wait, up
	// to 10 ms; with one P the loop would take it from there on every
	// event. Setting GOMAXPROCS also stops the runtime from following the
	// CPU limit (Go 1.25 and later): an in-place resize to one CPU would
	// otherwise bring herd down to one P.
	runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	defer close(s.done)
	defer s.closeSockets()
	defer s.closeServers()
	for i := 0; i < s.cfg.Workers; i++ {
		sl, err := s.newSlot(i)
		if err != nil {
			s.log.Error("cannot listen", "err", err, "index", i)
			s.fail(1)
			s.beginStop(0, "cannot bind sockets")
			break
		}
		s.slots = append(s.slots, sl)
		s.initialSlots[sl] = true
	}
	for _, sl := range s.slots {
		if s.stop.active {
			break
		}
		s.start(sl, false)
	}
	if s.cfg.Recompute != nil {
		go s.watch()
	}
	s.publish()

	heartbeat := time.NewTicker(Heartbeat)
	defer heartbeat.Stop()
	var watchdog <-chan time.Time
	if s.cfg.Watchdog > 0 {
		t := time.NewTicker(max(s.cfg.Watchdog/4, 10*time.Millisecond))
		defer t.Stop()
		watchdog = t.C
	}
	var tick <-chan time.Time
	for {
		if s.finished() {
			return s.result()
		}
		if s.stop.active && tick == nil {
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
		case m := <-s.cfg.Notes:
			s.notified(m)
		case ev := <-s.ipcEvents:
			s.channelEvent(ev)
		case <-watchdog:
			s.checkWatchdog()
		case <-tick:
			s.shutdownTick()
		case <-heartbeat.C:
		}
		s.publish()
	}
}

// newSlot makes slot i, binding its own sockets under PolicyReuseport.
func (s *Supervisor) newSlot(i int) (*slot, error) {
	sl := &slot{index: i}
	if s.cfg.Policy != PolicyReuseport {
		return sl, nil
	}
	for j, sp := range s.cfg.Specs {
		l, err := sp.Bind(s.cfg.Backlog, true)
		if err != nil {
			closeAll(sl.sockets)
			return nil, err
		}
		sl.sockets = append(sl.sockets, l)
		if l.Port() > 0 && sp.Network != "unix" {
			// Port 0 asked the kernel for one; every later slot must join
			// the same port.
			if host, port, err := net.SplitHostPort(sp.Address); err == nil && port == "0" {
				s.cfg.Specs[j].Address = net.JoinHostPort(host, strconv.Itoa(l.Port()))
			}
		}
	}
	return sl, nil
}

func closeAll(ls []*listen.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// closeSockets closes every slot's own sockets when Run returns.
func (s *Supervisor) closeSockets() {
	for _, sl := range s.slots {
		closeAll(sl.sockets)
	}
	for sl := range s.closeLater {
		closeAll(sl.sockets)
	}
}

// start runs a new worker in sl, as its replacement when next is set. A
// command that cannot be executed ends the slot and every slot not yet
// started: the same command would fail again.
func (s *Supervisor) start(sl *slot, next bool) *worker {
	s.nextID++
	w := &worker{id: s.nextID, slot: sl, state: StateStarting}
	files := []uintptr{0, 1, 2}
	for _, l := range s.sockets(sl) {
		files = append(files, uintptr(l.FD))
	}
	path, argv := s.cfg.Path, s.cfg.Args
	env := s.workerEnv(w.id, sl)
	w.launch = -1
	child := -1
	if s.cfg.Channel {
		var err error
		if child, err = s.openChannel(w); err != nil {
			s.log.Error("worker start failed: no channel", "id", w.id, "index", sl.index, "err", err)
			return nil
		}
		defer unix.Close(child)
		env = append(env, "NODE_CHANNEL_FD="+strconv.Itoa(len(files)), "NODE_UNIQUE_ID="+strconv.Itoa(w.id),
			"NODE_CHANNEL_SERIALIZATION_MODE=json")
		files = append(files, uintptr(child))
	}
	if len(files) > 3 || s.cfg.ResetSignals {
		// Through the launcher, with a pipe on which it reports a failed
		// execve: its exit alone would look like the worker's own 127.
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			s.log.Error("worker start failed", "id", w.id, "index", sl.index, "err", err)
			return nil
		}
		defer unix.Close(p[1])
		w.launch = p[0]
		env = append(env, launchStatusVar+"="+strconv.Itoa(len(files)))
		files = append(files, uintptr(p[1]))
		path = s.cfg.Launcher
		argv = append([]string{s.cfg.Launcher, LaunchArg, s.cfg.Path}, s.cfg.Args...)
	}
	attr := &syscall.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: s.cfg.Credential},
	}
	if s.cfg.Foreground && sl.index == 0 {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	pid, err := s.procs.start(path, argv, attr, func(st reaper.Status) { s.exits <- exitEvent{w, st} })
	if err != nil {
		if w.launch >= 0 {
			unix.Close(w.launch)
		}
		if w.ch != nil {
			_ = w.ch.Close()
		}
		if path == s.cfg.Path {
			err = ExplainStart(path, s.cfg.Dir, err)
		}
		code, permanent := StartErrorCode(err)
		if !permanent && !next {
			s.log.Error("worker start failed", "id", w.id, "index", sl.index, "err", err)
			var delay time.Duration
			delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, 0)
			s.schedule(sl, w.id, delay)
			return nil
		}
		s.log.Error("cannot start command", "path", s.cfg.Path, "err", unwrapStart(err), "code", code)
		if next {
			return nil
		}
		s.fail(code)
		for _, other := range s.slots {
			if other.w == nil && other.timer == nil {
				other.finished = true
			}
		}
		sl.finished = true
		if s.live() == 0 && s.pending == 0 {
			s.beginStop(0, "command cannot start")
		}
		return nil
	}
	now := time.Now()
	w.pid, w.start, w.beat, w.state = pid, now, now, StateOnline
	s.workers[pid] = w
	if next {
		sl.next = w
	} else {
		sl.w = w
	}
	s.started++
	s.log.Info("worker started", "id", w.id, "index", sl.index, "pid", pid)
	if w.ch != nil {
		if err := s.watchChannel(w); err != nil {
			s.log.Error("cannot read the worker's channel", "id", w.id, "err", err)
			s.detachChannel(w, false)
		}
	}
	s.afterStart(w)
	return w
}

// sockets lists what a worker of sl receives as fds 3 and up.
func (s *Supervisor) sockets(sl *slot) []*listen.Listener {
	if s.cfg.Policy == PolicyReuseport {
		return sl.sockets
	}
	if s.cfg.Policy == PolicyNone {
		return s.cfg.Listeners
	}
	return nil
}

func (s *Supervisor) live() int { return len(s.workers) }

// StartErrorCode maps an error from starting a process to the exit code a
// shell would give, and says whether trying again is pointless: 127 when the
// program does not exist, 126 when it cannot be executed (a script whose
// interpreter is missing included). Other errors (no memory, process limit)
// are passing and get code 1.
func StartErrorCode(err error) (code int, permanent bool) {
	var bad *BadInterpreterError
	if errors.As(err, &bad) {
		return initproc.ExitNotExecutable, true
	}
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
	s.noteExit(w, ev.st)
	code := ev.st.Code()
	uptime := time.Since(w.start)
	if w.state == StateListening {
		s.lastListening = time.Now()
	}
	w.state = StateDead
	delete(s.workers, w.pid)
	if w.ch != nil {
		s.dropFromServers(w)
		s.detachChannel(w, true) // gone: its unanswered connection goes on or is closed
	}
	if failure := w.launchFailure(); failure != nil {
		// The launcher could not execve the command: as when herd itself
		// cannot, never retried.
		err := ExplainStart(s.cfg.Path, s.cfg.Dir, failure)
		code, _ := StartErrorCode(err)
		s.log.Error("cannot start command", "path", s.cfg.Path, "err", err, "code", code)
		if sl.w == w {
			sl.w = nil
		}
		if sl.next == w {
			sl.next = nil
			s.rollFailed(w, "the replacement could not start")
		}
		sl.finished = true
		if !w.retired {
			s.fail(code)
		}
		if !s.stop.active && s.live() == 0 && s.pending == 0 {
			s.beginStop(0, "command cannot start")
		}
		return
	}
	s.log.Info("worker exited", "id", w.id, "index", sl.index, "pid", w.pid,
		"code", code, "status", describe(ev.st.Wait), "uptime", uptime.Round(time.Millisecond).String())

	switch {
	case w.retired:
		// Stopped on purpose (scale-down, rolling restart): no failure.
		if sl.w == w {
			sl.w = nil
		}
		s.releaseSlot(sl)
		s.rollOldExited(w)
	case sl.next == w:
		sl.next = nil
		s.rollFailed(w, "the replacement exited before it listened")
	default:
		sl.w = nil
		s.slotExited(sl, w, code, uptime)
	}
	if !s.stop.active && s.live() == 0 && s.pending == 0 {
		s.beginStop(0, "no worker left to run")
	}
}

// slotExited applies the restart policy to the end of a slot's worker. A
// worker that proved it serves (see proved) and then ended is replaced at
// once: the backoff is for workers that cannot start, which would
// otherwise spin. A worker that listened and left without saying so is
// replaced whatever its code (Node's primary counts such an exit as
// accidental).
func (s *Supervisor) slotExited(sl *slot, w *worker, code int, uptime time.Duration) {
	if s.cfg.Foreground && !s.stop.active && code == 128+int(unix.SIGINT) {
		// The terminal sent ^C to the worker holding it: the person at the
		// terminal wants everything to stop, not a restart.
		sl.finished = true
		s.fail(code)
		s.beginStop(unix.SIGINT, "interrupted at the terminal")
		return
	}
	unasked := !w.listening.IsZero() && !w.leaving
	if !s.stop.active && !sl.finished && s.cfg.Restart.restarts(code, unasked) {
		if unasked && code == 0 {
			s.log.Warn("worker left without being asked to stop; replacing it", "id", w.id, "index", sl.index, "pid", w.pid,
				"code", code, "hint", "a worker that means to leave calls cluster.worker.disconnect() or sends sd_notify STOPPING=1")
		}
		var delay time.Duration
		if w.proved(time.Now()) {
			sl.unstable, sl.capped = 0, false
		} else {
			delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, uptime)
			sl.capped = delay >= s.cfg.Backoff.Max && s.cfg.Backoff.Max > 0
			if sl.capped {
				s.log.Warn("worker crash loop: restart delay at its cap", "index", sl.index, "delay", delay.String(), "restarts", sl.restarts)
			}
		}
		sl.restarts++
		s.restarts++
		s.schedule(sl, w.id, delay)
		return
	}
	sl.finished = true
	if code != 0 {
		s.fail(code)
	}
}

// servingProof is how long a worker must have been listening to count as
// serving when herd cannot see it take a connection (none, reuseport, or
// no connection came): one that keeps dying sooner after it listens is
// still failing to start, and its restarts back off.
const servingProof = time.Second

// proved reports whether w, ending at now, had shown that it serves: it
// was listening and either took a connection herd handed it or stayed
// listening for servingProof.
func (w *worker) proved(now time.Time) bool {
	return proved(w.listening, w.hw != nil && w.hw.Served(), now)
}

// proved is the rule of worker.proved: listening is when the worker last
// became listening (zero if never), served whether it took a connection.
func proved(listening time.Time, served bool, now time.Time) bool {
	if listening.IsZero() {
		return false
	}
	return served || now.Sub(listening) >= servingProof
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
	sl.due = time.Now().Add(delay)
	s.log.Info("worker restart scheduled", "id", id, "index", sl.index, "delay", delay.String())
	var t *time.Timer
	t = s.later(delay, func() {
		if sl.timer == t { // not cancelled, not replaced
			sl.timer = nil
			s.pending--
			s.start(sl, false)
			if !s.stop.active && s.live() == 0 && s.pending == 0 {
				s.beginStop(0, "no worker left to run")
			}
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

// fail records a failing final exit; the first one decides herd's code.
func (s *Supervisor) fail(code int) {
	if s.failure == nil {
		s.failure = &code
	}
}

// signal handles one signal herd caught.
func (s *Supervisor) signal(sig unix.Signal) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		s.stopSignal(sig)
	case unix.SIGHUP:
		if s.cfg.Recompute != nil {
			select {
			case s.recheck <- struct{}{}:
			default:
			}
		}
		s.startRoll()
	case unix.SIGTTIN:
		s.offset++
		s.resize(s.base+s.offset, "SIGTTIN")
	case unix.SIGTTOU:
		if s.base+s.offset > 1 {
			s.offset--
			s.resize(s.base+s.offset, "SIGTTOU")
		}
	default:
		s.forward(sig)
	}
}

// forward sends sig to every worker's process group.
func (s *Supervisor) forward(sig unix.Signal) {
	s.log.Debug("signal forwarded", "signal", initproc.SignalName(sig), "workers", s.live())
	s.eachWorker(func(w *worker) { s.signalGroup(w.pid, sig) })
}

// eachWorker calls f for every worker with a process, in start order.
func (s *Supervisor) eachWorker(f func(*worker)) {
	ws := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int { return a.id - b.id })
	for _, w := range ws {
		f(w)
	}
}

// signalGroup sends sig to the process group led by pgid. ESRCH (the group
// is gone and its leader reaped a moment ago) is not an error.
func (s *Supervisor) signalGroup(pgid int, sig unix.Signal) {
	if err := s.procs.kill(-pgid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Warn("signal to worker group failed", "pgid", pgid, "signal", initproc.SignalName(sig), "err", err)
	}
}

// result applies the exit-code rules: the first failing final exit, 0 when
// every worker ended with 0, 137 when the shutdown had to kill.
func (s *Supervisor) result() Result {
	code := 0
	if s.failure != nil {
		code = *s.failure
	}
	reason := s.stop.reason
	if s.stop.killed > 0 {
		code = initproc.ExitKilled
		reason += fmt.Sprintf("; shutdown timeout: %d killed", s.stop.killed)
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
