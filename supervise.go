package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/cluster/memory"
	"github.com/herd-sh/herd/cluster/notify"
	"github.com/herd-sh/herd/health"
	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
)

// supervise runs the workers until none is left and returns herd's exit
// code. demo adds the demo's banner of URLs to the start-up output.
func supervise(cfg *Loaded, command []string, signals <-chan os.Signal, log *slog.Logger, demo bool) int {
	path, err := resolve(command[0])
	if err == nil {
		err = cluster.CheckInterpreter(path)
	}
	if err != nil {
		code, _ := cluster.StartErrorCode(err)
		log.Error("cannot start command", "command", command[0], "err", startReason(err), "code", code)
		return initproc.Remap(cfg.ExitRemap).Apply(code)
	}
	warnStopSignal(cfg, log)
	st := startup{path: path, args: command, pid1: adoptOrphans(cfg, log)}

	// The sockets before any worker: the port is herd's even while
	// workers restart, and a bind error stops herd before anything runs.
	if st.listeners, err = bindListeners(cfg, log); err != nil {
		return 1
	}
	defer func() {
		for _, l := range st.listeners {
			_ = l.Close()
		}
	}()
	notifySock, err := notify.Listen("")
	if err != nil {
		log.Error("cannot create the sd_notify socket", "err", err)
		return 1
	}
	defer notifySock.Close()
	notes := make(chan notify.Message, 64)
	go func() { _ = notifySock.Run(notes) }()
	st.notes, st.notifyAddr = notes, notifySock.Addr()
	if st.self, err = os.Executable(); err != nil {
		log.Error("cannot find herd's own executable", "err", err)
		return 1
	}

	var termLog string
	st.dir, termLog = moveToRoot(cfg, log)
	if st.workers, st.budget, st.recompute, err = countWorkers(cfg, log); err != nil {
		return 1
	}
	if st.memory, err = logMemoryBudget(cfg, log); err != nil {
		return 1
	}
	if err := checkWatermarks(cfg, st.memory.Limit); err != nil {
		fmt.Fprintln(os.Stderr, "herd:", err)
		return initproc.ExitUsage
	}
	st.ignored = ignoredSignals(log)

	r := reaper.New(log)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go r.Run(ctx)

	sup := cluster.New(clusterConfig(cfg, &st), r, log)
	probes, err := startProbes(cfg, sup, r, log)
	if err != nil {
		return 1
	}
	if demo {
		demoBanner(os.Stderr, st.listeners, cfg.Listen, probes.Addr())
	}
	tuneMemory()
	res := sup.Run(signals)
	ctxShut, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = probes.Shutdown(ctxShut)
	cancel()
	code := initproc.Remap(cfg.ExitRemap).Apply(res.Code)
	writeTerminationMessage(cfg, termLog, code, res, sup.Snapshot().Summary(16), r.Orphans(), log)
	log.Info("herd exiting", "code", code, "reason", res.Reason)
	return code
}

// startup is what supervise prepares for the supervisor before it starts
// any worker.
type startup struct {
	path       string   // the command, resolved
	args       []string // the command and its arguments
	dir        string   // the workers' directory: the one herd started in
	self       string   // herd's own executable, the launcher
	pid1       bool
	listeners  []*listen.Listener // nil under reuseport
	notes      <-chan notify.Message
	notifyAddr string
	workers    int
	budget     *cpus.Result                // with HERD_WORKERS=auto
	recompute  func() (cpus.Result, error) // with HERD_WORKERS=auto
	memory     memory.Result               // the memory budget at start
	ignored    uint64                      // signals herd inherited at SIG_IGN
}

// warnStopSignal warns when the stop signal does not end a worker that has
// no handler for it.
func warnStopSignal(cfg *Loaded, log *slog.Logger) {
	if fault := stopSignalFault(unix.Signal(cfg.StopSignal)); fault != "" {
		log.Warn(fmt.Sprintf("%s=%s %s: workers will not stop until SIGKILL at %s (%s) unless they handle it",
			cfg.name("HERD_WORKER_STOP_SIGNAL"), cfg.StopSignal.String(), fault, cfg.name("HERD_SHUTDOWN_TIMEOUT"), cfg.ShutdownTimeout.String()))
	}
}

