// Package worker lets a Go server run as a worker under herd, or under any
// Node.js cluster primary: it speaks the worker's side of node's cluster
// protocol (docs/protocol.md, herd's wire specification) the way node v20's
// lib/internal/cluster/child.js does, over the ipc package's transport.
//
//	l, err := worker.Listen("tcp", ":8080") // net.Listen outside herd
//	...
//	go func() { <-worker.Disconnected(); srv.Shutdown(ctx) }()
//	srv.Serve(l)
//
// # Outside herd
//
// A process is a worker when both NODE_CHANNEL_FD and NODE_UNIQUE_ID are
// set. Otherwise Listen is net.Listen, Disconnected and Messages return nil
// channels (never ready), Disconnect does nothing and Send returns
// ErrNotWorker. The same binary runs alone and under herd.
//
// # Under herd
//
// The first call of any function opens the channel at NODE_CHANNEL_FD (the
// fd becomes close-on-exec), deletes NODE_CHANNEL_FD,
// NODE_CHANNEL_SERIALIZATION_MODE and NODE_UNIQUE_ID from the environment
// so that children do not take them for their own, starts reading, and
// sends {"cmd":"NODE_CLUSTER","act":"online","seq":0}.
//
// Listen sends queryServer with the fields node sends for the equivalent
// listen() call (":8080" is listen(8080): address null, addressType 4,
// backlog 0; a unix path is made absolute, port and addressType -1) and an
// index counted per address within the process, as child.js does, so herd
// derives the same server key for a Go worker as for a node one. It then
// waits for herd's reply, which depends on the scheduling policy:
//
//   - none (shared) and reuseport: the reply carries a socket, bound by herd
//     and shared by every worker (none) or this worker's own SO_REUSEPORT
//     socket (reuseport). The worker calls listen(2) on it unless it already
//     listens and accepts on it itself: the kernel spreads connections.
//     Addr is the socket's own address.
//   - rr (round-robin): no socket. herd listens and accepts; each connection
//     arrives as a newconn message carrying its fd. The worker answers
//     {"ack":<seq>,"accepted":true} and Accept returns it as a net.Conn
//     (a *net.TCPConn or *net.UnixConn, TCP keep-alive on as with
//     net.Listen). Up to 511 handed-over connections wait for Accept; past
//     that, or once the listener is closed, the answer is accepted:false and
//     herd gives the connection to another worker. Addr is the address herd
//     reports (sockname).
//   - error: a negative errno. Listen returns a *net.OpError wrapping a bind
//     error: errors.Is(err, syscall.EADDRINUSE).
//
// Once the listener is ready, the worker sends listening (the queryServer
// fields with the bound port), and herd counts it as listening. Close sends
// close with herd's key and frees the index.
//
// # Stopping
//
// disconnect from herd is a graceful stop: Disconnected is closed, then
// every listener is closed (Accept returns net.ErrClosed; herd receives a
// close for each). The program finishes in-flight requests and calls
// Disconnect (herd reads EOF) or exits. Disconnect without a disconnect
// from herd is node's cluster.worker.disconnect(): close the listeners, send
// exitedAfterDisconnect, wait for herd's acknowledgement, close the channel;
// herd counts the exit as planned.
//
// The channel ending without a disconnect (herd closed it, or died) ends the
// process with status 0 at once, as node does: the channel is herd's
// dead-man switch, and a worker whose listeners herd no longer serves has
// nothing left to do. A broken protocol ends it with status 1.
//
// # Invariants
//
// The reader never waits for the program: replies go to the Listen that
// asked, connections to a bounded queue, user messages to an unbounded one
// (Messages). A round-robin listener is registered while herd's reply is
// being read, before herd's next message, which may be its first newconn.
//
// Received sockets are made non-blocking before anything wraps them:
// O_NONBLOCK is shared with herd's and other workers' copies, and
// (*os.File).Fd, which net.FileListener and net.FileConn call, turns a file
// os made non-blocking back into a blocking one. A blocking socket stalls a
// node worker sharing it (docs/protocol.md §11.1).
//
// # Linux
//
// The package relies on Linux, as the ipc package does: SCM_RIGHTS over the
// AF_UNIX channel, SO_ACCEPTCONN, and listen(2) on a socket another process
// bound. It builds on every system, so that a server using it builds and runs
// on a developer's machine: there, outside herd, Listen is net.Listen as
// anywhere else. Only with the worker environment set does the difference
// show: the channel cannot be opened, and Listen and Send return an error
// wrapping ipc.ErrNotSupported rather than bind the port behind the
// primary's back.
package worker
