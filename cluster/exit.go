package cluster

import (
	"time"

	"github.com/herd-sh/herd/reaper"

	"golang.org/x/sys/unix"
)

// exited handles the end of a worker.
func (s *Supervisor) exited(ev exitEvent) {
	w, sl := ev.w, ev.w.slot
	s.noteExit(w, ev.st, s.oomKilled(w, ev.st))
	code := ev.st.Code()
	uptime := time.Since(w.start)
	if w.state == StateListening {
		s.lastListening = time.Now()
	}
	w.state = StateDead
	delete(s.workers, w.pid)
	if w.ch != nil {
		s.dropFromServers(w)
		s.detachChannel(w, true) // gone: its unanswered connection goes on or is closed
	}
	if failure := w.launchFailure(); failure != nil {
		// The launcher could not execve the command: as when herd itself
		// cannot, never retried.
		err := explainStart(s.cfg.Path, s.cfg.Dir, failure)
		code, _ := StartErrorCode(err)
		s.log.Error("cannot start command", "path", s.cfg.Path, "err", err, "code", code)
		if sl.w == w {
			sl.w = nil
		}
		if sl.next == w {
			sl.next = nil
			s.rollFailed(w, "the replacement could not start")
		}
		sl.finished = true
		if !w.retired {
			s.fail(code)
		}
		if !s.stop.active && s.live() == 0 && s.pending == 0 {
			s.beginStop(0, "command cannot start")
		}
		return
	}
	s.log.Info("worker exited", "id", w.id, "index", sl.index, "pid", w.pid,
		"code", code, "status", describe(ev.st.Wait), "uptime", uptime.Round(time.Millisecond).String())

	switch {
	case w.retired:
		// Stopped on purpose (scale-down, rolling restart): no failure.
		if sl.w == w {
			sl.w = nil
		}
		s.releaseSlot(sl)
		s.rollOldExited(w)
		s.replaceStopped(w)
	case sl.next == w:
		sl.next = nil
		s.rollFailed(w, "the replacement exited before it listened")
	default:
		sl.w = nil
		s.slotExited(sl, w, code, uptime)
	}
	if !s.stop.active && s.live() == 0 && s.pending == 0 {
		s.beginStop(0, "no worker left to run")
	}
}

// slotExited applies the restart policy to the end of a slot's worker. A
// worker that proved it serves (see proved) and then ended is replaced at
// once: the backoff is for workers that cannot start, which would
// otherwise spin. A worker that listened and left without saying so is
// replaced whatever its code (Node's primary counts such an exit as
// accidental).
func (s *Supervisor) slotExited(sl *slot, w *worker, code int, uptime time.Duration) {
	if s.cfg.Foreground && !s.stop.active && code == 128+int(unix.SIGINT) {
		// The terminal sent ^C to the worker holding it: the person at the
		// terminal wants everything to stop, not a restart.
		sl.finished = true
		s.fail(code)
		s.beginStop(unix.SIGINT, "interrupted at the terminal")
		return
	}
	unasked := !w.listening.IsZero() && !w.leaving
	if !s.stop.active && !sl.finished && s.cfg.Restart.restarts(code, unasked) {
		if unasked && code == 0 {
			s.log.Warn("worker left without being asked to stop; replacing it", "id", w.id, "index", sl.index, "pid", w.pid,
				"code", code, "hint", "a worker that means to leave calls cluster.worker.disconnect() or sends sd_notify STOPPING=1")
		}
		var delay time.Duration
		if w.proved(time.Now()) {
			sl.unstable, sl.capped = 0, false
		} else {
			delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, uptime)
			sl.capped = delay >= s.cfg.Backoff.Max && s.cfg.Backoff.Max > 0
			if sl.capped {
				s.log.Warn("worker crash loop: restart delay at its cap", "index", sl.index, "delay", delay.String(), "restarts", sl.restarts)
			}
		}
		sl.restarts++
		s.restarts++
		s.schedule(sl, w.id, delay)
		return
	}
	sl.finished = true
	if code != 0 {
		s.fail(code)
	}
}

// servingProof is how long a worker must have been listening to count as
// serving when herd cannot see it take a connection (none, reuseport, or
// no connection came): one that keeps dying sooner after it listens is
// still failing to start, and its restarts back off.
const servingProof = time.Second

// proved reports whether w, ending at now, had shown that it serves: it
// was listening and either took a connection herd handed it or stayed
// listening for servingProof.
func (w *worker) proved(now time.Time) bool {
	return proved(w.listening, w.hw != nil && w.hw.Served(), now)
}

// proved is the rule of worker.proved: listening is when the worker last
// became listening (zero if never), served whether it took a connection.
func proved(listening time.Time, served bool, now time.Time) bool {
	if listening.IsZero() {
		return false
	}
	return served || now.Sub(listening) >= servingProof
}

// later runs f on the loop after d, unless Run has returned by then.
func (s *Supervisor) later(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case s.calls <- f:
		case <-s.done:
		}
	})
}

// schedule restarts sl after delay; id is the worker being replaced.
func (s *Supervisor) schedule(sl *slot, id int, delay time.Duration) {
	s.pending++
	sl.due = time.Now().Add(delay)
	s.log.Info("worker restart scheduled", "id", id, "index", sl.index, "delay", delay.String())
	var t *time.Timer
	t = s.later(delay, func() {
		if sl.timer == t { // not cancelled, not replaced
			sl.timer = nil
			s.pending--
			s.start(sl, false)
			if !s.stop.active && s.live() == 0 && s.pending == 0 {
				s.beginStop(0, "no worker left to run")
			}
		}
	})
	sl.timer = t
}

// cancelRestart drops sl's pending restart, if any.
func (s *Supervisor) cancelRestart(sl *slot) {
	if sl.timer != nil {
		sl.timer.Stop()
		sl.timer = nil
		s.pending--
	}
}

// fail records a failing final exit; the first one decides herd's code.
func (s *Supervisor) fail(code int) {
	if s.failure == nil {
		s.failure = &code
	}
}

// oomKilled reports whether the kernel's OOM killer ended w: a SIGKILL
// herd did not send, while the count of OOM kills in the container's
// cgroup rose. Each kill counted accounts for one worker.
func (s *Supervisor) oomKilled(w *worker, st reaper.Status) bool {
	m := s.cfg.Memory
	if m.OOMDir == "" || w.killed || !st.Wait.Signaled() || st.Wait.Signal() != unix.SIGKILL {
		return false
	}
	n, ok := s.procs.oomKills(m.OOMDir, m.Version)
	if !ok || n <= s.oomSeen {
		return false
	}
	s.oomSeen++
	s.log.Warn("worker killed by the kernel's OOM killer", "id", w.id, "index", w.slot.index, "pid", w.pid,
		"memory", w.memory, "working_set", s.workingSet, "limit", m.Limit)
	return true
}
