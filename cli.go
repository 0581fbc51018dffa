package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// Version is herd's version: the one stamped at build time, else the
// module's, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Mode is what the command line asks herd to do.
type Mode int

const (
	ModeRun     Mode = iota // supervise the command
	ModeHelp                // --help
	ModeVersion             // herd version
	ModeConfig              // herd config
	ModeDemo                // herd demo: supervise herd's own demo worker
	ModeCPUs                // herd cpus: explain the worker count
	ModeMemory              // herd memory: explain the memory budget
)

// Invocation is a parsed command line.
type Invocation struct {
	Mode    Mode
	Flags   []flagValue
	Command []string
	JSON    bool // herd cpus --json, herd memory --json
}

// UsageError is a command line herd cannot act on; it exits 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// subcommands are recognised only as the first word after the flags and only
// without "--": "herd -- version" runs a program called version.
var subcommands = map[string]Mode{"version": ModeVersion, "config": ModeConfig, "demo": ModeDemo, "help": ModeHelp, "cpus": ModeCPUs, "memory": ModeMemory}

// ParseArgs reads "herd [flags] [--] command [args...]" and the subcommands.
func ParseArgs(args []string) (*Invocation, error) {
	inv := &Invocation{}
	fs := newFlagSet(&inv.Flags)
	help := fs.Bool("help", false, "show this help")
	fs.BoolVar(help, "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &Invocation{Mode: ModeHelp}, nil
		}
		return nil, &UsageError{flagError(err)}
	}
	if *help {
		return &Invocation{Mode: ModeHelp}, nil
	}
	rest := fs.Args()
	dashdash := len(rest) < len(args) && args[len(args)-len(rest)-1] == "--"
	if len(rest) > 0 && !dashdash {
		if m, ok := subcommands[rest[0]]; ok {
			if (m == ModeCPUs || m == ModeMemory) && len(rest) == 2 && (rest[1] == "--json" || rest[1] == "-json") {
				inv.Mode, inv.JSON = m, true
				return inv, nil
			}
			if len(rest) > 1 {
				return nil, &UsageError{fmt.Sprintf("%q takes no arguments; to run a program called %s, write herd -- %s", rest[0], rest[0], strings.Join(rest, " "))}
			}
			inv.Mode = m
			return inv, nil
		}
	}
	if len(rest) == 0 {
		return nil, &UsageError{"no command given"}
	}
	inv.Command = rest
	return inv, nil
}

// undefinedFlag starts the flag package's error for a flag it does not
// know, which it names with one dash.
const undefinedFlag = "flag provided but not defined: -"

// flagError words an error of the flag package for herd: an unknown flag
// is named with its two dashes, and the setting it most likely meant.
func flagError(err error) string {
	name, ok := strings.CutPrefix(err.Error(), undefinedFlag)
	if !ok {
		return err.Error()
	}
	msg := "unknown flag --" + name
	if len(name) > maxShown {
		msg = "unknown flag " + quote("--"+name)
	}
	if s := suggestFlag(name); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return msg
}

// usageLine is what herd prints, on one line, for a command line it cannot
// act on.
func usageLine(err error) string {
	return fmt.Sprintf("herd: %v (usage: herd [flags] [--] command [args...]; herd --help lists the flags)", err)
}

// WriteUsage prints the help text, including the table of settings.
func WriteUsage(w io.Writer) {
	fmt.Fprint(w, `herd: the first process of a container. It runs N copies of a command as
PID 1 (or as a child subreaper), forwards signals to them, reaps every zombie,
restarts failed workers and stops them all gracefully.

Usage:
  herd [flags] [--] command [args...]   run the command as N workers
  herd demo                             run herd's built-in HTTP demo on :8080
  herd cpus [--json]                    explain how many workers auto gives here
  herd memory [--json]                  explain the memory budget here
  herd config                           print the effective configuration
  herd version                          print herd's version
  herd --help                           print this help

Every setting is a variable, a flag of the same name, and a key of the YAML
file named by HERD_CONFIG or --config. A flag beats a variable, which beats
the file, which beats the default:

`)
	_ = WriteTable(w, nil)
	fmt.Fprint(w, `
Exit code: 0 when every worker's last exit was 0; otherwise that of the first
worker whose last exit failed (its status, or 128+N when killed by signal N);
137 when the shutdown timeout had to kill; 127/126 when the command cannot be
found/executed; 2 for a bad command line or setting. HERD_EXIT_REMAP applies last.
`)
}
