package handoff

import "sync"

// Stats are the hand-off's running totals; Handoff.Stats may be called
// from any goroutine.
type Stats struct {
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

// stats is the live form of Stats, under its own lock: a scrape never
// waits for the hand-off.
type stats struct {
	mu     sync.Mutex
	totals Stats
}

func (s *stats) accepted(n int) {
	s.mu.Lock()
	s.totals.Accepted += uint64(n)
	s.mu.Unlock()
}

func (s *stats) handedOff(slot int) {
	s.mu.Lock()
	if s.totals.HandedOff == nil {
		s.totals.HandedOff = map[int]uint64{}
	}
	s.totals.HandedOff[slot]++
	s.mu.Unlock()
}

func (s *stats) refused() {
	s.mu.Lock()
	s.totals.Refused++
	s.mu.Unlock()
}

func (s *stats) queued(delta int) {
	s.mu.Lock()
	s.totals.Queued += delta
	s.mu.Unlock()
}

func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.totals
	out.HandedOff = make(map[int]uint64, len(s.totals.HandedOff))
	for k, v := range s.totals.HandedOff {
		out.HandedOff[k] = v
	}
	return out
}
