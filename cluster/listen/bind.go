package listen

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// defaultBacklog is listen(2)'s backlog when the caller gives none and
// /proc/sys/net/core/somaxconn cannot be read; it is the kernel's default
// somaxconn since Linux 5.4.
const defaultBacklog = 4096

// somaxconnPath is where effectiveBacklog reads the kernel's cap, relative to
// the root of the file system it is given.
const somaxconnPath = "proc/sys/net/core/somaxconn"

// Listener is a socket herd owns: bound, listening, non-blocking and
// close-on-exec.
//
// FD is a raw descriptor. herd passes it to workers in
// syscall.StartProcess's Files; it must never be wrapped in an os.File and
// passed through os.File.Fd, which puts the open file description, shared
// with every worker, into blocking mode. A Listener is not safe for
// concurrent use.
type Listener struct {
	Spec Spec
	FD   int
	// Addr is the bound address from getsockname(2), with port 0 resolved:
	// a *net.TCPAddr or a *net.UnixAddr.
	Addr net.Addr

	// created identifies the socket file Bind created, so that Close
	// removes it only while it is still that file.
	created *unix.Stat_t
	// cred is the user BindAs created it as, nil for herd; Close
	// removes it as that user too.
	cred *syscall.Credential
}

// BindError is a failed Bind. Err is the errno (errors.Is(err,
// unix.EADDRINUSE) and unix.EACCES work through it); Hint explains it.
type BindError struct {
	Spec Spec
	Op   string // "bind" (covers the stale-socket check), "socket", "setsockopt SO_REUSEPORT", "listen", "chmod", "chown", ...
	Err  error
	Hint string
}

func (e *BindError) Error() string {
	var b strings.Builder
	b.WriteString("listen ")
	b.WriteString(e.Spec.String())
	b.WriteString(": ")
	if e.Op != "bind" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

func (e *BindError) Unwrap() error { return e.Err }

// Bind creates, binds and listens on the socket sp describes, with raw
// system calls: the socket is SOCK_NONBLOCK|SOCK_CLOEXEC from the start.
//
// TCP sockets get SO_REUSEADDR, and SO_REUSEPORT when reusePort is set (the
// kernel then lets every such socket of the same user bind the port and
// spreads connections over them). Network "tcp" makes an IPv6 socket with
// IPV6_V6ONLY=0 where the host is empty or "::", which serves IPv4 as
// mapped addresses; when the kernel has no IPv6 (socket(2) fails with
// EAFNOSUPPORT) it binds 0.0.0.0 instead. "tcp6" sets IPV6_V6ONLY=1.
//
// For a unix socket, an existing file at the path is removed only if it is
// a socket nobody accepts on (RemoveStale); a live socket or any other kind
// of file, a symbolic link included, is an EADDRINUSE error. Mode and owner
// are applied between bind(2) and listen(2), so no client connects before
// they are in place. unix sockets cannot share a path: reusePort is an
// error.
//
// backlog is listen(2)'s; 0 or less takes /proc/sys/net/core/somaxconn
// (or 4096 if that cannot be read). Errors are *BindError.
func (sp Spec) Bind(backlog int, reusePort bool) (*Listener, error) {
	backlog = effectiveBacklog(backlog, os.DirFS("/"))
	switch sp.Network {
	case netTCP, netTCP4, netTCP6:
		return sp.bindTCP(backlog, reusePort, streamSocket)
	case netUnix:
		return sp.bindUnix(backlog, reusePort)
	}
	return nil, &BindError{Spec: sp, Op: "socket", Err: unix.EAFNOSUPPORT, Hint: "network must be tcp, tcp4, tcp6 or unix"}
}

// effectiveBacklog returns backlog if positive, else somaxconn read from
// fsys, else defaultBacklog.
func effectiveBacklog(backlog int, fsys fs.FS) int {
	if backlog > 0 {
		return backlog
	}
	b, err := fs.ReadFile(fsys, somaxconnPath)
	if err != nil {
		return defaultBacklog
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return defaultBacklog
	}
	return n
}

// bindTCP is Bind for TCP; newSocket is socket, or a fake in tests.
func (sp Spec) bindTCP(backlog int, reusePort bool, newSocket func(family int) (int, error)) (*Listener, error) {
	addr, port, err := splitTCP(sp)
	if err != nil {
		return nil, &BindError{Spec: sp, Op: "bind", Err: fmt.Errorf("bad address %q: %w", sp.Address, err)}
	}
	dual := sp.Network == netTCP && (!addr.IsValid() || addr == netip.IPv6Unspecified())
	family := unix.AF_INET
	if dual || addr.Is6() {
		family = unix.AF_INET6
	}
	fd, err := newSocket(family)
	if err == unix.EAFNOSUPPORT && dual {
		family, addr = unix.AF_INET, netip.IPv4Unspecified()
		fd, err = newSocket(family)
	}
	if err != nil {
		return nil, &BindError{Spec: sp, Op: "socket", Err: err}
	}
	l, err := sp.listenTCP(fd, family, addr, port, backlog, reusePort)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return l, nil
}

// listenTCP sets the options of fd, a new socket of family, binds it to
// addr and port and listens. The caller closes fd on an error.
func (sp Spec) listenTCP(fd, family int, addr netip.Addr, port, backlog int, reusePort bool) (*Listener, error) {
	fail := func(op string, err error) (*Listener, error) {
		return nil, &BindError{Spec: sp, Op: op, Err: err}
	}
	if op, err := sp.setTCPOptions(fd, family, reusePort); err != nil {
		return fail(op, err)
	}
	sa, err := tcpSockaddr(family, addr, port)
	if err != nil {
		return fail("bind", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, &BindError{Spec: sp, Op: "bind", Err: err, Hint: tcpHint(err, port, reusePort)}
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	l := &Listener{Spec: sp, FD: fd, Addr: tcpAddr(got)}
	if p := l.Port(); sp.Name == sp.Network+"-0" && p > 0 {
		l.Spec.Name = sp.Network + "-" + strconv.Itoa(p) // the default name, with the port the kernel chose
	}
	return l, nil
}

// setTCPOptions sets SO_REUSEADDR, SO_REUSEPORT if reusePort, and
// IPV6_V6ONLY on an IPv6 socket (1 for tcp6 only); op names the option
// that failed.
func (sp Spec) setTCPOptions(fd, family int, reusePort bool) (op string, err error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return "setsockopt SO_REUSEADDR", err
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return "setsockopt SO_REUSEPORT", err
		}
	}
	if family == unix.AF_INET6 {
		v6only := 0
		if sp.Network == netTCP6 {
			v6only = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return "setsockopt IPV6_V6ONLY", err
		}
	}
	return "", nil
}

// tcpSockaddr is addr (invalid: every address) and port as family's
// sockaddr, an IPv6 zone resolved to its interface index.
func tcpSockaddr(family int, addr netip.Addr, port int) (unix.Sockaddr, error) {
	if family != unix.AF_INET6 {
		s4 := &unix.SockaddrInet4{Port: port}
		if addr.IsValid() {
			s4.Addr = addr.As4()
		}
		return s4, nil
	}
	s6 := &unix.SockaddrInet6{Port: port}
	if addr.IsValid() {
		s6.Addr = addr.As16()
	}
	if z := addr.Zone(); z != "" {
		id, err := zoneID(z)
		if err != nil {
			return nil, err
		}
		s6.ZoneId = id
	}
	return s6, nil
}

// streamSocket creates a non-blocking, close-on-exec stream socket.
func streamSocket(family int) (int, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// zoneID returns the interface index an IPv6 zone names.
func zoneID(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}

func tcpAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			} else {
				a.Zone = strconv.Itoa(int(sa.ZoneId))
			}
		}
		return a
	}
	return nil
}

