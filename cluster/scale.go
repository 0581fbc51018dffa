package cluster

import (
	"time"

	initproc "github.com/herd-sh/herd/init"
	"golang.org/x/sys/unix"
)

// scaler decides the worker count from successive budget readings: a
// higher reading applies at once, a lower one only after it has been seen
// on checks readings in a row (an in-place pod resize that is undone, or a
// file read halfway through an update, must not stop workers). After such a
// run the count drops to the highest of the lower readings.
type scaler struct {
	checks int // lower readings in a row needed to scale down (at least 1)
	lower  int // readings below the current count seen in a row
	most   int // the highest of them
}

// next returns the count to run given the current one and a new reading.
func (sc *scaler) next(current, reading int) int {
	if reading >= current {
		sc.lower, sc.most = 0, 0
		return reading
	}
	sc.lower++
	sc.most = max(sc.most, reading)
	if sc.lower < max(sc.checks, 1) {
		return current
	}
	target := sc.most
	sc.lower, sc.most = 0, 0
	return target
}

// watch asks for a new budget every Recheck and whenever SIGHUP asks for
// one, and hands each reading to the loop. It runs until Run returns.
func (s *Supervisor) watch() {
	var tick <-chan time.Time
	if s.cfg.Recheck > 0 {
		t := time.NewTicker(s.cfg.Recheck)
		defer t.Stop()
		tick = t.C
	}
	for {
		reason := "periodic check"
		select {
		case <-s.done:
			return
		case <-tick:
		case <-s.recheck:
			reason = "SIGHUP"
		}
		res, err := s.cfg.Recompute()
		select {
		case s.budgets <- budgetEvent{res, err, reason}:
		case <-s.done:
			return
		}
	}
}

// budgetChanged applies a new budget reading.
func (s *Supervisor) budgetChanged(ev budgetEvent) {
	if ev.err != nil {
		s.log.Warn("cpu budget: cannot recompute; keeping the worker count", "err", ev.err)
		return
	}
	if s.budget == nil || s.budget.LogLine() != ev.res.LogLine() {
		s.log.Info("cpu budget changed: "+ev.res.LogLine(), "reason", ev.reason)
	}
	s.budget = &ev.res
	if s.stop.active {
		return
	}
	s.base = s.scale.next(s.base, ev.res.Workers)
	s.resize(s.base+s.offset, "cpu budget, "+ev.reason)
}

// resize runs n workers (at least 1): new slots start at once, surplus
// slots (highest index first) are stopped gracefully and not restarted.
func (s *Supervisor) resize(n int, reason string) {
	n = max(n, 1)
	old := s.desired()
	if n == old || s.stop.active {
		return
	}
	s.log.Info("workers resized", "from", old, "to", n, "reason", reason)
	for i := old; i < n; i++ {
		sl, err := s.newSlot(i)
		if err != nil {
			s.log.Error("cannot bind the new slot's sockets; not adding it", "index", i, "err", err)
			return
		}
		s.slots = append(s.slots, sl)
		s.start(sl, false)
	}
	if n < old {
		for _, sl := range s.slots[n:] {
			s.cancelRestart(sl)
			sl.finished = true
			for _, w := range []*worker{sl.w, sl.next} {
				if w != nil {
					s.retire(w, reason)
				}
			}
			if s.roll != nil {
				s.roll.drop(sl)
			}
			delete(s.initialSlots, sl) // start-up no longer waits for it
			s.closeLater[sl] = struct{}{}
			s.releaseSlot(sl)
		}
		s.slots = s.slots[:n]
	}
}

// releaseSlot closes a removed slot's sockets once no worker of it is left.
func (s *Supervisor) releaseSlot(sl *slot) {
	if _, removed := s.closeLater[sl]; !removed {
		return
	}
	for _, w := range s.workers {
		if w.slot == sl {
			return
		}
	}
	closeAll(sl.sockets)
	delete(s.closeLater, sl)
}

// retire stops w for good: a protocol worker in steps (see
// stopProtocolWorker), any other with the stop signal; SIGKILL if it is
// still there after the shutdown timeout. Its exit is no failure.
func (s *Supervisor) retire(w *worker, reason string) {
	if w.retired {
		return
	}
	w.retired = true
	w.state = StateStopping
	if w.speaksProtocol() {
		s.stopProtocolWorker(w, reason)
	} else {
		s.log.Info("worker stopping", "id", w.id, "index", w.slot.index, "pid", w.pid,
			"signal", initproc.SignalName(s.cfg.StopSignal), "reason", reason)
		s.signalGroup(w.pid, s.cfg.StopSignal)
	}
	s.later(s.cfg.ShutdownTimeout, func() {
		if s.workers[w.pid] == w {
			s.log.Warn("worker did not stop in time; killing it", "id", w.id, "pid", w.pid)
			s.signalGroup(w.pid, unix.SIGKILL)
		}
	})
}