// adoptOrphans makes herd, when it is not PID 1, the child subreaper of its
// descendants (unless HERD_SUBREAPER=false). It reports whether herd is
// PID 1.
func adoptOrphans(cfg *Loaded, log *slog.Logger) bool {
	pid1 := initproc.IsPID1()
	if !pid1 {
		if !cfg.Subreaper {
			log.Info("not PID 1 and HERD_SUBREAPER=false: orphans of workers go to the namespace's init")
		} else if err := initproc.BecomeSubreaper(); err != nil {
			log.Warn("not PID 1 and cannot become a child subreaper: orphans of workers go to the namespace's init", "err", err)
		}
	}
	return pid1
}

// bindListeners binds every address of HERD_LISTEN and logs them. Under
// reuseport each worker slot binds its own sockets instead, and there are
// none here. The error has been logged.
func bindListeners(cfg *Loaded, log *slog.Logger) ([]*listen.Listener, error) {
	var listeners []*listen.Listener
	var err error
	if cfg.SchedPolicy != cluster.PolicyReuseport {
		listeners, err = listen.BindAll(cfg.Listen, int(cfg.Backlog))
	}
	if err != nil {
		log.Error("cannot listen", "err", err)
		return nil, err
	}
	for _, l := range listeners {
		log.Info("listening", "address", l.Spec.String(), "bound", l.Addr.String())
	}
	return listeners, nil
}

// moveToRoot reads the directory herd was started in, where the workers
// start, and HERD_TERMINATION_LOG made absolute against it, then moves herd
// itself to /.
func moveToRoot(cfg *Loaded, log *slog.Logger) (dir, termLog string) {
	dir, err := os.Getwd()
	if err != nil {
		log.Warn("cannot read the working directory; workers start in /", "err", err)
		dir = "/"
	}
	// A relative termination log is the user's, in the directory herd was
	// started in, not in /.
	termLog = terminationLogPath(string(cfg.TerminationLog), dir)
	if err := os.Chdir("/"); err != nil {
		log.Warn("cannot change directory to /", "err", err)
	}
	return dir, termLog
}

// countWorkers is how many workers start: HERD_WORKERS, or with auto the
// CPU budget's count, with the budget and how to compute it again. The
// error has been logged.
func countWorkers(cfg *Loaded, log *slog.Logger) (int, *cpus.Result, func() (cpus.Result, error), error) {
	if !cfg.Workers.Auto {
		return cfg.Workers.N, nil, nil, nil
	}
	res, err := cpuBudget(cfg.Config)
	if err != nil {
		log.Error("cpu budget", "err", err)
		return 0, nil, nil, err
	}
	log.Info("cpu budget: " + res.LogLine())
	for _, w := range res.Warnings {
		log.Warn("cpu budget: " + w)
	}
	// check() refused what can never pass; this may pass once the budget
	// grows (an in-place resize).
	if int(cfg.ReadyMin) > res.Workers {
		log.Warn(fmt.Sprintf("%s=%d is above the %d workers that %s=auto gives here: readiness cannot pass until that many workers run",
			cfg.name("HERD_READY_MIN"), int(cfg.ReadyMin), res.Workers, cfg.name("HERD_WORKERS")))
	}
	return res.Workers, &res, func() (cpus.Result, error) { return cpuBudget(cfg.Config) }, nil
}

// logMemoryBudget finds the memory budget and logs it: one line, then its
// warnings. The error has been logged.
func logMemoryBudget(cfg *Loaded, log *slog.Logger) (memory.Result, error) {
	res, err := memoryBudget(cfg.Config)
	if err != nil {
		log.Error("memory budget", "err", err)
		return memory.Result{}, err
	}
	log.Info("memory budget: " + res.LogLine())
	for _, w := range res.Warnings {
		log.Warn("memory budget: " + w)
	}
	return res, nil
}

