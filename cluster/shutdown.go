package cluster

import (
	"errors"
	"time"

	initproc "github.com/herd-sh/herd/init"
	"golang.org/x/sys/unix"
)

// killGrace bounds the wait for processes after SIGKILL: one in
// uninterruptible sleep may never go, and herd must still exit.
const killGrace = 5 * time.Second

// shutdownTick is how often a shutdown looks for processes left and for new
// orphans to signal.
const shutdownTick = 50 * time.Millisecond

// stopState is the shutdown's progress.
type stopState struct {
	draining  bool        // a stop signal arrived: readiness fails from now on
	first     time.Time   // when the first stop signal arrived
	firstSig  unix.Signal // and which it was
	delay     *time.Timer // the shutdown delay, while it runs
	active    bool        // the workers have been asked to stop
	reason    string
	deadline  time.Time
	killed    int
	killUntil time.Time
	groups    map[int]bool // process groups the stop signal went to
	// asks are workers still to be asked to stop: protocol workers once
	// the connections herd accepted are handed on (or a second has
	// passed), and workers with a channel that have not said yet whether
	// they speak the protocol (see askToStop).
	asks      []*worker
	began     time.Time
	signalled map[int]bool // other processes the stop signal went to
	lastScan  time.Time
}

// stopSignal handles SIGTERM and SIGINT. The first drains: readiness fails
// at once and, after the shutdown delay, the workers are asked to stop. A
// second one skips what is left of the waiting and kills.
func (s *Supervisor) stopSignal(sig unix.Signal) {
	name := initproc.SignalName(sig)
	switch {
	case (s.stop.active || s.stop.draining) && sig == s.stop.firstSig && time.Since(s.stop.first) < duplicateSignal:
		// The same stop sent twice at once (timeout(1), for one, signals
		// both the process and its group): one request, not two.
		s.log.Debug("stop signal repeated at once; taken as one", "signal", name)
	case s.stop.active || s.stop.draining:
		s.log.Warn("second stop signal: killing without waiting", "signal", name)
		s.beginStop(sig, "stopped by SIG"+name)
		s.kill()
	case s.cfg.ShutdownDelay > 0:
		s.stop.first, s.stop.firstSig = time.Now(), sig
		s.stop.draining = true
		s.log.Info("draining: readiness fails now, workers stop after the shutdown delay",
			"signal", name, "delay", s.cfg.ShutdownDelay.String())
		s.stop.delay = s.later(s.cfg.ShutdownDelay, func() {
			if !s.stop.active {
				s.beginStop(sig, "stopped by SIG"+name)
			}
		})
	default:
		s.beginStop(sig, "stopped by SIG"+name)
		// Measured from the end of beginStop: a copy queued while it ran
		// (it reads /proc) is still the same request.
		s.stop.first, s.stop.firstSig = time.Now(), sig
	}
}

// duplicateSignal is how soon after the first a second stop signal is
// taken as the same request rather than "skip the wait".
const duplicateSignal = 100 * time.Millisecond

// beginStop starts the shutdown: no more restarts, the stop signal to every
// worker group and to every other process herd is responsible for, then
// waiting until all are gone or the timeout passes. sig is what herd
// received, 0 when the workers simply ended.
func (s *Supervisor) beginStop(sig unix.Signal, reason string) {
	if s.stop.active {
		return
	}
	st := &s.stop
	st.active, st.draining = true, true
	st.reason = reason
	st.began = time.Now()
	st.deadline = time.Now().Add(s.cfg.ShutdownTimeout)
	if st.delay != nil {
		st.delay.Stop()
	}
	if sig != 0 && s.started == 0 && s.failure == nil {
		code := 128 + int(sig)
		s.failure = &code // stopped before any worker ran: as if killed
	}
	s.roll = nil
	for _, sl := range s.slots {
		s.cancelRestart(sl)
		sl.finished = true
	}
	// Stop accepting: herd's copies of the sockets go now, so each socket
	// closes as soon as its workers close theirs, and a client that comes
	// later is refused (which it may retry elsewhere) instead of waiting in
	// a queue that nobody will take from, to be reset when herd exits.
	s.closeSockets()
	closeAll(s.cfg.Listeners)
	for _, srv := range s.servers {
		s.stopAccepting(srv) // rr: what herd queued still goes to the workers
	}
	stopSig := s.cfg.StopSignal
	if sig != 0 {
		s.log.Info("shutdown", "signal", initproc.SignalName(sig), "stop_signal", initproc.SignalName(stopSig),
			"timeout", s.cfg.ShutdownTimeout.String(), "workers", s.live())
	}
	s.eachWorker(func(w *worker) {
		st.groups[w.pid] = true
		if w.retired {
			return // has been asked to stop already
		}
		w.state = StateStopping
		st.asks = append(st.asks, w)
	})
	s.askToStop()
	s.signalOthers(stopSig)
}

// onlineWait is how long after its start a worker with a channel may take
// to say it speaks the cluster protocol before a shutdown takes it for one
// that does not. Node's cluster code says online before the app's code
// runs, tens of milliseconds after the start, but a loaded machine can
// take seconds; the wait is the one after which herd warns that rr has
// no protocol worker.
const onlineWait = onlineWarnAfter

