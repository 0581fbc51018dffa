package cluster

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Memory is what herd knows and does about memory. Sizes are bytes; 0 is
// "off" or "not known".
type Memory struct {
	// Limit is the container's memory budget (package memory), Source
	// where it came from; Dir and Version name the cgroup whose working
	// set herd reads, OOMDir the one whose OOM kills count its workers'
	// ("" when none is known).
	Limit   int64
	Source  string
	Dir     string
	OOMDir  string
	Version int
	// High and Critical are watermarks on the working set: above High the
	// largest worker is replaced gracefully, above Critical it is stopped
	// at once.
	High, Critical int64
	// WorkerMax replaces a worker whose own memory is above it.
	WorkerMax int64
	// MaxRequests replaces a worker once it has taken that many
	// connections plus a random 0 to Jitter (rr only).
	MaxRequests, Jitter int
}

// memoryEvery is how often herd measures its workers and the container
// when it may act on the figures (a limit is known, or
// HERD_WORKER_MAX_MEMORY is set): often enough that a server leaking tens
// of MB a second is caught before the kernel's OOM killer acts. With
// nothing to act on, the figures are only for /status and /metrics, and
// are read every memoryIdleEvery.
const (
	memoryEvery     = 250 * time.Millisecond
	memoryIdleEvery = 2 * time.Second
)

// Recycle reasons: the labels of herd_worker_recycles_total.
const (
	RecycleMaxMemory       = "max-memory"       // the worker passed HERD_WORKER_MAX_MEMORY
	RecycleMemoryWatermark = "memory-watermark" // the container passed HERD_MEMORY_HIGH
	RecycleMemoryCritical  = "memory-critical"  // the container passed HERD_MEMORY_CRITICAL
	RecycleMaxRequests     = "max-requests"     // the worker took HERD_MAX_REQUESTS connections
)

// RecycleReasons lists every reason, in a fixed order.
var RecycleReasons = []string{RecycleMaxMemory, RecycleMemoryWatermark, RecycleMemoryCritical, RecycleMaxRequests}

// memEvent is one reading of the workers and the container.
type memEvent struct {
	sizes      map[int]int64 // by worker pid: its process group's memory
	workingSet int64
	wsKnown    bool
}

// measure reads every worker's memory and the container's working set
// every memoryEvery and hands each reading to the loop. The pids come from
// the published Snapshot, so it never touches the loop's state; it runs
// until Run returns.
func (s *Supervisor) measure() {
	every := memoryIdleEvery
	if m := s.cfg.Memory; m.Limit > 0 || m.WorkerMax > 0 || m.High > 0 || m.Critical > 0 {
		every = memoryEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		var pids []int
		for _, w := range s.Snapshot().Workers {
			pids = append(pids, w.Pid)
		}
		ev := memEvent{sizes: s.procs.sizes(pids)}
		if s.cfg.Memory.Dir != "" {
			ev.workingSet, ev.wsKnown = s.procs.workingSet(s.cfg.Memory.Dir, s.cfg.Memory.Version)
		}
		select {
		case s.memory <- ev:
		case <-s.done:
			return
		}
	}
}

// measured applies a reading: the figures for the Snapshot, then what the
// settings say to do about them.
func (s *Supervisor) measured(ev memEvent) {
	for pid, n := range ev.sizes {
		w := s.workers[pid]
		if w == nil || n <= 0 {
			// No resident memory: a process whose address space is gone
			// (the OOM killer's victim before its exit is reaped). Its
			// last size stays, the one its exit is reported with.
			continue
		}
		w.memory = n
		if w.state == StateListening && !w.sized {
			// Its size when it starts serving: what a replacement takes.
			w.sized = true
			s.workerBase = max(s.workerBase, n)
		}
	}
	if ev.wsKnown {
		s.workingSet = ev.workingSet
	}
	s.logReading()
	if s.stop.active {
		return
	}
	s.recycleByMemory(ev)
	s.recycleByRequests()
}