// ignoredSignals is the set of signals herd inherited at SIG_IGN. Such a
// signal would reach workers started directly through execve; the launcher
// sets it back to its default action.
func ignoredSignals(log *slog.Logger) uint64 {
	ignored := initproc.IgnoredSignals()
	if ignored != 0 {
		log.Debug("inherited ignored signals; workers start through the launcher, which restores their default actions",
			"signals", initproc.SignalSet(ignored))
	}
	return ignored
}

// clusterConfig is the supervisor's configuration: the settings, and what
// supervise prepared.
func clusterConfig(cfg *Loaded, st *startup) cluster.Config {
	return cluster.Config{
		Path:            st.path,
		Args:            st.args,
		Env:             os.Environ(),
		Dir:             st.dir,
		Workers:         st.workers,
		CPU:             st.budget,
		Hints:           bool(cfg.WorkerHints),
		Recompute:       st.recompute,
		Recheck:         time.Duration(cfg.CPURecheck),
		ScaleDownChecks: int(cfg.ScaleDownChecks),
		Policy:          cfg.SchedPolicy,
		Listeners:       st.listeners,
		Specs:           cfg.Listen,
		Backlog:         int(cfg.Backlog),
		Launcher:        st.self,
		ResetSignals:    st.ignored != 0,
		Channel:         bool(cfg.NodeChannel),
		Ready:           cfg.ReadySignal,
		ReadyTimeout:    time.Duration(cfg.ReadyTimeout),
		Notes:           st.notes,
		NotifyAddr:      st.notifyAddr,
		Watchdog:        time.Duration(cfg.WatchdogTimeout),
		Credential:      credential(cfg.Config),
		ShutdownDelay:   time.Duration(cfg.ShutdownDelay),
		Restart:         cfg.Restart,
		Backoff:         cluster.Backoff{Min: time.Duration(cfg.BackoffMin), Max: time.Duration(cfg.BackoffMax), Reset: time.Duration(cfg.BackoffReset)},
		StopSignal:      unix.Signal(cfg.StopSignal),
		NodeStop:        cfg.NodeStop,
		DisconnectGrace: cfg.DisconnectGrace.Of(time.Duration(cfg.ShutdownTimeout)),
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		Foreground:      st.workers == 1 && initproc.IsTerminal(0),
		PID1:            st.pid1,
		Memory:          memoryConfig(cfg, st.memory),
	}
}

// checkWatermarks refuses a critical watermark at or below the high one,
// as they are once the limit is known.
func checkWatermarks(cfg *Loaded, limit int64) error {
	hi, cr := cfg.MemoryHigh.Of(limit), cfg.MemoryCritical.Of(limit)
	if hi > 0 && cr > 0 && cr <= hi {
		return cfg.bad("HERD_MEMORY_CRITICAL", fmt.Errorf("must be above %s: with the %s limit they are %s and %s",
			cfg.shown("HERD_MEMORY_HIGH"), memory.Bytes(limit), memory.Bytes(cr), memory.Bytes(hi)))
	}
	return nil
}

// memoryConfig is what the supervisor does about memory: the budget found
// at start, the watermarks it gives, the recycling settings.
func memoryConfig(cfg *Loaded, res memory.Result) cluster.Memory {
	m := cluster.Memory{
		Limit: res.Limit, Source: res.Source, Dir: res.Dir, OOMDir: res.Dir, Version: res.Version,
		High: cfg.MemoryHigh.Of(res.Limit), Critical: cfg.MemoryCritical.Of(res.Limit),
		WorkerMax: int64(cfg.WorkerMaxMemory), MaxRequests: int(cfg.MaxRequests), Jitter: int(cfg.MaxRequestsJitter),
	}
	if res.Version == 1 {
		// cgroup v1 counts an OOM kill in the victim's own cgroup only.
		m.OOMDir = res.Leaf
	}
	return m
}

