package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Networks of a ListenSpec, named after their scheme in HERD_LISTEN.
const (
	netTCP  = "tcp"  // IPv6 socket that also takes IPv4 (IPV6_V6ONLY=0), or IPv4 where the kernel has no IPv6
	netTCP4 = "tcp4" // IPv4 only
	netTCP6 = "tcp6" // IPv6 only (IPV6_V6ONLY=1)
	netUnix = "unix" // stream socket at an absolute path
)

// Query options of a HERD_LISTEN entry.
const (
	optName  = "name"
	optMode  = "mode"
	optOwner = "owner"
	optGroup = "group"
)

// maxFDName is systemd's limit on a FileDescriptorName (LISTEN_FDNAMES entry).
const maxFDName = 255

// maxUnixPath is the longest path a sockaddr_un holds with its NUL.
const maxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1

// defaultBacklog is listen(2)'s backlog when the caller gives none and
// /proc/sys/net/core/somaxconn cannot be read; it is the kernel's default
// somaxconn since Linux 5.4.
const defaultBacklog = 4096

// somaxconnPath is where effectiveBacklog reads the kernel's cap, relative to
// the root of the file system it is given.
const somaxconnPath = "proc/sys/net/core/somaxconn"

// ListenSpec is one address of HERD_LISTEN.
//
// ParseListen fills every field. A ListenSpec built by hand must set UID and
// GID to -1 unless it means to chown a unix socket to root.
type ListenSpec struct {
	// Network is "tcp" (one IPv6 socket with IPV6_V6ONLY=0 that serves IPv4
	// too; an IPv4 socket where the kernel has no IPv6), "tcp4", "tcp6" or
	// "unix".
	Network string
	// Address is "host:port" for TCP, where the host is empty (all
	// addresses) or an IP literal and port 0 lets the kernel pick, or an
	// absolute, clean path for unix.
	Address string
	// Name is the socket's LISTEN_FDNAMES entry: 1 to 255 printable ASCII
	// characters, no ':' (systemd's rule for FileDescriptorName). ParseListen
	// defaults it to "<network>-<port>" ("tcp-8080") or "unix-<file name>"
	// ("unix-app.sock").
	Name string
	// Mode, for unix sockets, is the permission bits set on the socket file
	// after bind(2); 0 leaves what the umask gave.
	Mode os.FileMode
	// UID and GID, for unix sockets, are the socket file's owner and group
	// after bind(2); -1 leaves it unchanged.
	UID, GID int
}

