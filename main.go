// Command herd is the first process of a container: it runs N copies of a
// command as PID 1 (or as a child subreaper), forwards signals to them, reaps
// every zombie, restarts failed workers and stops them all gracefully.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/memory"
	initproc "github.com/herd-sh/herd/init"
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
		fmt.Fprintln(os.Stderr, usageLine(err))
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
	warnUnknownVariables(log, os.Environ())

	switch inv.Mode {
	case ModeConfig:
		if cfg.File != "" {
			fmt.Printf("# configuration file: %s\n", cfg.File)
		}
		_ = WriteTable(os.Stdout, cfg)
		return 0
	case ModeCPUs:
		return explainCPUs(cfg, inv.JSON, log)
	case ModeMemory:
		return explainMemory(cfg, inv.JSON, log)
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

// explainCPUs is herd cpus: how many workers auto gives here, and why, as
// a table or (asJSON) as JSON.
func explainCPUs(cfg *Loaded, asJSON bool, log *slog.Logger) int {
	res, err := cpuBudget(cfg.Config)
	if err != nil {
		log.Error("cpu budget", "err", err)
		return 1
	}
	if asJSON {
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
		Rounding: cfg.CPURounding,
		Min:      int(cfg.MinWorkers),
		Max:      int(cfg.MaxWorkers),
		Reserve:  cpus.Fraction{Num: uint64(cfg.CPUReserve), Den: 1000},
	})
}

// explainMemory is herd memory: the memory budget here, and why, as a
// table or (asJSON) as JSON.
func explainMemory(cfg *Loaded, asJSON bool, log *slog.Logger) int {
	res, err := memoryBudget(cfg.Config)
	if err != nil {
		log.Error("memory budget", "err", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return 0
	}
	_ = res.WriteTable(os.Stdout)
	return 0
}

// memoryBudget finds the memory budget from this process's own view of
// /proc and /sys (cluster/memory) and HERD_MEMORY_LIMIT.
func memoryBudget(cfg Config) (memory.Result, error) {
	return memory.Compute(memory.Input{FS: os.DirFS("/"), Limit: int64(cfg.MemoryLimit)})
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
