package listen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Networks of a Spec, named after their scheme in HERD_LISTEN.
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

// Spec is one address of HERD_LISTEN.
//
// Parse fills every field. A Spec built by hand must set UID and GID to -1
// unless it means to chown a unix socket to root.
type Spec struct {
	// Network is "tcp" (one IPv6 socket with IPV6_V6ONLY=0 that serves IPv4
	// too; an IPv4 socket where the kernel has no IPv6), "tcp4", "tcp6" or
	// "unix".
	Network string
	// Address is "host:port" for TCP, where the host is empty (all
	// addresses) or an IP literal and port 0 lets the kernel pick, or an
	// absolute, clean path for unix.
	Address string
	// Name is the socket's LISTEN_FDNAMES entry: 1 to 255 printable ASCII
	// characters, no ':' (systemd's rule for FileDescriptorName). Parse
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

// Parse reads HERD_LISTEN: one or more addresses separated by commas
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
// Errors say what is wrong and what is allowed, and name the bad entry when
// there are several (the caller adds the setting's name and its value); an
// entry that is not written as an address at all gets the accepted Forms.
// Two entries may not listen on the same address, which includes
// "0.0.0.0:80" next to ":80" (a dual-stack ":80" takes IPv4 too).
func Parse(s string) ([]Spec, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(entries) == 0 {
		return nil, fmt.Errorf("no address; accepted forms: %s, several separated by commas", Forms)
	}
	specs := make([]Spec, 0, len(entries))
	for _, e := range entries {
		sp, err := parseEntry(e)
		if err != nil {
			if errors.As(err, new(formError)) {
				err = fmt.Errorf("%w; accepted forms: %s", err, Forms)
			}
			if len(entries) > 1 {
				err = fmt.Errorf("%q: %w", e, err)
			}
			return nil, err
		}
		for i, prev := range specs {
			if overlaps(prev, sp) {
				return nil, fmt.Errorf("%q: listens on the same address as %q: give each address once", e, entries[i])
			}
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// Forms lists the addresses HERD_LISTEN accepts, for errors about an entry
// that is not written as one.
const Forms = ":8080, 0.0.0.0:8080, [::]:8080, tcp4://HOST:PORT, tcp6://HOST:PORT, unix:///PATH (with ?mode=&owner=&group=&name=)"

// formError is an entry that is not written as an address at all, such as
// a word without a port; Parse adds the accepted Forms to it.
type formError string

func (e formError) Error() string { return string(e) }

// parseEntry parses one HERD_LISTEN address.
func parseEntry(e string) (Spec, error) {
	sp := Spec{UID: -1, GID: -1}
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
	opts, err := parseOptions(query)
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
		ap, err := parseHostPort(sp.Network, rest)
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
		if err := sp.setUnixOptions(opts); err != nil {
			return sp, err
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

// setUnixOptions applies the options only a unix socket takes: the socket
// file's mode, owner and group.
func (sp *Spec) setUnixOptions(opts map[string]string) error {
	if v, ok := opts[optMode]; ok {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m > 0o777 || m == 0 {
			return fmt.Errorf("bad mode %q: give octal permission bits from 1 to 0777, such as 0660", v)
		}
		sp.Mode = os.FileMode(m)
	}
	if v, ok := opts[optOwner]; ok {
		uid, _, err := LookupUser(v)
		if err != nil {
			return fmt.Errorf("owner: %w", err)
		}
		sp.UID = uid
	}
	if v, ok := opts[optGroup]; ok {
		gid, err := LookupGroup(v)
		if err != nil {
			return fmt.Errorf("group: %w", err)
		}
		sp.GID = gid
	}
	return nil
}

// parseOptions reads the query of an entry: each known option at most once,
// never empty.
func parseOptions(query string) (map[string]string, error) {
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

// parseHostPort checks "host:port" for network and returns its canonical
// form: the host as an IP literal in its shortest form (IPv4-mapped IPv6
// unmapped for tcp and tcp4), empty only for network tcp.
func parseHostPort(network, hp string) (string, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		switch {
		case hp == "":
			return "", formError("missing host:port")
		case !strings.Contains(hp, ":"):
			if _, err := parsePort(hp); err == nil {
				return "", fmt.Errorf("missing colon: write :%s for port %s on all addresses", echo(hp, "PORT"), echo(hp, "PORT"))
			}
			return "", formError("missing port")
		case strings.Count(hp, ":") > 1 && !strings.HasPrefix(hp, "["):
			return "", errors.New("an IPv6 host is written in brackets, as in [::1]:8080")
		}
		// The reason alone: the value is shown already.
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", formError("not host:port: " + ae.Err)
		}
		return "", formError("not host:port: " + err.Error())
	}
	pn, err := parsePort(port)
	if err != nil {
		return "", err
	}
	addr, err := parseHost(network, host)
	if err != nil {
		return "", err
	}
	if !addr.IsValid() {
		return ":" + strconv.Itoa(pn), nil
	}
	return netip.AddrPortFrom(addr, uint16(pn)).String(), nil
}

// parsePort accepts decimal 0-65535; 0 asks the kernel for a free port.
func parsePort(s string) (int, error) {
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

// parseHost returns host's address for network, or the invalid Addr for an
// empty host under tcp (all addresses, either family).
func parseHost(network, host string) (netip.Addr, error) {
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

// escapePath writes p so that parseUnixPath reads it back from one entry:
// '%', ',', '?', '#', white space, control characters and invalid UTF-8
// become %XX.
func escapePath(p string) string {
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
// Parse reads it back to the same Network and Address.
func (sp Spec) String() string {
	if sp.Network == netUnix {
		return "unix://" + escapePath(sp.Address)
	}
	return sp.Network + "://" + sp.Address
}

// overlaps reports whether a and b cannot both be bound: the same unix
// path, or the same TCP port (not 0) on a shared address of a shared family.
func overlaps(a, b Spec) bool {
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

// endpoint is what a TCP spec takes: a port on an address, or on every
// address of one or both families.
type endpoint struct {
	addr   netip.Addr // invalid: every address of both families
	port   int
	v4, v6 bool
}

func (e endpoint) has(family int) bool { return family == 4 && e.v4 || family == 6 && e.v6 }

func (e endpoint) wildcard() bool {
	return !e.addr.IsValid() || e.addr.IsUnspecified()
}

func tcpEndpoint(sp Spec) (endpoint, bool) {
	addr, port, err := splitTCP(sp)
	if err != nil {
		return endpoint{}, false
	}
	e := endpoint{addr: addr, port: port}
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

// splitTCP returns the address (invalid for an empty host) and port of a
// TCP spec, checked as Parse checks them.
func splitTCP(sp Spec) (netip.Addr, int, error) {
	host, port, err := net.SplitHostPort(sp.Address)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	pn, err := parsePort(port)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	addr, err := parseHost(sp.Network, host)
	return addr, pn, err
}