// ParseListen reads HERD_LISTEN: one or more addresses separated by commas
// and/or white space. An address is
//
//	[tcp|tcp4|tcp6://]host:port[?name=N]
//	unix:///absolute/path[?name=N&mode=0660&owner=USER|UID&group=GROUP|GID]
//
// where host is empty (all addresses), an IPv4 literal or a bracketed IPv6
// literal, and port is 0-65535 (0: the kernel picks one). Without a scheme
// an address is "tcp". A character that would end the entry (',', white
// space, '?', '%') is written %XX in a path or name.
//
// Errors name the bad entry and say what is allowed; the caller adds the
// setting's name. Two entries may not listen on the same address, which
// includes "0.0.0.0:80" next to ":80" (a dual-stack ":80" takes IPv4 too).
func ParseListen(s string) ([]ListenSpec, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(entries) == 0 {
		return nil, errors.New("no address: give one or more of :8080, tcp://[::]:8080, tcp4://0.0.0.0:8080, unix:///run/app.sock, separated by commas")
	}
	specs := make([]ListenSpec, 0, len(entries))
	for _, e := range entries {
		sp, err := parseListenEntry(e)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		for i, prev := range specs {
			if listenOverlaps(prev, sp) {
				return nil, fmt.Errorf("%q: listens on the same address as %q: give each address once", e, entries[i])
			}
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// parseListenEntry parses one HERD_LISTEN address.
func parseListenEntry(e string) (ListenSpec, error) {
	sp := ListenSpec{UID: -1, GID: -1}
	rest := e
	if scheme, after, ok := strings.Cut(e, "://"); ok {
		sp.Network = strings.ToLower(scheme)
		rest = after
	} else {
		if scheme, _, ok := strings.Cut(e, ":"); ok {
			switch strings.ToLower(scheme) {
			case netTCP, netTCP4, netTCP6, netUnix:
				return sp, fmt.Errorf("write the scheme with \"://\", as in %s://", strings.ToLower(scheme))
			}
		}
		if strings.HasPrefix(e, "/") {
			return sp, fmt.Errorf("a unix socket is written unix://%s", echo(e, "/PATH"))
		}
		sp.Network = netTCP
	}
	rest, query, _ := strings.Cut(rest, "?")
	opts, err := parseListenOptions(query)
	if err != nil {
		return sp, err
	}
	switch sp.Network {
	case netTCP, netTCP4, netTCP6:
		for _, k := range []string{optMode, optOwner, optGroup} {
			if _, ok := opts[k]; ok {
				return sp, fmt.Errorf("option %s applies to unix sockets only; a TCP address takes only name", k)
			}
		}
		ap, err := parseListenHostPort(sp.Network, rest)
		if err != nil {
			return sp, err
		}
		sp.Address = ap
		_, port, _ := net.SplitHostPort(ap)
		sp.Name = sp.Network + "-" + port
	case netUnix:
		p, err := parseUnixPath(rest)
		if err != nil {
			return sp, err
		}
		sp.Address = p
		sp.Name = defaultUnixName(p)
		if v, ok := opts[optMode]; ok {
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o777 || m == 0 {
				return sp, fmt.Errorf("bad mode %q: give octal permission bits from 1 to 0777, such as 0660", v)
			}
			sp.Mode = os.FileMode(m)
		}
		if v, ok := opts[optOwner]; ok {
			uid, _, err := LookupUser(v)
			if err != nil {
				return sp, fmt.Errorf("owner: %w", err)
			}
			sp.UID = uid
		}
		if v, ok := opts[optGroup]; ok {
			gid, err := LookupGroup(v)
			if err != nil {
				return sp, fmt.Errorf("group: %w", err)
			}
			sp.GID = gid
		}
	default:
		return sp, fmt.Errorf("unknown scheme %q: use tcp://, tcp4://, tcp6:// or unix://", sp.Network)
	}
	if v, ok := opts[optName]; ok {
		if err := checkFDName(v); err != nil {
			return sp, err
		}
		sp.Name = v
	}
	return sp, nil
}

// parseListenOptions reads the query of an entry: each known option at most once,
// never empty.
func parseListenOptions(query string) (map[string]string, error) {
	opts := map[string]string{}
	if query == "" {
		return opts, nil
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("bad options %q: %w", query, err)
	}
	for k, v := range vals {
		switch k {
		case optName, optMode, optOwner, optGroup:
		default:
			return nil, fmt.Errorf("unknown option %q: allowed are name, and for unix sockets mode, owner, group", k)
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("option %s given %d times: give it once", k, len(v))
		}
		if v[0] == "" {
			return nil, fmt.Errorf("option %s is empty", k)
		}
		opts[k] = v[0]
	}
	return opts, nil
}

// parseListenHostPort checks "host:port" for network and returns its canonical
// form: the host as an IP literal in its shortest form (IPv4-mapped IPv6
// unmapped for tcp and tcp4), empty only for network tcp.
func parseListenHostPort(network, hp string) (string, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		switch {
		case hp == "":
			return "", errors.New("missing host:port: write :8080 for all addresses")
		case !strings.Contains(hp, ":"):
			if _, err := parseListenPort(hp); err == nil {
				return "", fmt.Errorf("missing colon: write :%s for port %s on all addresses", echo(hp, "PORT"), echo(hp, "PORT"))
			}
			return "", fmt.Errorf("missing port: write %s:PORT", echo(hp, "HOST"))
		case strings.Count(hp, ":") > 1 && !strings.HasPrefix(hp, "["):
			return "", errors.New("an IPv6 host is written in brackets, as in [::1]:8080")
		}
		return "", fmt.Errorf("bad host:port: %w", err)
	}
	pn, err := parseListenPort(port)
	if err != nil {
		return "", err
	}
	addr, err := parseListenHost(network, host)
	if err != nil {
		return "", err
	}
	if !addr.IsValid() {
		return ":" + strconv.Itoa(pn), nil
	}
	return netip.AddrPortFrom(addr, uint16(pn)).String(), nil
}

// parseListenPort accepts decimal 0-65535; 0 asks the kernel for a free port.
func parseListenPort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port: give a number from 0 to 65535 (0: the kernel picks one)")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad port %q: give a number from 0 to 65535 (0: the kernel picks one)", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("port %s out of range: give a number from 0 to 65535 (0: the kernel picks one)", echo(s, "number"))
	}
	return n, nil
}

// maxEcho is the longest part of a value an error repeats unquoted, in an
// example of what to write; herd's configuration errors cut quoted values
// to the same length.
const maxEcho = 64

