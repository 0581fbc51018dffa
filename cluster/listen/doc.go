// Package listen reads HERD_LISTEN and binds the sockets herd owns and
// hands to its workers.
//
// Parse turns HERD_LISTEN into Specs: TCP addresses (dual-stack "tcp",
// "tcp4", "tcp6") and unix socket paths with their file's mode and owner,
// each with its LISTEN_FDNAMES name. Parsing is pure apart from resolving
// user and group names (LookupUser, LookupGroup); nothing is bound.
//
// Bind and BindAll make a Spec a Listener: a socket created, bound and
// listening with raw system calls, so that it is SOCK_NONBLOCK|SOCK_CLOEXEC
// from the start. BindAs binds the addresses a worker asks for on demand
// with that worker's credentials, and BindUDP the UDP sockets Node's
// workers share. RemoveStale clears the path of a unix socket before any
// bind of herd's, the notify socket's included.
//
// Invariants:
//   - A Listener's FD is a raw descriptor and is never wrapped in an os.File:
//     os.File.Fd would put the open file description, which every worker
//     shares, into blocking mode.
//   - A file at a unix socket's path is removed only when it is a socket
//     nobody answers on; a live socket and every other kind of file stay.
//     Close removes a socket file only while it is still the one Bind
//     created.
//   - Nothing is left half-open: a failed Bind closes its socket and removes
//     the file it created, and a failed BindAll closes what it bound.
//   - A thread that takes a worker's credentials runs nothing else and is
//     never used again (asUser).
//
// Linux behaviour it relies on:
//   - socket(2) takes SOCK_NONBLOCK and SOCK_CLOEXEC; an IPv6 socket with
//     IPV6_V6ONLY=0 also takes IPv4, as mapped addresses; socket(2) fails
//     with EAFNOSUPPORT where the kernel has no IPv6.
//   - SO_REUSEPORT lets sockets of one user share a port, and the kernel
//     spreads connections over them.
//   - listen(2) caps the backlog at net.core.somaxconn; a port below
//     net.ipv4.ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE.
//   - connect(2) to a unix socket file that no socket is bound to fails with
//     ECONNREFUSED, whatever the socket's type; to a bound socket of another
//     type, with EPROTOTYPE; a non-blocking connect to a full backlog, with
//     EAGAIN.
//   - setgroups, setfsuid, setfsgid and capset made as raw system calls
//     change the calling thread only; the file-system ids are what file
//     permission checks use and what new sockets and files are owned by.
//     The Go runtime ends a thread whose goroutine exits while locked to it.
package listen
