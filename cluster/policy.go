package cluster

import (
	"fmt"
	"time"
)

// Restart says which exits of a worker are followed by a new one in its slot.
type Restart string

const (
	// RestartOnFailure restarts a worker that exited non-zero or was killed
	// by a signal; one that exits 0 on its own has finished its work.
	RestartOnFailure Restart = "on-failure"
	// RestartAlways restarts a worker however it ended.
	RestartAlways Restart = "always"
	// RestartNever never restarts: with one worker herd behaves like tini.
	RestartNever Restart = "never"
)

// ParseRestart accepts on-failure, always and never.
func ParseRestart(s string) (Restart, error) {
	switch r := Restart(s); r {
	case RestartOnFailure, RestartAlways, RestartNever:
		return r, nil
	}
	return "", fmt.Errorf("must be one of on-failure, always, never")
}

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

// NodeStop says how herd asks a worker that speaks Node's cluster protocol
// to stop.
type NodeStop string

const (
	// NodeStopDisconnect sends Node's disconnect: the worker's servers
	// close and its in-flight requests finish. A worker still running
	// after the disconnect grace gets the stop signal, and SIGKILL at the
	// shutdown timeout.
	NodeStopDisconnect NodeStop = "disconnect"
	// NodeStopSignal sends the stop signal at once, as to every other
	// worker, for apps whose signal handler is their shutdown.
	NodeStopSignal NodeStop = "signal"
)

// ParseNodeStop accepts disconnect and signal.
func ParseNodeStop(s string) (NodeStop, error) {
	switch n := NodeStop(s); n {
	case NodeStopDisconnect, NodeStopSignal:
		return n, nil
	}
	return "", fmt.Errorf("must be disconnect (Node's disconnect first, the stop signal after HERD_DISCONNECT_GRACE) or signal (the stop signal at once)")
}