// echo is s, for an error's example of what to write, or placeholder when
// s is too long to repeat on one readable line.
func echo(s, placeholder string) string {
	if len(s) > maxEcho {
		return placeholder
	}
	return s
}

// parseListenHost returns host's address for network, or the invalid Addr for an
// empty host under tcp (all addresses, either family).
func parseListenHost(network, host string) (netip.Addr, error) {
	if host == "" {
		switch network {
		case netTCP4:
			return netip.IPv4Unspecified(), nil
		case netTCP6:
			return netip.IPv6Unspecified(), nil
		}
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return a, fmt.Errorf("bad host %q: give an IP address such as 0.0.0.0, 127.0.0.1, [::] or [::1], or nothing for all addresses (host names are not resolved)", host)
	}
	switch network {
	case netTCP4:
		if a = a.Unmap(); !a.Is4() {
			return a, fmt.Errorf("tcp4 needs an IPv4 host, not %s: use tcp6:// or tcp://", host)
		}
	case netTCP6:
		if !a.Is6() || a.Is4In6() {
			return a, fmt.Errorf("tcp6 needs an IPv6 host, not %s: use tcp4:// or tcp://", host)
		}
	default:
		a = a.Unmap()
	}
	return a, nil
}

// parseUnixPath decodes the path of a unix:// entry and checks that bind(2)
// can take it.
func parseUnixPath(raw string) (string, error) {
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("bad path %q: %w", raw, err)
	}
	switch {
	case p == "":
		return "", errors.New("missing path: write unix:///run/app.sock")
	case strings.HasPrefix(p, "@"):
		return "", errors.New("abstract unix sockets are not supported: give an absolute path, as in unix:///run/app.sock")
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("unix socket path %q is relative: give an absolute path with three slashes, as in unix:///run/app.sock", p)
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("path contains a NUL byte")
	case strings.HasSuffix(p, "/") || path.Base(p) == "." || path.Base(p) == "..":
		return "", fmt.Errorf("path %q names a directory: give the socket file's path", p)
	}
	p = path.Clean(p)
	if len(p) > maxUnixPath {
		return "", fmt.Errorf("path is %d bytes long: a unix socket path can have at most %d", len(p), maxUnixPath)
	}
	return p, nil
}

// checkFDName applies systemd's rule for a FileDescriptorName.
func checkFDName(s string) error {
	if s == "" || len(s) > maxFDName {
		return fmt.Errorf("bad name %q: give 1 to %d characters", s, maxFDName)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == ':' {
			return fmt.Errorf("bad name %q: a LISTEN_FDNAMES entry is printable ASCII without ':'", s)
		}
	}
	return nil
}

// defaultUnixName is "unix-" and the socket's file name, with every
// character systemd does not allow in a name replaced by '_'.
func defaultUnixName(p string) string {
	b := []byte("unix-" + path.Base(p))
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == ':' {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), maxFDName)])
}

// escapeListenPath writes p so that parseUnixPath reads it back from one entry:
// '%', ',', '?', '#', white space, control characters and invalid UTF-8
// become %XX.
func escapeListenPath(p string) string {
	var b strings.Builder
	for len(p) > 0 {
		r, n := utf8.DecodeRuneInString(p)
		if r == '%' || r == ',' || r == '?' || r == '#' || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError && n == 1 {
			for i := 0; i < n; i++ {
				fmt.Fprintf(&b, "%%%02X", p[i])
			}
		} else {
			b.WriteString(p[:n])
		}
		p = p[n:]
	}
	return b.String()
}

// String returns the address in canonical form, without options:
// "tcp://:8080", "tcp://[::]:8080", "tcp4://0.0.0.0:8080", "unix:///run/app.sock".
// ParseListen reads it back to the same Network and Address.
func (sp ListenSpec) String() string {
	if sp.Network == netUnix {
		return "unix://" + escapeListenPath(sp.Address)
	}
	return sp.Network + "://" + sp.Address
}

// listenOverlaps reports whether a and b cannot both be bound: the same unix
// path, or the same TCP port (not 0) on a shared address of a shared family.
func listenOverlaps(a, b ListenSpec) bool {
	if (a.Network == netUnix) != (b.Network == netUnix) {
		return false
	}
	if a.Network == netUnix {
		return a.Address == b.Address
	}
	ea, aok := tcpEndpoint(a)
	eb, bok := tcpEndpoint(b)
	if !aok || !bok || ea.port == 0 || ea.port != eb.port {
		return false
	}
	for _, f := range []int{4, 6} {
		if ea.has(f) && eb.has(f) && (ea.wildcard() || eb.wildcard() || ea.addr == eb.addr) {
			return true
		}
	}
	return false
}

