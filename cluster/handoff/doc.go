// Package handoff is herd's hot path: one goroutine, waiting in epoll_wait
// on herd's own epoll set, reads every worker's cluster channel and, under
// the rr policy, accepts each connection and hands it to the next free
// worker, as Node's cluster primary does.
//
// The supervisor (package cluster) drives it through a few calls: Attach
// and Detach a worker's channel, Open a server's accepting socket, Join and
// Leave a worker to and from a server, Disconnect a worker (it gets no more
// connections), Drain a server (stop accepting and hand on what the kernel
// had queued) and Close it. Everything else happens here, on the poller: a
// connection is accepted only while some worker is free, sent as a newconn
// with the socket attached, and settled by the worker's {ack, accepted}
// reply, read where it arrives; every other message of the channel goes to
// the supervisor's deliver function, in order.
//
// Invariant: the hand-off alone writes its records. Handoff, Server and
// Worker keep their mutable state behind one lock, Handoff's, which every
// method takes; the supervisor holds pointers to the records and never
// touches their fields. Worker.Served and Worker.Taken may be read from any
// goroutine.
//
// Why not Go's netpoller: under rr every connection is an accept, a
// sendmsg, a read of the worker's answer and a close, and between two
// connections herd has nothing to do. With the netpoller each of those
// wake-ups parks and unparks goroutines, wakes an idle thread through a
// futex, and takes the runtime's monitor thread out of its deep sleep (it
// then polls every 20 µs for a while); measured with perf, that cost more
// than the hand-off itself. One goroutine waiting in epoll_wait parks
// nothing and wakes nothing else: a connection costs its own system calls.
// Channels are therefore opened ipc.WithoutPoller, and accepting sockets
// are raw duplicates, never in an os.File.
//
// Linux behaviour it relies on: epoll (level-triggered), eventfd, accept4,
// SCM_RIGHTS over the workers' unix socketpairs, and TCP_INFO's
// tcpi_bytes_received and tcpi_bytes_acked with SIOCINQ and SIOCOUTQ to
// tell whether a dead worker had touched a connection.
package handoff