// logReading logs, at debug level, the container's working set and the
// size of each slot's worker in slot order (slot0=..., by slot, never by
// pid: a slot's figure stays comparable across its replacements).
func (s *Supervisor) logReading() {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	args := []any{"working_set", s.workingSet, "limit", s.cfg.Memory.Limit}
	for _, sl := range s.slots {
		if sl.w != nil && sl.w.memory > 0 {
			args = append(args, "slot"+strconv.Itoa(sl.index), sl.w.memory)
		}
	}
	s.log.Debug("memory reading", args...)
}

// recycleByMemory replaces a worker above HERD_WORKER_MAX_MEMORY, or the
// largest when the container is above the high watermark, one slot at a
// time; above the critical watermark, or when the container has no room
// for a replacement beside the largest worker, it stops the largest first
// and starts its replacement once it has gone.
func (s *Supervisor) recycleByMemory(ev memEvent) {
	m := s.cfg.Memory
	if w := s.stoppingFirst(); w != nil {
		// Its memory is still charged: wait until it has gone, unless the
		// container reaches the critical mark meanwhile; then it goes now.
		if ev.wsKnown && m.Critical > 0 && ev.workingSet >= m.Critical && !w.killed {
			s.log.Warn("worker killed: the container reached the critical mark while it was stopping",
				s.recycleFigures(w, RecycleMemoryCritical)...)
			s.signalGroup(w.pid, unix.SIGKILL)
		}
		return
	}
	if ev.wsKnown && m.Critical > 0 && ev.workingSet >= m.Critical {
		if w := s.largest(false); w != nil {
			s.stopFirst(w, RecycleMemoryCritical)
			return
		}
	}
	if s.roll != nil {
		return // one slot at a time
	}
	if m.WorkerMax > 0 {
		for _, w := range s.serving() {
			if w.memory > m.WorkerMax {
				s.recycle(w, RecycleMaxMemory)
				return
			}
		}
	}
	if ev.wsKnown && m.High > 0 && ev.workingSet >= m.High {
		w := s.largest(true)
		switch {
		case w == nil:
		case s.noRoom(ev.workingSet):
			s.stopFirst(w, RecycleMemoryWatermark)
		default:
			s.recycle(w, RecycleMemoryWatermark)
		}
	}
}

// noRoom reports whether a new worker, as large as workers are when they
// start serving, would take the working set to the critical watermark (or
// the limit): a graceful replacement would then bring on the OOM killer.
func (s *Supervisor) noRoom(workingSet int64) bool {
	m := s.cfg.Memory
	ceiling := m.Critical
	if ceiling == 0 {
		ceiling = m.Limit
	}
	return ceiling > 0 && workingSet+s.workerBase >= ceiling
}

// recycleByRequests replaces, one slot at a time, a worker that has taken
// its share of connections (the hand-off already gives it no more).
func (s *Supervisor) recycleByRequests() {
	if s.cfg.Memory.MaxRequests <= 0 || s.roll != nil || s.stop.active {
		return
	}
	for _, w := range s.serving() {
		if w.hw != nil && w.requests > 0 && w.hw.Taken() >= w.requests {
			s.recycle(w, RecycleMaxRequests)
			return
		}
	}
}

// requestLimit is a new worker's HERD_MAX_REQUESTS plus its own jitter, 0
// for none.
func (s *Supervisor) requestLimit() uint64 {
	m := s.cfg.Memory
	if m.MaxRequests <= 0 || !s.cfg.Policy.handsOff() {
		return 0
	}
	return uint64(m.MaxRequests + rand.IntN(m.Jitter+1))
}

// serving lists the workers that are their slot's current worker, not
// being replaced or stopped, in start order.
func (s *Supervisor) serving() []*worker {
	var out []*worker
	s.eachWorker(func(w *worker) {
		if w.slot.w == w && w.slot.next == nil && !w.retired && w.state == StateListening {
			out = append(out, w)
		}
	})
	return out
}

