package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/herd-sh/herd/cluster"
	"github.com/kelseyhightower/envconfig"
)

// Loading the configuration: the defaults, then the YAML file, then the
// HERD_* variables, then the flags, and the checks of settings against
// each other.

// LoadConfig builds the configuration from defaults, then the YAML file
// named by --config or HERD_CONFIG, then HERD_* variables, then flags.
// flags holds the flags given on the command line, in order, by flag name.
func LoadConfig(flags []flagValue) (*Loaded, error) {
	l := &Loaded{Config: Defaults(), Sources: map[string]Source{}}
	for _, s := range settings {
		l.Sources[s.env] = FromDefault
	}

	file, fileFrom := os.Getenv(configFileVar), configFileVar
	for _, f := range flags {
		if f.name == "config" {
			file, fileFrom = f.val, "--config"
		}
	}
	if file != "" {
		if err := l.loadFile(fileFrom, file); err != nil {
			return nil, err
		}
	}

	if err := l.loadEnv(); err != nil {
		return nil, err
	}

	for _, f := range flags {
		if f.name == "config" {
			continue
		}
		s := settingByFlag(f.name)
		if err := s.value(&l.Config).Set(f.val); err != nil {
			return nil, badValue("--"+f.name, f.val, fmt.Errorf("%w (%s)", err, s.env))
		}
		l.Sources[s.env] = FromFlag
	}
	return l, l.check()
}

// loadEnv applies the HERD_* variables that are set. envconfig sees only
// the fields' explicit names (the prefix is part of each tag), so it never
// falls back to an unprefixed variable such as PORT, and it has no defaults
// to overwrite values from the file.
func (l *Loaded) loadEnv() error {
	if err := envconfig.Process("", &l.Config); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return badValue(pe.KeyName, pe.Value, pe.Err)
		}
		return &ConfigError{err.Error()}
	}
	for _, s := range settings {
		if _, ok := os.LookupEnv(s.env); ok {
			l.Sources[s.env] = FromEnv
		}
	}
	// Node's own variable for the policy, when herd's is not set.
	if v, ok := os.LookupEnv("NODE_CLUSTER_SCHED_POLICY"); ok && l.Sources["HERD_SCHED_POLICY"] != FromEnv {
		if err := l.SchedPolicy.Set(v); err != nil {
			return badValue("NODE_CLUSTER_SCHED_POLICY", v, err)
		}
		l.Sources["HERD_SCHED_POLICY"] = FromEnv
	}
	return nil
}

// check validates what single values cannot: relations between settings.
func (l *Loaded) check() error {
	if l.MaxWorkers > 0 && l.MinWorkers > l.MaxWorkers {
		return l.bad("HERD_MIN_WORKERS", fmt.Errorf("must not be more than %s", l.shown("HERD_MAX_WORKERS")))
	}
	if l.ScaleDownChecks < 1 {
		return l.bad("HERD_SCALE_DOWN_CHECKS", errors.New("must be at least 1"))
	}
	if g := l.DisconnectGrace; !g.Auto && 2*time.Duration(g.D) > time.Duration(l.ShutdownTimeout) {
		return l.bad("HERD_DISCONNECT_GRACE", fmt.Errorf("must not be more than half of %s (the stop signal needs time too), or auto",
			l.shown("HERD_SHUTDOWN_TIMEOUT")))
	}
	if l.BackoffMax < l.BackoffMin {
		return l.bad("HERD_BACKOFF_MAX", fmt.Errorf("must not be less than %s", l.shown("HERD_BACKOFF_MIN")))
	}
	// /readyz passes once HERD_READY_MIN workers listen: more than can ever
	// run, and the pod never becomes ready.
	if !l.Workers.Auto && int(l.ReadyMin) > l.Workers.N {
		return l.bad("HERD_READY_MIN", fmt.Errorf("must not be more than %s, the workers herd runs (readiness could never pass)",
			l.shown("HERD_WORKERS")))
	}
	if l.Workers.Auto && l.MaxWorkers > 0 && l.ReadyMin > l.MaxWorkers {
		return l.bad("HERD_READY_MIN", fmt.Errorf("must not be more than %s, the most workers %s runs (readiness could never pass)",
			l.shown("HERD_MAX_WORKERS"), l.shown("HERD_WORKERS")))
	}
	return l.checkMemory()
}

// checkMemory validates the memory settings against each other and the
// policy. Watermarks given as amounts are checked again at start, once the
// limit is known.
func (l *Loaded) checkMemory() error {
	hi, cr := l.MemoryHigh, l.MemoryCritical
	if !hi.Off && !cr.Off && ((hi.Percent > 0 && cr.Percent > 0 && cr.Percent <= hi.Percent) ||
		(hi.Bytes > 0 && cr.Bytes > 0 && cr.Bytes <= hi.Bytes)) {
		return l.bad("HERD_MEMORY_CRITICAL", fmt.Errorf("must be above %s, or off", l.shown("HERD_MEMORY_HIGH")))
	}
	if l.MaxRequests > 0 && l.SchedPolicy != cluster.PolicyRR && l.SchedPolicy != cluster.PolicyAuto {
		return l.bad("HERD_MAX_REQUESTS", fmt.Errorf("needs HERD_SCHED_POLICY=rr or auto (it is %q): under none and reuseport the workers accept connections themselves, and herd cannot count them",
			string(l.SchedPolicy)))
	}
	if l.MaxRequestsJitter > 0 && l.MaxRequests == 0 {
		return l.bad("HERD_MAX_REQUESTS_JITTER", errors.New("needs HERD_MAX_REQUESTS"))
	}
	return nil
}

// flagValue is one flag as given on the command line.
type flagValue struct{ name, val string }

// recorder is the flag.Value of every setting flag: it keeps the text so
// flags can be applied last, after the file and the environment.
type recorder struct {
	name   string
	isBool bool
	out    *[]flagValue
}

func (r recorder) String() string     { return "" }
func (r recorder) IsBoolFlag() bool   { return r.isBool }
func (r recorder) Set(v string) error { *r.out = append(*r.out, flagValue{r.name, v}); return nil }

// newFlagSet defines --config and one flag per setting, recording into out.
func newFlagSet(out *[]flagValue) *flag.FlagSet {
	fs := flag.NewFlagSet("herd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(recorder{name: "config", out: out}, "config", "YAML configuration file (HERD_CONFIG)")
	defaults := Defaults()
	for _, s := range settings {
		_, isBool := s.value(&defaults).(*Bool)
		fs.Var(recorder{name: s.flag, isBool: isBool, out: out}, s.flag, s.desc+" ("+s.env+")")
	}
	return fs
}