// tcpHint explains a TCP bind error.
func tcpHint(err error, port int, reusePort bool) string {
	switch err {
	case unix.EACCES:
		start := unprivilegedPortStart(os.DirFS("/"))
		if port > 0 && port < start {
			return fmt.Sprintf("binding a port below %d needs root or CAP_NET_BIND_SERVICE, or lower net.ipv4.ip_unprivileged_port_start", start)
		}
		return "a security module (SELinux, AppArmor, seccomp) may forbid it"
	case unix.EADDRINUSE:
		if reusePort {
			return "another socket holds the port without SO_REUSEPORT, or belongs to another user"
		}
		return "another process listens on it"
	case unix.EADDRNOTAVAIL:
		return "no network interface of this host has that address"
	}
	return ""
}

// unprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start; 1024
// (the kernel's default) if it cannot.
func unprivilegedPortStart(fsys fs.FS) int {
	b, err := fs.ReadFile(fsys, "proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// Close closes FD and, for a unix socket, removes the socket file if it is
// still the one Bind created. A second Close returns an error wrapping
// os.ErrClosed.
func (l *Listener) Close() error {
	if l.FD < 0 {
		return fmt.Errorf("close %s: %w", l.Spec, os.ErrClosed)
	}
	err := unix.Close(l.FD)
	l.FD = -1
	if err != nil {
		err = fmt.Errorf("close %s: %w", l.Spec, err)
	}
	if c := l.created; c != nil {
		l.created = nil
		_, uerr := asUser(l.cred, func() (struct{}, error) {
			var st unix.Stat_t
			if unix.Lstat(l.Spec.Address, &st) == nil && st.Dev == c.Dev && st.Ino == c.Ino {
				if err := unix.Unlink(l.Spec.Address); err != nil && err != unix.ENOENT {
					return struct{}{}, err
				}
			}
			return struct{}{}, nil
		})
		if uerr != nil && err == nil {
			err = fmt.Errorf("close %s: remove: %w", l.Spec, uerr)
		}
	}
	return err
}

// Port returns the bound TCP port (the kernel's choice for port 0), 0 for a
// unix socket.
func (l *Listener) Port() int {
	if a, ok := l.Addr.(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// BindAll binds every spec in order, without SO_REUSEPORT. On an error it
// closes the sockets it already bound (removing their files) and returns
// the error: nothing is left half-open.
func BindAll(specs []Spec, backlog int) ([]*Listener, error) {
	ls := make([]*Listener, 0, len(specs))
	for _, sp := range specs {
		l, err := sp.Bind(backlog, false)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}