// listenEndpoint is what a TCP spec takes: a port on an address, or on every
// address of one or both families.
type listenEndpoint struct {
	addr   netip.Addr // invalid: every address of both families
	port   int
	v4, v6 bool
}

func (e listenEndpoint) has(family int) bool { return family == 4 && e.v4 || family == 6 && e.v6 }

func (e listenEndpoint) wildcard() bool {
	return !e.addr.IsValid() || e.addr.IsUnspecified()
}

func tcpEndpoint(sp ListenSpec) (listenEndpoint, bool) {
	addr, port, err := splitTCPSpec(sp)
	if err != nil {
		return listenEndpoint{}, false
	}
	e := listenEndpoint{addr: addr, port: port}
	switch {
	case !addr.IsValid() || sp.Network == netTCP && addr == netip.IPv6Unspecified():
		e.addr, e.v4, e.v6 = netip.Addr{}, true, true
	case addr.Is4():
		e.v4 = true
	default:
		e.v6 = true
	}
	return e, true
}

// splitTCPSpec returns the address (invalid for an empty host) and port of a
// TCP spec, checked as ParseListen checks them.
func splitTCPSpec(sp ListenSpec) (netip.Addr, int, error) {
	host, port, err := net.SplitHostPort(sp.Address)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	pn, err := parseListenPort(port)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	addr, err := parseListenHost(sp.Network, host)
	return addr, pn, err
}

// Listener is a socket herd owns: bound, listening, non-blocking and
// close-on-exec.
//
// FD is a raw descriptor. herd passes it to workers in
// syscall.StartProcess's Files; it must never be wrapped in an os.File and
// passed through os.File.Fd, which puts the open file description, shared
// with every worker, into blocking mode. A Listener is not safe for
// concurrent use.
type Listener struct {
	Spec ListenSpec
	FD   int
	// Addr is the bound address from getsockname(2), with port 0 resolved:
	// a *net.TCPAddr or a *net.UnixAddr.
	Addr net.Addr

	// created identifies the socket file Bind created, so that Close
	// removes it only while it is still that file.
	created *unix.Stat_t
	// cred is the user Bind created it as (bindAs), nil for herd; Close
	// removes it as that user too.
	cred *syscall.Credential
}

// BindError is a failed Bind. Err is the errno (errors.Is(err,
// unix.EADDRINUSE) and unix.EACCES work through it); Hint explains it.
type BindError struct {
	Spec ListenSpec
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
// a socket nobody accepts on (a non-blocking connect(2) is refused); a live
// streamSocket or any other kind of file, a symbolic link included, is an
// EADDRINUSE error. A live server sees that probe as a connection closed
// before it sent anything. Mode and owner are applied
// between bind(2) and listen(2), so no client connects before they are in
// place. unix sockets cannot share a path: reusePort is an error.
//
// backlog is listen(2)'s; 0 or less takes /proc/sys/net/core/somaxconn
// (or 4096 if that cannot be read). Errors are *BindError.
func (sp ListenSpec) Bind(backlog int, reusePort bool) (*Listener, error) {
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
func (sp ListenSpec) bindTCP(backlog int, reusePort bool, newSocket func(family int) (int, error)) (*Listener, error) {
	fail := func(op string, err error) (*Listener, error) {
		return nil, &BindError{Spec: sp, Op: op, Err: err}
	}
	addr, port, err := splitTCPSpec(sp)
	if err != nil {
		return fail("bind", fmt.Errorf("bad address %q: %w", sp.Address, err))
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
		return fail("socket", err)
	}
	l, err := func() (*Listener, error) {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt SO_REUSEADDR", err)
		}
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fail("setsockopt SO_REUSEPORT", err)
			}
		}
		var sa unix.Sockaddr
		if family == unix.AF_INET6 {
			v6only := 0
			if sp.Network == netTCP6 {
				v6only = 1
			}
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
				return fail("setsockopt IPV6_V6ONLY", err)
			}
			s6 := &unix.SockaddrInet6{Port: port}
			if addr.IsValid() {
				s6.Addr = addr.As16()
			}
			if z := addr.Zone(); z != "" {
				id, err := zoneID(z)
				if err != nil {
					return fail("bind", err)
				}
				s6.ZoneId = id
			}
			sa = s6
		} else {
			s4 := &unix.SockaddrInet4{Port: port}
			if addr.IsValid() {
				s4.Addr = addr.As4()
			}
			sa = s4
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
	}()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return l, nil
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

