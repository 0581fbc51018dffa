// Package ipc is the transport of Node.js's cluster IPC protocol, JSON
// serialization, as Node v20 speaks it (docs/protocol.md, herd's wire
// specification, §1-5 and §11): one Channel per worker, over an AF_UNIX SOCK_STREAM socketpair whose
// other end the worker inherits as NODE_CHANNEL_FD. It frames and decodes
// lines, passes fds, and applies the transport layer's rules; the cluster
// layer (online, queryServer, newconn, ...) is the caller's, helped by
// ClusterMessage, Reply and ServerKey.
//
// # Wire format
//
// Every message is JSON.stringify(value) + "\n". An fd travels as one
// SCM_RIGHTS control message, and a message that carries one is wrapped as
// {"cmd":"NODE_HANDLE","type":"net.Native","msg":<value>}. The receiver of a
// NODE_HANDLE answers {"cmd":"NODE_HANDLE_ACK"}, or {"cmd":"NODE_HANDLE_NACK"}
// when no fd came with it.
//
// # Invariants
//
// One handle in flight. From the moment herd's NODE_HANDLE line is taken for
// writing until the worker's ACK or NACK arrives, every later message from
// herd — handle or not — waits in the queue, in order, as node's own sender
// does. Pipelining handles lets node's reader give a line the wrong fd when a
// line straddles its 64 KiB read boundary (the connection is lost, an fd
// leaks in the worker). Pending reports the state so a round-robin
// dispatcher can pick free workers.
//
// The fd goes with the line's first byte. The sendmsg that carries the first
// byte of a NODE_HANDLE line carries its fd, and no other sendmsg carries
// any: a partly written line continues without it. Node's reader gives a
// received fd to the first NODE_HANDLE line it completes afterwards, so an fd
// attached to anything else would stick to the wrong line.
//
// ACKs bypass the queue. The NODE_HANDLE_ACK or NACK herd owes the worker
// for a handle the app sent is written before anything queued, even while
// herd's own handle is pending (node exempts them the same way); otherwise
// both sides could wait for each other for ever. They never cut into a line
// already partly written: the stream is bytes.
//
// Never (*os.File).Fd(). Fd puts the file back into blocking mode, and
// O_NONBLOCK lives on the open file description that herd and the worker
// share after an fd is passed: a blocking connection stalls the worker's
// whole event loop. The Channel reaches its own fd only through
// SyscallConn's Read and Write (which leave the flags alone), and SendHandle
// refuses an fd that is blocking, not a socket (node aborts on a file), or a
// socket libuv does not adopt (an AF_UNIX datagram socket wedges fd passing).
// Pair returns the child's end as a raw int for syscall.ProcAttr.Files for the
// same reason.
//
// Never an empty or invalid line. JSON.parse throws on either inside node's
// channel reader and the worker dies. Every line herd writes is a JSON value
// produced by encoding/json or checked with json.Valid, with no '\n' inside;
// the encoders cannot fail (a value JSON cannot hold becomes null).
//
// # Reading
//
// Run reads with recvmsg(MSG_CMSG_CLOEXEC) through the Go netpoller (no
// thread per worker, no busy loop) and splits on '\n', with a bound on line
// length. A received fd belongs to the first NODE_HANDLE line completed after
// it arrived and must be claimed by a line that started no later than the
// read that brought it; an fd no line claims, two fds in one read, an empty
// line, invalid JSON, an over-long line and an ACK herd did not ask for are
// each a *ProtocolError: framing is lost and the supervisor ends the worker.
// Every received fd the caller does not take is closed.
//
// # Writing
//
// Send and SendHandle never block on the worker. A line is written at once
// when nothing is ahead of it; the rest of a partial write, and whatever is
// queued, is written by a goroutine that waits in the netpoller for the
// socket to drain. The queue is bounded (ErrBackpressure).
//
// # Closing
//
// Close is the dead-man switch: a node worker reads EOF and calls
// process.exit(0) at once, without draining. For a graceful stop send the
// cluster-level disconnect and wait for EOF instead.
//
// # Linux
//
// The package relies on Linux: recvmsg with MSG_CMSG_CLOEXEC, SO_DOMAIN, and
// the way unix_stream_read_generic ends a read after a segment that carried
// fds. It builds on every system, so that a program importing it builds
// anywhere, but outside Linux Pair, Open, CheckHandle and every method of a
// Channel return ErrNotSupported (ClusterMessage, Reply and ServerKey work).
package ipc
