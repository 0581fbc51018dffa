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
// One exception, for speed: the round-robin hand-off (rr.go) runs on herd's
// poller (poller.go), one goroutine waiting in epoll_wait on the workers'
// channels and the accepting sockets, and the few fields it touches are
// under one lock that the loop takes too. Every other message a worker
// sends still goes to the loop, in order.
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
