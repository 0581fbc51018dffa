package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	initproc "github.com/herd-sh/herd/init"

	"golang.org/x/sys/unix"
)

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
	if w := s.workers[pgid]; w != nil && sig == unix.SIGKILL {
		w.killed = true // not the OOM killer's
	}
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
