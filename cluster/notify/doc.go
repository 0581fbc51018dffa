// Package notify is herd's receiving side of the systemd notify protocol
// (sd_notify(3)).
//
// A worker that speaks no cluster protocol reports its state by sending
// datagrams such as "READY=1\nSTATUS=serving\n" to the AF_UNIX SOCK_DGRAM
// socket named by $NOTIFY_SOCKET. herd owns that socket (Listen); Run reads
// it and hands each datagram over as a Message, and Attribute or
// Message.Worker tell which worker sent it. The rules below follow what
// systemd's manager does with the same datagrams (src/core/manager.c,
// manager_dispatch_notify_fd, and src/shared/notify-recv.c), so a worker
// that works under systemd works under herd:
//
//   - The sender is the pid the kernel puts in SCM_CREDENTIALS, never a pid
//     named in the payload. SO_PASSCRED on the receiving socket makes the
//     kernel attach it to every datagram; it is the sender's pid as seen from
//     herd's pid namespace (0 when the sender is not visible there), and only a
//     sender with CAP_SYS_ADMIN can claim another pid. A datagram without a
//     valid pid is dropped ("Received notify message without valid
//     credentials. Ignoring.").
//   - A payload may hold at most maxPayload (4096) bytes: systemd reads
//     into a NOTIFY_BUFFER_MAX (PIPE_BUF) buffer and drops anything larger
//     ("Received notify message exceeded maximum size. Ignoring.").
//   - A NUL byte anywhere but at the very end drops the datagram ("We permit
//     one trailing NUL byte in the message, but don't expect it").
//   - Lines are separated by '\n' or '\r' (systemd splits on NEWLINE, "\n\r");
//     empty lines are skipped. systemd does not reject a line that is not an
//     assignment: it looks up the keys it knows and ignores the rest. herd does
//     the same (a line without '=' or with an empty key is skipped and
//     counted in Message.Ignored), so "READY=1\ngarbage" still makes a
//     worker ready. A datagram with no assignment at all, the empty one
//     included, carries nothing and is dropped, as current systemd drops the
//     empty message ("Got empty notification message, ignoring.").
//   - File descriptors sent along (SCM_RIGHTS: FDSTORE=1, BARRIER=1) are
//     closed at once: herd keeps no fd store. Closing is also exactly what a
//     BARRIER=1 sender (sd_notify_barrier) waits for, and since Run hands
//     messages over in order, every message sent before the barrier has been
//     delivered when the sender wakes up.
//
// Where herd differs: when a key repeats, the last value wins (systemd acts on
// any READY=1, STOPPING=1 or RELOADING=1 line and on the first STATUS= and
// WATCHDOG=, src/core/service.c). Like systemd, a STATUS= that is not valid
// UTF-8 is ignored.
//
// Invariants: no fd a datagram carries outlives its read, whatever else is
// wrong with the datagram, so none reaches herd's caller or a worker; Run
// hands messages over in the order they arrived and does nothing but parse,
// close fds and hand over; a bad datagram is dropped and counted, never
// fatal. A socket at a path replaces only a stale socket file
// (listen.RemoveStale), and Close removes the file only while it is still
// the one Listen bound.
//
// Linux behaviour it relies on: SO_PASSCRED makes the kernel attach the
// sender's credentials to every datagram, translated into the receiver's
// pid namespace; an abstract socket name (a leading NUL byte, written '@')
// needs no file system and lives in the network namespace. Queueing: a unix
// datagram socket queues at most net.unix.max_dgram_qlen datagrams (a per
// network namespace sysctl, 10 by default; systemd raises it to 512 on the
// host) and SO_RCVBUF bytes. A sender on a full queue blocks (or gets
// EAGAIN if it is non-blocking); nothing is lost while Run keeps reading,
// which is why Run never does more than parse, close fds and hand over.
package notify