// startProbes starts the probe server of HERD_HEALTH_ADDR (none for off)
// and logs its address. The error has been logged.
func startProbes(cfg *Loaded, sup *cluster.Supervisor, r *reaper.Reaper, log *slog.Logger) (*health.Server, error) {
	probes, err := health.Start(string(cfg.HealthAddr), health.Handler(sup.Snapshot, health.Options{
		ReadyMin:      int(cfg.ReadyMin),
		LivenessGrace: time.Duration(cfg.LivenessGrace),
		Version:       Version(),
		Handoffs:      sup.Handoffs,
		Orphans:       r.Orphans,
	}))
	if err != nil {
		log.Error("cannot serve the probes", "err", err)
		return nil, err
	}
	if a := probes.Addr(); a != nil {
		log.Info("serving probes", "address", a.String())
	}
	return probes, nil
}

// tuneMemory sets herd's garbage collection for its small heap and returns
// what start-up allocated, before the workers start.
func tuneMemory() {
	// herd's live heap is well under a megabyte, and Go's default lets the
	// heap grow to 4 MB between collections: at 50 herd stays about 2 MB
	// smaller in resident memory, for no CPU that go run ./bench can
	// measure. GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// What start-up allocated (configuration, the metrics registry's
	// descriptors) is garbage now: give it back before the workers start.
	debug.FreeOSMemory()
}

// writeTerminationMessage writes why herd exited (the stop signal, no
// worker left, the shutdown timeout's kills), then how the workers ended
// (summary) and the orphans reaped, to the termination log, for kubectl
// describe.
func writeTerminationMessage(cfg *Loaded, path string, code int, res cluster.Result, summary string, orphans uint64, log *slog.Logger) {
	head := fmt.Sprintf("herd exited %d", code)
	if res.Code != code {
		head += fmt.Sprintf(" (remapped from %d)", res.Code)
	}
	msg := fmt.Sprintf("%s: %s\n%sorphans reaped: %d\n", head, res.Reason, summary, orphans)
	// The default path is written only where Kubernetes provides it; a path
	// the user chose is created if needed.
	create := cfg.Sources["HERD_TERMINATION_LOG"] != FromDefault
	if err := initproc.TerminationMessage(path, msg, create); err != nil {
		log.Debug("termination message not written", "path", path, "err", err)
	}
}

// terminationLogPath is HERD_TERMINATION_LOG made absolute against dir,
// the directory herd was started in: herd itself moves to /. Empty and off
// stay as they are (nothing is written).
func terminationLogPath(path, dir string) string {
	if path == "" || path == off || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// resolve finds the executable the way a shell would, so that "not found"
// and "not executable" are reported before anything starts (and a script's
// missing interpreter too: supervise calls cluster.CheckInterpreter). A
// relative path is made absolute: herd itself moves to /.
func resolve(name string) (string, error) {
	path, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", &fs.PathError{Op: "exec", Path: name, Err: errNotInPath{}}
		}
		return "", err
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return "", &fs.PathError{Op: "exec", Path: path, Err: unix.EISDIR}
	}
	return filepath.Abs(path)
}

// errNotInPath is a command name that no directory of $PATH holds.
type errNotInPath struct{}

func (errNotInPath) Error() string        { return "not found in $PATH" }
func (errNotInPath) Is(target error) bool { return target == fs.ErrNotExist }

// startReason is the kernel's or the search's reason alone, without the
// wrapping that repeats the command's name.
func startReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err.Error()
	}
	return err.Error()
}

// credential is the user and group workers run as, nil for herd's own.
func credential(cfg Config) *syscall.Credential {
	if cfg.UID.Text == "" && cfg.GID.Text == "" {
		return nil
	}
	c := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	if cfg.UID.Text != "" {
		c.Uid = uint32(cfg.UID.UID)
		if cfg.UID.GID >= 0 {
			c.Gid = uint32(cfg.UID.GID)
		}
	}
	if cfg.GID.Text != "" {
		c.Gid = uint32(cfg.GID.GID)
	}
	return c
}