// largest is the serving worker with the most memory (with replaceable,
// one that may be replaced gracefully; else any worker not stopped yet).
func (s *Supervisor) largest(replaceable bool) *worker {
	var best *worker
	s.eachWorker(func(w *worker) {
		ok := !w.retired && w.memory > 0
		if replaceable {
			ok = ok && w.slot.w == w && w.slot.next == nil && w.state == StateListening
		}
		if ok && (best == nil || w.memory > best.memory) {
			best = w
		}
	})
	return best
}

// stoppingFirst returns a worker stopped before its replacement
// (stopFirst) that has not gone yet, or nil: its memory is still charged,
// and stopping or starting another would be premature.
func (s *Supervisor) stoppingFirst() *worker {
	for _, w := range s.workers {
		if w.replaceOnExit {
			return w
		}
	}
	return nil
}

// recycle replaces w gracefully, as a rolling restart of its slot alone:
// the replacement listens before w is stopped.
func (s *Supervisor) recycle(w *worker, reason string) {
	s.recycles[reason]++
	s.log.Info("worker recycled", append(s.recycleFigures(w, reason), "how", "replacement first")...)
	s.roll = &rolling{queue: []*slot{w.slot}, start: time.Now(), reason: reason, index: w.slot.index}
	s.rollStep()
}

// stopGrace is how long a Node worker stopped first has, after
// disconnect, to finish the requests it holds (most take milliseconds)
// before it gets the stop signal.
const stopGrace = 2 * memoryEvery

// stopFirst stops w at once, and starts a worker in its slot once it has
// gone: the container is about to run out of memory, or has no room for a
// replacement beside w, and the kernel's OOM killer would choose its own
// victim. A worker that speaks the cluster protocol gets disconnect first
// (it takes no new connection, and its requests in flight finish) and the
// stop signal stopGrace later; any other, the stop signal now.
func (s *Supervisor) stopFirst(w *worker, reason string) {
	s.recycles[reason]++
	level := slog.LevelInfo
	if reason == RecycleMemoryCritical {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "worker recycled", append(s.recycleFigures(w, reason), "how", "stopped first")...)
	w.replaceOnExit = true
	w.stopped = time.Now()
	w.retired = true
	w.state = StateStopping
	if w.speaksProtocol() {
		s.disconnect(w)
		s.later(stopGrace, func() {
			if s.workers[w.pid] == w {
				s.signalGroup(w.pid, s.cfg.StopSignal)
			}
		})
	} else {
		s.handDisconnect(w)
		s.dropFromServers(w)
		s.signalGroup(w.pid, s.cfg.StopSignal)
	}
	s.later(s.cfg.ShutdownTimeout, func() {
		if s.workers[w.pid] == w {
			s.signalGroup(w.pid, unix.SIGKILL)
		}
	})
}

// replaceStopped starts a worker in the slot of w, stopped first and now
// gone, unless the slot has another worker, is finished, or herd stops.
func (s *Supervisor) replaceStopped(w *worker) {
	sl := w.slot
	if !w.replaceOnExit || s.stop.active || sl.finished || sl.w != nil || sl.next != nil || !slices.Contains(s.slots, sl) {
		return
	}
	s.start(sl, false)
	s.log.Info("worker replaced", "index", sl.index, "reason", "stopped first", "took", time.Since(w.stopped).Round(time.Millisecond).String())
}

// recycleFigures are the log fields of a recycle: the worker and the
// figures that decided it.
func (s *Supervisor) recycleFigures(w *worker, reason string) []any {
	m := s.cfg.Memory
	args := []any{"id", w.id, "index", w.slot.index, "pid", w.pid, "reason", reason, "memory", w.memory}
	switch reason {
	case RecycleMaxMemory:
		args = append(args, "max", m.WorkerMax)
	case RecycleMemoryWatermark:
		args = append(args, "working_set", s.workingSet, "high", m.High, "limit", m.Limit)
	case RecycleMemoryCritical:
		args = append(args, "working_set", s.workingSet, "critical", m.Critical, "limit", m.Limit)
	case RecycleMaxRequests:
		if w.hw != nil {
			args = append(args, "requests", w.hw.Taken(), "max", w.requests)
		}
	}
	return args
}
