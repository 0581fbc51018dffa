package cluster

import "time"

// restarts reports whether an exit with code leads to a restart. unasked
// says the worker had been listening and left without saying it was
// leaving: on-failure replaces it whatever its code, since the service is
// a worker short.
func (r Restart) restarts(code int, unasked bool) bool {
	switch r {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return code != 0 || unasked
	}
	return false
}

// Backoff spaces out restarts of a slot whose workers fail to start: the
// first restart waits Min, each further one twice as long up to Max. A
// worker that stayed up for Reset or longer is stable, and its slot starts
// again from Min. (A worker that proved it serves is replaced at once and
// never reaches Next: see worker.proved.)
type Backoff struct {
	Min, Max, Reset time.Duration
}

// Next returns the delay before restarting a slot whose worker ran for uptime,
// given the slot's count of unstable runs so far, and the new count.
func (b Backoff) Next(unstable int, uptime time.Duration) (time.Duration, int) {
	if uptime >= b.Reset {
		unstable = 0
	}
	d := b.Min
	for i := 0; i < unstable && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	return d, unstable + 1
}
