// Package cluster supervises herd's workers: N copies of one command, each in
// its own process group, restarted by policy, stopped gracefully.
//
// One owner of mutable state: Supervisor.Run is an event loop on a single
// goroutine. Signals, child exits (handed over by the reaper), restart timers
// and shutdown ticks arrive on channels, and only the loop reads or changes
// worker state. Everything else reads the immutable Snapshot the loop
// publishes after every event. There is no lock on worker state, and the
// order in which events are handled is the order in which they arrived.
//
// The hot path is not the loop's: package handoff reads every worker's
// channel and, under rr, accepts connections and hands them out, on a
// goroutine of its own waiting in epoll_wait. The loop drives it through
// a few calls (Attach, Open, Join, Leave, Disconnect, Drain, Close,
// Detach) and holds pointers to its records without touching them; every
// message a worker sends other than a newconn reply comes to the loop, in
// order.
//
// The supervisor never waits on a process itself: it starts workers through
// reaper.Spawn and learns of their end from the reaper.
//
// Every worker starts with no signal blocked and every signal at its default
// action, whatever herd inherited (sigstate.go): directly, forked from a
// thread whose mask is empty, or, when herd has a signal ignored or the
// worker gets sockets or Node's channel, through herd's launcher (LaunchArg),
// which resets both right before execve.
package cluster
