package cluster

import "sync"

// HandoffStats are the round-robin hand-off's running totals (rr). They are
// kept apart from the Snapshot because the hand-off does not pass through
// the supervisor's loop; Handoffs may be called from any goroutine.
type HandoffStats struct {
	// Accepted counts connections herd accepted on its own sockets.
	Accepted uint64
	// HandedOff counts, by worker slot index, connections a worker of that
	// slot took (it answered the newconn with accepted: true).
	HandedOff map[int]uint64
	// Refused counts newconns a worker answered with accepted: false (the
	// connection then went to another worker).
	Refused uint64
	// Queued is the number of accepted connections waiting in herd for a
	// free worker now.
	Queued int
}

// handoffStats is the live form of HandoffStats, under its own lock.
type handoffStats struct {
	mu     sync.Mutex
	totals HandoffStats
}

func (h *handoffStats) accepted(n int) {
	h.mu.Lock()
	h.totals.Accepted += uint64(n)
	h.mu.Unlock()
}

func (h *handoffStats) handedOff(slot int) {
	h.mu.Lock()
	if h.totals.HandedOff == nil {
		h.totals.HandedOff = map[int]uint64{}
	}
	h.totals.HandedOff[slot]++
	h.mu.Unlock()
}

func (h *handoffStats) refused() {
	h.mu.Lock()
	h.totals.Refused++
	h.mu.Unlock()
}

func (h *handoffStats) queued(delta int) {
	h.mu.Lock()
	h.totals.Queued += delta
	h.mu.Unlock()
}

// Handoffs returns the hand-off totals so far.
func (s *Supervisor) Handoffs() HandoffStats {
	h := &s.handoffs
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.totals
	out.HandedOff = make(map[int]uint64, len(h.totals.HandedOff))
	for k, v := range h.totals.HandedOff {
		out.HandedOff[k] = v
	}
	return out
}
