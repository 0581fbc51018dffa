package initproc

import (
	"os"
	// Named so that a search for calls that set SIG_IGN (which herd never
	// makes) does not find the query Ignored.
	ossig "os/signal"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Forwardable lists every signal herd registers for: all catchable signals
// except SIGKILL and SIGSTOP (not catchable), SIGCHLD (the reaper's), SIGPIPE
// (registered separately and dropped) and three the Go runtime keeps for
// itself and never delivers to a program: SIGURG (goroutine preemption),
// SIGPROF (the profiler) and signal 34 (per-thread system calls). Of the
// real-time signals, 32 and 33 belong to C libraries' threads, so the list
// holds 35 (SIGRTMIN+1 as C programs number it) to 64 (SIGRTMAX).
//
// Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) are in the
// list because one sent with kill(2) is an ordinary asynchronous signal that
// would otherwise crash herd; a real fault in herd still crashes it.
var Forwardable = func() []os.Signal {
	list := []os.Signal{
		unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP,
		unix.SIGABRT, unix.SIGBUS, unix.SIGFPE, unix.SIGUSR1, unix.SIGSEGV,
		unix.SIGUSR2, unix.SIGALRM, unix.SIGTERM, unix.SIGSTKFLT, unix.SIGCONT,
		unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGXCPU, unix.SIGXFSZ,
		unix.SIGVTALRM, unix.SIGWINCH, unix.SIGIO, unix.SIGPWR, unix.SIGSYS,
	}
	for s := 35; s <= 64; s++ {
		list = append(list, unix.Signal(s))
	}
	return list
}()

// Notify registers ch for every signal in Forwardable and drops SIGPIPE. A
// signal that herd's parent set to SIG_IGN and that Go's runtime left ignored
// (SIGHUP and SIGINT, as for a background job or nohup) is not registered, so
// herd keeps ignoring it. Workers do not: every worker starts with every
// signal at its default action and none blocked, whatever herd inherited
// (package cluster resets both; IgnoredSignals tells it when the launcher
// must). Call Notify first thing in main: until it runs, the runtime's
// default applies, and that exits on SIGTERM.
//
// It returns the signals it registered.
func Notify(ch chan<- os.Signal) []os.Signal {
	var list []os.Signal
	for _, s := range Forwardable {
		if ossig.Ignored(s) {
			continue
		}
		list = append(list, s)
	}
	ossig.Notify(ch, list...)
	dropPipe()
	return list
}

// IgnoredSignals returns the signals herd has at SIG_IGN, bit N-1 for signal
// N: those its parent ignored and Go's runtime left alone (SIGHUP, SIGINT,
// and 32 and 34, which belong to C libraries). Call it after Notify, which
// replaces an inherited SIG_IGN for the signals it registers. It reads the
// kernel's SigIgn in /proc/self/status, or, without /proc, asks Go's
// runtime, which knows every signal it left ignored at start.
func IgnoredSignals() uint64 {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
					return m
				}
			}
		}
	}
	var m uint64
	for s := 1; s <= 64; s++ {
		if ossig.Ignored(unix.Signal(s)) {
			m |= 1 << (s - 1)
		}
	}
	return m
}

// SignalSet writes a set of signals (bit N-1 for signal N) as names:
// "HUP,INT,32".
func SignalSet(m uint64) string {
	var names []string
	for s := 1; s <= 64; s++ {
		if m&(1<<(s-1)) != 0 {
			names = append(names, SignalName(unix.Signal(s)))
		}
	}
	return strings.Join(names, ",")
}

// dropPipe catches SIGPIPE so a write to a closed pipe returns EPIPE instead
// of killing herd. Catching (not ignoring) keeps the default for workers.
func dropPipe() {
	pipe := make(chan os.Signal, 1)
	ossig.Notify(pipe, unix.SIGPIPE)
	go func() {
		for range pipe {
		}
	}()
}

// SignalName is the short name of a signal as people write it: TERM, USR1,
// RTMIN+3.
func SignalName(s unix.Signal) string {
	if s >= 34 && s <= 64 {
		return "RTMIN+" + strconv.Itoa(int(s)-34)
	}
	if n := unix.SignalName(s); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(s))
}

// ParseSignal reads a signal written as TERM, SIGTERM, sigterm, 15 or
// RTMIN+3. Only catchable signals are accepted.
func ParseSignal(text string) (unix.Signal, bool) {
	t := strings.ToUpper(strings.TrimSpace(text))
	t = strings.TrimPrefix(t, "SIG")
	var s unix.Signal
	if n, err := strconv.Atoi(t); err == nil {
		s = unix.Signal(n)
	} else if rest, ok := strings.CutPrefix(t, "RTMIN+"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil {
			return 0, false
		}
		s = unix.Signal(34 + n)
	} else if t == "RTMIN" {
		s = 34
	} else if t == "RTMAX" {
		s = 64
	} else {
		s = unix.SignalNum("SIG" + t)
	}
	if s <= 0 || s > 64 || s == unix.SIGKILL || s == unix.SIGSTOP {
		return 0, false
	}
	return s, true
}