// askToStop asks the workers of the shutdown that have not been asked yet,
// each the way it understands: a protocol worker once no accepted
// connection waits in herd for it (or a second after the stop began), a
// worker that has not said yet whether it speaks the protocol once it
// does or onlineWait after its start, every other worker at once with the
// stop signal.
func (s *Supervisor) askToStop() {
	st := &s.stop
	if len(st.asks) == 0 {
		return
	}
	now := time.Now()
	handedOn := now.Sub(st.began) >= time.Second || !s.hand.Busy()
	var later []*worker
	for _, w := range st.asks {
		switch {
		case s.workers[w.pid] != w:
			// gone already
		case w.speaksProtocol() && (!handedOn || !w.serverUp && now.Sub(w.start) < onlineWait):
			// Connections herd holds for it go first; and a worker still
			// starting its server finishes that first: Node's disconnect
			// while its listen() is under way can leave the worker up.
			later = append(later, w)
		case w.speaksProtocol():
			s.stopProtocolWorker(w, "shutdown")
		case w.ch != nil && now.Sub(w.start) < onlineWait:
			later = append(later, w)
		default:
			s.signalGroup(w.pid, s.cfg.StopSignal)
		}
	}
	st.asks = later
}

// stopProtocolWorker asks a worker that speaks the cluster protocol to
// stop, in steps: Node's disconnect (its servers stop accepting, its
// requests finish), then the stop signal if it is still there after the
// disconnect grace, so the app's own handler runs (closing WebSocket
// clients, database pools); SIGKILL comes at the shutdown timeout, from
// the caller. With NodeStopSignal the stop signal comes at once. Either
// way the worker gets no more connections.
func (s *Supervisor) stopProtocolWorker(w *worker, reason string) {
	if s.cfg.NodeStop == NodeStopSignal {
		s.log.Info("worker stopping", "id", w.id, "index", w.slot.index, "pid", w.pid,
			"signal", initproc.SignalName(s.cfg.StopSignal), "reason", reason)
		s.handDisconnect(w)
		s.dropFromServers(w)
		s.signalGroup(w.pid, s.cfg.StopSignal)
		return
	}
	s.log.Info("worker stopping", "id", w.id, "index", w.slot.index, "pid", w.pid, "signal", "disconnect",
		"then", initproc.SignalName(s.cfg.StopSignal), "after", s.cfg.DisconnectGrace.String(), "reason", reason)
	s.disconnect(w)
	s.later(s.cfg.DisconnectGrace, func() {
		if s.workers[w.pid] == w && s.stop.killUntil.IsZero() {
			s.log.Info("worker still running after disconnect: sending the stop signal", "id", w.id, "pid", w.pid,
				"signal", initproc.SignalName(s.cfg.StopSignal), "grace", s.cfg.DisconnectGrace.String())
			s.signalGroup(w.pid, s.cfg.StopSignal)
		}
	})
}

// others lists the processes, besides the worker groups already signalled,
// that a shutdown must stop: herd's descendants (reparented orphans,
// daemonised children in other process groups), and as PID 1 every process
// of the namespace. With all set, members of the signalled groups are
// listed too. ok is false when /proc does not show herd's own PID
// namespace, and then nothing can be listed safely.
func (s *Supervisor) others(all bool) (procs []initproc.Proc, ok bool) {
	list, ok := s.procs.descendants(s.cfg.PID1)
	if !ok {
		return nil, false
	}
	for _, p := range list {
		if all || !s.stop.groups[p.PGid] {
			procs = append(procs, p)
		}
	}
	return procs, true
}

// signalOthers sends sig once to each process others lists.
func (s *Supervisor) signalOthers(sig unix.Signal) {
	s.stop.lastScan = time.Now()
	procs, _ := s.others(false)
	for _, p := range procs {
		if s.stop.signalled[p.Pid] {
			continue
		}
		s.stop.signalled[p.Pid] = true
		s.log.Debug("stop signal to descendant", "pid", p.Pid, "signal", initproc.SignalName(sig))
		if err := s.procs.kill(p.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			s.log.Warn("signal to descendant failed", "pid", p.Pid, "err", err)
		}
	}
}

// kill ends everything at once: SIGKILL to every worker group and every
// process herd is responsible for, including members of a worker's group
// that outlived the worker.
func (s *Supervisor) kill() {
	if !s.stop.killUntil.IsZero() {
		return
	}
	n := 0
	s.eachWorker(func(w *worker) {
		w.killed = true
		if s.procs.kill(-w.pid, unix.SIGKILL) == nil {
			n++
		}
	})
	procs, ok := s.others(true)
	for _, p := range procs {
		if s.procs.kill(p.Pid, unix.SIGKILL) == nil {
			n++
		}
	}
	if !ok && s.cfg.PID1 {
		// /proc is not this namespace's; as its PID 1 kill(-1) reaches
		// exactly the namespace's other processes. Never when not PID 1.
		if s.procs.kill(-1, unix.SIGKILL) == nil {
			n++
		}
	}
	s.stop.killed += n
	s.stop.killUntil = time.Now().Add(killGrace)
	s.log.Warn("shutdown timeout", "killed", n, "timeout", s.cfg.ShutdownTimeout.String())
}

// shutdownTick looks for orphans to signal and applies the deadline.
func (s *Supervisor) shutdownTick() {
	if s.stop.killUntil.IsZero() && !time.Now().Before(s.stop.deadline) {
		s.kill()
		return
	}
	s.askToStop()
	if s.stop.killUntil.IsZero() && time.Since(s.stop.lastScan) >= 5*shutdownTick {
		s.signalOthers(s.cfg.StopSignal)
	}
	if s.procs.childrenLeft() {
		s.procs.reap()
	}
}

// finished reports whether Run may return: stopping, no worker left, and no
// child left, or the grace after SIGKILL spent.
func (s *Supervisor) finished() bool {
	if !s.stop.active || s.live() > 0 {
		return false
	}
	if !s.procs.childrenLeft() {
		return true
	}
	return !s.stop.killUntil.IsZero() && time.Now().After(s.stop.killUntil)
}
