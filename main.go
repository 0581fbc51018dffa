// Command herd is the first process of a container: it runs N copies of a
// command as PID 1 (or as a child subreaper), forwards signals to them, reaps
// every zombie, restarts failed workers and stops them all gracefully.
package main

import (
	"context"
	"encoding/json"
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
	"github.com/herd-sh/herd/cluster/notify"
	"github.com/herd-sh/herd/health"
	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == demoWorkerArg {
		return demoWorker()
	}
	if len(args) > 0 && args[0] == cluster.LaunchArg {
		// herd as a worker's launcher: only execve, nothing else. A failure
		// goes to herd through the status pipe, and herd logs it.
		code, _ := cluster.Launch(args[1:])
		return code
	}
	// Signals first: until they are registered, Go's defaults apply, and
	// those exit on SIGTERM instead of stopping the workers.
	signals := make(chan os.Signal, 128)
	initproc.Notify(signals)
	if err := initproc.CloseInherited(); err != nil {
		fmt.Fprintln(os.Stderr, "herd: warning:", err)
	}

	inv, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herd: %v\nUsage: herd [flags] [--] command [args...]; herd --help lists the flags.\n", err)
		return initproc.ExitUsage
	}
	switch inv.Mode {
	case ModeHelp:
		WriteUsage(os.Stdout)
		return 0
	case ModeVersion:
		fmt.Println("herd", Version())
		return 0
	}

	cfg, err := LoadConfig(inv.Flags)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herd:", err)
		return initproc.ExitUsage
	}
	log := newLogger(cfg.Config)
	for _, name := range UnknownVariables(os.Environ()) {
		log.Warn("unknown variable ignored; herd config lists the settings", "variable", name)
	}

	switch inv.Mode {
	case ModeConfig:
		if cfg.File != "" {
			fmt.Printf("# configuration file: %s\n", cfg.File)
		}
		_ = WriteTable(os.Stdout, cfg)
		return 0
	case ModeCPUs:
		res, err := cpuBudget(cfg.Config)
		if err != nil {
			log.Error("cpu budget", "err", err)
			return 1
		}
		if inv.JSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(res)
			return 0
		}
		if !cfg.Workers.Auto {
			fmt.Printf("HERD_WORKERS=%d is set, so herd starts %d workers and reads none of this.\n\n", cfg.Workers.N, cfg.Workers.N)
		}
		_ = res.WriteTable(os.Stdout)
		return 0
	case ModeDemo:
		self, err := os.Executable()
		if err != nil {
			log.Error("demo: cannot find herd's own executable", "err", err)
			return 1
		}
		inv.Command = []string{self, demoWorkerArg}
		if len(cfg.Listen) == 0 {
			// herd owns the demo's port, as it would a real service's.
			_ = cfg.Listen.Set(":8080")
		}
	}
	return supervise(cfg, inv.Command, signals, log, inv.Mode == ModeDemo)
}

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

	if fault := stopSignalFault(unix.Signal(cfg.StopSignal)); fault != "" {
		log.Warn(fmt.Sprintf("%s=%s %s: workers will not stop until SIGKILL at %s (%s) unless they handle it",
			cfg.name("HERD_WORKER_STOP_SIGNAL"), cfg.StopSignal.String(), fault, cfg.name("HERD_SHUTDOWN_TIMEOUT"), cfg.ShutdownTimeout.String()))
	}

	pid1 := initproc.IsPID1()
	if !pid1 {
		if !cfg.Subreaper {
			log.Info("not PID 1 and HERD_SUBREAPER=false: orphans of workers go to the namespace's init")
		} else if err := initproc.BecomeSubreaper(); err != nil {
			log.Warn("not PID 1 and cannot become a child subreaper: orphans of workers go to the namespace's init", "err", err)
		}
	}
	// The sockets before any worker: the port is herd's even while
	// workers restart, and a bind error stops herd before anything runs.
	// Under reuseport each worker slot binds its own sockets instead.
	var listeners []*listen.Listener
	if cfg.SchedPolicy != Policy(cluster.PolicyReuseport) {
		listeners, err = listen.BindAll(cfg.Listen, int(cfg.Backlog))
	}
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for _, l := range listeners {
		log.Info("listening", "address", l.Spec.String(), "bound", l.Addr.String())
	}
	notifySock, err := notify.Listen("")
	if err != nil {
		log.Error("cannot create the sd_notify socket", "err", err)
		return 1
	}
	defer notifySock.Close()
	notes := make(chan notify.Message, 64)
	go func() { _ = notifySock.Run(notes) }()
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find herd's own executable", "err", err)
		return 1
	}

	dir, err := os.Getwd()
	if err != nil {
		log.Warn("cannot read the working directory; workers start in /", "err", err)
		dir = "/"
	}
	// A relative termination log is the user's, in the directory herd was
	// started in, not in /.
	termLog := terminationLogPath(string(cfg.TerminationLog), dir)
	if err := os.Chdir("/"); err != nil {
		log.Warn("cannot change directory to /", "err", err)
	}

	workers := cfg.Workers.N
	var budget *cpus.Result
	var recompute func() (cpus.Result, error)
	if cfg.Workers.Auto {
		res, err := cpuBudget(cfg.Config)
		if err != nil {
			log.Error("cpu budget", "err", err)
			return 1
		}
		log.Info("cpu budget: " + res.LogLine())
		for _, w := range res.Warnings {
			log.Warn("cpu budget: " + w)
		}
		workers, budget = res.Workers, &res
		recompute = func() (cpus.Result, error) { return cpuBudget(cfg.Config) }
		// check() refused what can never pass; this may pass once the
		// budget grows (an in-place resize).
		if int(cfg.ReadyMin) > workers {
			log.Warn(fmt.Sprintf("%s=%d is above the %d workers that %s=auto gives here: readiness cannot pass until that many workers run",
				cfg.name("HERD_READY_MIN"), int(cfg.ReadyMin), workers, cfg.name("HERD_WORKERS")))
		}
	}

	// An ignored signal would reach workers started directly through
	// execve; the launcher sets it back to its default action.
	ignored := initproc.IgnoredSignals()
	if ignored != 0 {
		log.Debug("inherited ignored signals; workers start through the launcher, which restores their default actions",
			"signals", initproc.SignalSet(ignored))
	}

	r := reaper.New(log)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go r.Run(ctx)

	sup := cluster.New(cluster.Config{
		Path:            path,
		Args:            command,
		Env:             os.Environ(),
		Dir:             dir,
		Workers:         workers,
		CPU:             budget,
		Hints:           bool(cfg.WorkerHints),
		Recompute:       recompute,
		Recheck:         time.Duration(cfg.CPURecheck),
		ScaleDownChecks: int(cfg.ScaleDownChecks),
		Policy:          cluster.Policy(cfg.SchedPolicy),
		Listeners:       listeners,
		Specs:           cfg.Listen,
		Backlog:         int(cfg.Backlog),
		Launcher:        self,
		ResetSignals:    ignored != 0,
		Channel:         bool(cfg.NodeChannel),
		Ready:           cluster.ReadySignal(cfg.ReadySignal),
		ReadyTimeout:    time.Duration(cfg.ReadyTimeout),
		Notes:           notes,
		NotifyAddr:      notifySock.Addr(),
		Watchdog:        time.Duration(cfg.WatchdogTimeout),
		Credential:      credential(cfg.Config),
		ShutdownDelay:   time.Duration(cfg.ShutdownDelay),
		Restart:         cluster.Restart(cfg.Restart),
		Backoff:         cluster.Backoff{Min: time.Duration(cfg.BackoffMin), Max: time.Duration(cfg.BackoffMax), Reset: time.Duration(cfg.BackoffReset)},
		StopSignal:      unix.Signal(cfg.StopSignal),
		NodeStop:        cluster.NodeStop(cfg.NodeStop),
		DisconnectGrace: cfg.DisconnectGrace.Of(time.Duration(cfg.ShutdownTimeout)),
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		Foreground:      workers == 1 && initproc.IsTerminal(0),
		PID1:            pid1,
	}, r, log)
	probes, err := health.Start(string(cfg.HealthAddr), health.Handler(sup.Snapshot, health.Options{
		ReadyMin:      int(cfg.ReadyMin),
		LivenessGrace: time.Duration(cfg.LivenessGrace),
		Version:       Version(),
		Handoffs:      sup.Handoffs,
		Orphans:       r.Orphans,
	}))
	if err != nil {
		log.Error("cannot serve the probes", "err", err)
		return 1
	}
	if a := probes.Addr(); a != nil {
		log.Info("serving probes", "address", a.String())
	}
	if demo {
		demoBanner(os.Stderr, listeners, cfg.Listen, probes.Addr())
	}
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
	res := sup.Run(signals)
	ctxShut, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = probes.Shutdown(ctxShut)
	cancel()
	code := initproc.Remap(cfg.ExitRemap).Apply(res.Code)

	// Why herd exited (the stop signal, no worker left, the shutdown
	// timeout's kills), then how the workers ended, for kubectl describe.
	head := fmt.Sprintf("herd exited %d", code)
	if res.Code != code {
		head += fmt.Sprintf(" (remapped from %d)", res.Code)
	}
	msg := fmt.Sprintf("%s: %s\n%sorphans reaped: %d\n", head, res.Reason, sup.Snapshot().Summary(16), r.Orphans())
	// The default path is written only where Kubernetes provides it; a path
	// the user chose is created if needed.
	create := cfg.Sources["HERD_TERMINATION_LOG"] != FromDefault
	if err := initproc.TerminationMessage(termLog, msg, create); err != nil {
		log.Debug("termination message not written", "path", termLog, "err", err)
	}
	log.Info("herd exiting", "code", code, "reason", res.Reason)
	return code
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

// cpuBudget works out how many workers HERD_WORKERS=auto gives, from this
// process's own view of /proc and /sys (cluster/cpus).
func cpuBudget(cfg Config) (cpus.Result, error) {
	affinity, err := cpus.Affinity()
	if err != nil || affinity < 1 {
		affinity = 1
	}
	return cpus.Compute(cpus.Input{
		FS:       os.DirFS("/"),
		Affinity: affinity,
		Request:  int64(cfg.CPURequest),
		Limit:    int64(cfg.CPULimit),
		Rounding: cpus.Rounding(cfg.CPURounding),
		Min:      int(cfg.MinWorkers),
		Max:      int(cfg.MaxWorkers),
		Reserve:  cpus.Fraction{Num: uint64(cfg.CPUReserve), Den: 1000},
	})
}

func newLogger(cfg Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
