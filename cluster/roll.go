package cluster

import (
	"slices"
	"time"
)

// rolling is a rolling restart under way: one slot at a time, a
// replacement starts, and once it listens the old worker is stopped
// gracefully; the next slot follows when the old worker has gone.
type rolling struct {
	queue []*slot // slots still to replace
	cur   *slot   // the slot being replaced
	old   *worker // the worker being stopped
	next  *worker // the replacement being waited for
	start time.Time
	// reason is why: "" for a rolling restart (SIGHUP), a recycle reason
	// when one worker is replaced for its memory or requests; index is
	// then its slot's.
	reason string
	index  int
}

// why is the reason the old workers are stopped for.
func (r *rolling) why() string {
	if r.reason == "" {
		return "rolling restart"
	}
	return r.reason
}

// drop removes sl from the restart (a scale-down removed it).
func (r *rolling) drop(sl *slot) {
	r.queue = slices.DeleteFunc(r.queue, func(q *slot) bool { return q == sl })
}

// startRoll begins a rolling restart (SIGHUP).
func (s *Supervisor) startRoll() {
	if s.stop.active {
		return
	}
	if s.roll != nil {
		s.log.Info("rolling restart already under way; SIGHUP ignored")
		return
	}
	s.roll = &rolling{queue: slices.Clone(s.slots), start: time.Now()}
	s.log.Info("rolling restart", "slots", len(s.roll.queue))
	s.rollStep()
}

// rollStep replaces the next slot that has a worker.
func (s *Supervisor) rollStep() {
	r := s.roll
	if r == nil {
		return
	}
	r.cur, r.old, r.next = nil, nil, nil
	for len(r.queue) > 0 {
		sl := r.queue[0]
		r.queue = r.queue[1:]
		if sl.w == nil || sl.finished || sl.next != nil {
			continue
		}
		w := s.start(sl, true)
		if w == nil {
			s.rollFailed(nil, "the replacement could not start")
			return
		}
		r.cur, r.next = sl, w
		s.later(s.cfg.ReadyTimeout, func() {
			if s.roll == r && r.next == w && w.state != StateListening {
				s.rollFailed(w, "the replacement did not listen within HERD_READY_TIMEOUT")
			}
		})
		return
	}
	if r.reason == "" {
		s.log.Info("rolling restart done", "took", time.Since(r.start).Round(time.Millisecond).String())
	} else {
		s.log.Info("worker replaced", "index", r.index, "reason", r.reason, "took", time.Since(r.start).Round(time.Millisecond).String())
	}
	s.roll = nil
}

// rollReady is called when w listens: if w is the awaited replacement, it
// takes over its slot and the old worker is stopped.
func (s *Supervisor) rollReady(w *worker) {
	r := s.roll
	if r == nil || r.next != w {
		return
	}
	sl := w.slot
	old := sl.w
	sl.w, sl.next, r.next = w, nil, nil
	if old == nil {
		s.rollStep()
		return
	}
	r.old = old
	s.retire(old, r.why())
}

// rollOldExited continues the restart once the replaced worker has gone.
func (s *Supervisor) rollOldExited(w *worker) {
	if s.roll != nil && s.roll.old == w {
		s.rollStep()
	}
}

// rollFailed abandons the rolling restart; the old workers keep serving.
func (s *Supervisor) rollFailed(w *worker, why string) {
	if s.roll == nil {
		return
	}
	s.log.Error(s.roll.why()+" abandoned; the remaining workers keep running", "reason", why)
	if w != nil && s.workers[w.pid] == w {
		w.slot.next = nil
		s.retire(w, "rolling restart abandoned")
	}
	s.roll = nil
}
