package cluster

import (
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
	"github.com/herd-sh/herd/reaper"
	"golang.org/x/sys/unix"
)

// Config is what the supervisor runs and how.
type Config struct {
	Path string   // executable, already resolved
	Args []string // argv, Args[0] included
	Env  []string // environment every worker starts from
	Dir  string   // working directory of every worker

	// Memory is the memory budget and what to do about it.
	Memory Memory

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
	// and PolicyAuto every worker receives Listeners; under PolicyReuseport each slot binds
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
	memory    chan memEvent
	nudge     chan struct{} // a worker reached its HERD_MAX_REQUESTS
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
	// handingOut: under PolicyAuto, herd hands out some address's
	// connections (a worker asked through the protocol).
	handingOut bool
	// memory (memory.go)
	workingSet int64             // the container's, at the last reading
	workerBase int64             // the largest size a worker had when it started serving
	recycles   map[string]uint64 // by reason
	oomSeen    uint64            // the cgroup's OOM kills accounted for
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

	memory   int64  // its process group's memory at the last reading, bytes
	requests uint64 // connections it may take (HERD_MAX_REQUESTS), 0 for no limit
	sized    bool   // its size when it started serving went into workerBase
	// replaceOnExit: stopped before its replacement (memory), which starts
	// once it has gone.
	replaceOnExit bool
	stopped       time.Time // when herd asked it to stop
	killed        bool      // herd sent it SIGKILL

	ch       *ipc.Channel    // Node's cluster channel, nil without one
	hw       *handoff.Worker // the hand-off's record of it, while its channel is read
	online   bool            // the worker speaks the cluster protocol
	serverUp bool            // it said listening through the protocol
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
		memory:       make(chan memEvent),
		nudge:        make(chan struct{}, 1),
		recycles:     map[string]uint64{},
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
	s.startFirst()

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
		case ev := <-s.memory:
			s.measured(ev)
		case <-s.nudge:
			s.recycleByRequests()
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

// startFirst makes the first slots, starts their workers and the
// goroutines that feed the loop.
func (s *Supervisor) startFirst() {
	if s.cfg.Policy == PolicyAuto {
		s.log.Info("policy auto: every worker gets the listening sockets (LISTEN_FDS); " +
			"herd hands out the connections of an address a worker asks for through Node's cluster protocol")
	}
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
	if m := s.cfg.Memory; m.OOMDir != "" {
		s.oomSeen, _ = s.procs.oomKills(m.OOMDir, m.Version)
	}
	go s.measure()
	s.publish()
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
