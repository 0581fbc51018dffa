package cluster

import (
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/notify"
)

// readyWarnAfter is how long a worker may run without saying it listens
// before herd explains HERD_READY_SIGNAL.
const readyWarnAfter = 10 * time.Second

// startedAfter is how long a worker must run, under HERD_READY_SIGNAL=
// started, before it counts as listening: one that keeps dying sooner is a
// crash loop, and must fail readiness and then liveness like any other.
const startedAfter = time.Second

// afterStart applies the ready signal to a worker that just started.
func (s *Supervisor) afterStart(w *worker) {
	if s.cfg.Ready == ReadyStarted {
		s.later(startedAfter, func() {
			if s.workers[w.pid] == w {
				s.listening(w)
			}
		})
		return
	}
	if s.cfg.Policy == PolicyRR && w.ch != nil {
		s.later(onlineWarnAfter, func() {
			if s.workers[w.pid] == w && !w.online && !s.warnedOnline {
				s.warnedOnline = true
				s.log.Warn("worker has said nothing on its cluster channel: HERD_SCHED_POLICY=rr needs workers that speak "+
					"Node's cluster protocol (Node, or Go with herd's worker package); none or reuseport serve the others",
					"id", w.id, "pid", w.pid)
			}
		})
	}
	if s.warnedReady {
		return
	}
	s.later(readyWarnAfter, func() {
		if s.warnedReady || s.workers[w.pid] != w || w.state != StateOnline {
			return
		}
		s.warnedReady = true
		s.log.Warn("worker has not said it is listening; readiness and rolling restarts wait for that. "+
			"For a server that speaks neither sd_notify (READY=1 to $NOTIFY_SOCKET) nor Node's cluster protocol, set HERD_READY_SIGNAL=started",
			"id", w.id, "pid", w.pid, "after", readyWarnAfter.String())
	})
}

// listening marks w as serving.
func (s *Supervisor) listening(w *worker) {
	if w.retired || w.state == StateStopping || w.state == StateDead {
		return
	}
	now := time.Now()
	if w.state != StateListening {
		w.state = StateListening
		w.listening = now
		s.log.Info("worker listening", "id", w.id, "index", w.slot.index, "pid", w.pid)
	}
	s.lastListening = now
	delete(s.initialSlots, w.slot)
	if !s.startedUp && len(s.initialSlots) == 0 {
		s.startedUp = true
		s.log.Info("started: every worker of the first cohort has listened")
	}
	s.rollReady(w)
}

// notified applies one sd_notify message.
func (s *Supervisor) notified(m notify.Message) {
	pids := make(map[int]bool, len(s.workers))
	for pid := range s.workers {
		pids[pid] = true
	}
	pid, ok := m.Worker(pids)
	if !ok {
		pid, ok = notify.Attribute(os.DirFS("/proc"), m.Pid, pids)
	}
	if !ok {
		s.log.Debug("sd_notify message from a process that is no worker", "pid", m.Pid)
		return
	}
	w := s.workers[pid]
	if m.HasStatus {
		w.status = m.Status
	}
	if m.Watchdog {
		w.beat = time.Now()
	}
	if m.WatchdogTrigger {
		s.log.Warn("worker asked for its watchdog to fire; killing it", "id", w.id, "pid", w.pid)
		s.signalGroup(w.pid, unix.SIGKILL)
		return
	}
	// As systemd: STOPPING=1 wins over READY=1 in one message.
	switch {
	case m.Stopping:
		w.leaving = true // said it is going: its exit is intended
		if w.state == StateListening || w.state == StateOnline {
			w.state = StateDraining
			s.log.Info("worker draining", "id", w.id, "pid", w.pid)
		}
	case m.Ready && s.cfg.Ready != ReadyStarted:
		s.listening(w)
	}
}

// checkWatchdog kills every worker whose last WATCHDOG=1 is older than the
// watchdog timeout; the restart policy then replaces it.
func (s *Supervisor) checkWatchdog() {
	now := time.Now()
	for _, w := range s.workers {
		if w.retired || w.state == StateStopping || now.Sub(w.beat) <= s.cfg.Watchdog {
			continue
		}
		s.log.Warn("worker watchdog timeout: no WATCHDOG=1; killing it", "id", w.id, "pid", w.pid,
			"timeout", s.cfg.Watchdog.String(), "silent", now.Sub(w.beat).Round(time.Millisecond).String())
		w.beat = now // once
		s.signalGroup(w.pid, unix.SIGKILL)
	}
}