func (sp ListenSpec) bindUnix(backlog int, reusePort bool) (*Listener, error) {
	p := sp.Address
	fail := func(op string, err error, hint string) (*Listener, error) {
		return nil, &BindError{Spec: sp, Op: op, Err: err, Hint: hint}
	}
	if reusePort {
		return fail("bind", unix.EINVAL, "unix sockets cannot share a path: SO_REUSEPORT works for TCP only")
	}
	if !strings.HasPrefix(p, "/") || len(p) > maxUnixPath {
		return fail("bind", unix.EINVAL, fmt.Sprintf("a unix socket needs an absolute path of at most %d bytes", maxUnixPath))
	}
	if hint, err := removeStale(p); err != nil {
		return fail("bind", err, hint)
	}
	fd, err := streamSocket(unix.AF_UNIX)
	if err != nil {
		return fail("socket", err, "")
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		unix.Close(fd)
		return fail("bind", err, unixHint(err, p))
	}
	l := &Listener{Spec: sp, FD: fd, Addr: &net.UnixAddr{Name: p, Net: "unix"}}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err == nil {
		l.created = &st
	}
	err = func() error {
		if sp.Mode != 0 {
			if err := unix.Chmod(p, uint32(sp.Mode.Perm())); err != nil {
				return &BindError{Spec: sp, Op: "chmod " + fmt.Sprintf("%#o", sp.Mode.Perm()), Err: err}
			}
		}
		if uid, gid := sp.UID, sp.GID; uid >= 0 || gid >= 0 {
			if l.created != nil {
				if uid == int(l.created.Uid) {
					uid = -1
				}
				if gid == int(l.created.Gid) {
					gid = -1
				}
			}
			if uid >= 0 || gid >= 0 {
				if err := unix.Fchownat(unix.AT_FDCWD, p, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					hint := ""
					if err == unix.EPERM {
						hint = "changing a file's owner needs root or CAP_CHOWN"
					}
					return &BindError{Spec: sp, Op: "chown " + chownArg(sp.UID, sp.GID), Err: err, Hint: hint}
				}
			}
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return &BindError{Spec: sp, Op: "listen", Err: err}
		}
		return nil
	}()
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// bindAs is Bind with the rights of a worker running as cred (asUser): the
// kernel refuses what that worker could not bind itself, and the socket,
// and a unix socket's file, belong to cred's user. nil binds as herd.
func (sp ListenSpec) bindAs(cred *syscall.Credential, backlog int, reusePort bool) (*Listener, error) {
	l, err := asUser(cred, func() (*Listener, error) { return sp.Bind(backlog, reusePort) })
	if l != nil {
		l.cred = cred
	}
	return l, err
}

// chownArg writes uid and gid as chown(1) takes them: "uid", ":gid" or
// "uid:gid".
func chownArg(uid, gid int) string {
	switch {
	case gid < 0:
		return strconv.Itoa(uid)
	case uid < 0:
		return ":" + strconv.Itoa(gid)
	}
	return strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
}

// removeStale makes room for a socket at p: nothing there is fine; a socket
// that refuses connections is left over by a process that died and is
// removed; anything else stays and is an EADDRINUSE error.
func removeStale(p string) (hint string, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT {
			return "", nil
		}
		return unixHint(err, p), err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Sprintf("%s is %s, not a socket; herd removes only stale sockets", p, fileType(st.Mode)), unix.EADDRINUSE
	}
	fd, err := streamSocket(unix.AF_UNIX)
	if err != nil {
		return "probing whether the socket is in use", err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: p})
	unix.Close(fd)
	switch err {
	case nil, unix.EAGAIN, unix.EINPROGRESS, unix.EPROTOTYPE:
		return "a process accepts connections on it", unix.EADDRINUSE
	case unix.ECONNREFUSED:
		if err := unix.Unlink(p); err != nil && err != unix.ENOENT {
			return "removing the stale socket " + p, err
		}
		return "", nil
	}
	return "cannot tell whether a process still accepts on the socket", err
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a FIFO"
	}
	return "a special file"
}

// unixHint explains an error creating a socket file.
func unixHint(err error, p string) string {
	dir := path.Dir(p)
	switch err {
	case unix.EACCES:
		return "no permission to create a file in " + dir
	case unix.ENOENT:
		return "directory " + dir + " does not exist"
	case unix.ENOTDIR:
		return "a parent of " + p + " is not a directory"
	case unix.EROFS:
		return dir + " is on a read-only file system"
	case unix.EADDRINUSE:
		return "a file appeared at the path"
	}
	return ""
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
func BindAll(specs []ListenSpec, backlog int) ([]*Listener, error) {
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
