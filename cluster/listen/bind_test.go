package listen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

// listenLacking skips a test that needs what this machine lacks, or fails it
// under CI=true, where the test command was meant to provide it.
func listenLacking(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("requirement missing (CI=true): "+format, args...)
	}
	t.Skipf("requirement missing: "+format, args...)
}

func TestBindBacklog(t *testing.T) {
	for _, tc := range []struct {
		name      string
		backlog   int
		somaxconn string // "" = file missing
		want      int
	}{
		{"given", 128, "4096\n", 128},
		{"given above somaxconn", 100000, "4096\n", 100000}, // the kernel caps it
		{"zero reads somaxconn", 0, "1024\n", 1024},
		{"negative reads somaxconn", -1, "65535\n", 65535},
		{"no proc", 0, "", defaultBacklog},
		{"garbage", 0, "lots\n", defaultBacklog},
		{"somaxconn zero", 0, "0\n", defaultBacklog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			if tc.somaxconn != "" {
				fsys[somaxconnPath] = &fstest.MapFile{Data: []byte(tc.somaxconn)}
			}
			if got := effectiveBacklog(tc.backlog, fsys); got != tc.want {
				t.Fatalf("effectiveBacklog(%d) with somaxconn %q = %d, want %d", tc.backlog, tc.somaxconn, got, tc.want)
			}
		})
	}
	// The real /proc gives the kernel's value.
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Skip(err)
	}
	want, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if got := effectiveBacklog(0, os.DirFS("/")); got != want {
		t.Fatalf("effectiveBacklog(0) on / = %d, want %d", got, want)
	}
}

func TestBindUnprivilegedPortStart(t *testing.T) {
	if got := unprivilegedPortStart(fstest.MapFS{}); got != 1024 {
		t.Errorf("without /proc: %d, want 1024", got)
	}
	fsys := fstest.MapFS{"proc/sys/net/ipv4/ip_unprivileged_port_start": {Data: []byte("0\n")}}
	if got := unprivilegedPortStart(fsys); got != 0 {
		t.Errorf("with 0: %d", got)
	}
}

// mustParse parses one HERD_LISTEN address.
func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	specs, err := Parse(s)
	if err != nil || len(specs) != 1 {
		t.Fatalf("Parse(%q) = %v, %v", s, specs, err)
	}
	return specs[0]
}

// mustBind binds s and closes it at the end of the test.
func mustBind(t *testing.T, s string, reusePort bool) *Listener {
	t.Helper()
	l, err := mustParse(t, s).Bind(0, reusePort)
	if err != nil {
		t.Fatalf("Bind %s: %v", s, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptConn waits for a connection on the non-blocking listening fd and
// accepts it with accept4(2), as a worker would.
func acceptConn(t *testing.T, fd int) (int, unix.Sockaddr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nfd, sa, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err == nil {
			t.Cleanup(func() { unix.Close(nfd) })
			return nfd, sa
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			t.Fatalf("accept4: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection to accept within 10s")
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 1000); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
	}
}

// roundTripConn dials network addr, accepts on l and sends a byte each way.
func roundTripConn(t *testing.T, l *Listener, network, addr string) unix.Sockaddr {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	nfd, peer := acceptConn(t, l.FD)
	if _, err := unix.Write(nfd, []byte("h")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 1)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'h' {
		t.Fatalf("read from accepted connection: %q, %v", buf, err)
	}
	return peer
}

func getsockoptInt(t *testing.T, fd, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, err)
	}
	return v
}

func TestBindTCP(t *testing.T) {
	l := mustBind(t, "127.0.0.1:0", false)
	a, ok := l.Addr.(*net.TCPAddr)
	if !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 || l.Port() != a.Port {
		t.Fatalf("Addr %#v, Port %d: want 127.0.0.1 and the kernel's port", l.Addr, l.Port())
	}
	if fl, err := unix.FcntlInt(uintptr(l.FD), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("F_GETFL = %#x, %v: want O_NONBLOCK", fl, err)
	}
	if fl, err := unix.FcntlInt(uintptr(l.FD), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: want FD_CLOEXEC", fl, err)
	}
	if getsockoptInt(t, l.FD, unix.SOL_SOCKET, unix.SO_REUSEADDR) != 1 {
		t.Error("SO_REUSEADDR not set")
	}
	if getsockoptInt(t, l.FD, unix.SOL_SOCKET, unix.SO_REUSEPORT) != 0 {
		t.Error("SO_REUSEPORT set without reusePort")
	}
	if getsockoptInt(t, l.FD, unix.SOL_SOCKET, unix.SO_ACCEPTCONN) != 1 {
		t.Error("socket is not listening")
	}
	roundTripConn(t, l, "tcp4", l.Addr.String())

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v, want os.ErrClosed", err)
	}
}

// haveIPv6Loopback reports whether ::1 can be bound here.
func haveIPv6Loopback() error {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return err
	}
	return ln.Close()
}

func TestBindDualStack(t *testing.T) {
	if err := haveIPv6Loopback(); err != nil {
		listenLacking(t, "no IPv6 loopback: %v", err)
	}
	for _, addr := range []string{"tcp://[::]:0", ":0"} {
		t.Run(addr, func(t *testing.T) {
			l := mustBind(t, addr, false)
			if v := getsockoptInt(t, l.FD, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != 0 {
				t.Fatalf("IPV6_V6ONLY = %d, want 0", v)
			}
			port := strconv.Itoa(l.Port())
			if l.Addr.String() != "[::]:"+port {
				t.Errorf("Addr = %s, want [::]:%s", l.Addr, port)
			}
			peer4 := roundTripConn(t, l, "tcp4", "127.0.0.1:"+port)
			if p, ok := peer4.(*unix.SockaddrInet6); !ok || !net.IP(p.Addr[:]).Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("IPv4 peer = %#v, want ::ffff:127.0.0.1", peer4)
			}
			peer6 := roundTripConn(t, l, "tcp6", "[::1]:"+port)
			if p, ok := peer6.(*unix.SockaddrInet6); !ok || !net.IP(p.Addr[:]).Equal(net.IPv6loopback) {
				t.Errorf("IPv6 peer = %#v, want ::1", peer6)
			}
		})
	}
	t.Run("tcp6 is IPv6 only", func(t *testing.T) {
		l := mustBind(t, "tcp6://[::]:0", false)
		if v := getsockoptInt(t, l.FD, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != 1 {
			t.Fatalf("IPV6_V6ONLY = %d, want 1", v)
		}
		roundTripConn(t, l, "tcp6", fmt.Sprintf("[::1]:%d", l.Port()))
		if c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", l.Port()), 5*time.Second); err == nil {
			c.Close()
			t.Fatal("tcp6 socket took an IPv4 connection")
		}
		// and a tcp4 socket can share the port.
		mustBind(t, fmt.Sprintf("tcp4://0.0.0.0:%d", l.Port()), false)
	})
}

// TestBindNoIPv6: where the kernel has no IPv6, "tcp" on all addresses
// falls back to an IPv4 socket; an IPv6 host cannot.
func TestBindNoIPv6(t *testing.T) {
	noIPv6 := func(family int) (int, error) {
		if family == unix.AF_INET6 {
			return -1, unix.EAFNOSUPPORT
		}
		return streamSocket(family)
	}
	for _, s := range []string{":0", "[::]:0"} {
		l, err := mustParse(t, s).bindTCP(16, false, noIPv6)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if a := l.Addr.(*net.TCPAddr); a.IP.To4() == nil || !a.IP.IsUnspecified() {
			t.Errorf("%s bound %s, want 0.0.0.0", s, a)
		}
		roundTripConn(t, l, "tcp4", fmt.Sprintf("127.0.0.1:%d", l.Port()))
		l.Close()
	}
	for _, s := range []string{"[::1]:0", "tcp6://:0"} {
		_, err := mustParse(t, s).bindTCP(16, false, noIPv6)
		if want := "listen " + mustParse(t, s).String() + ": socket: address family not supported by protocol"; !errors.Is(err, unix.EAFNOSUPPORT) || err.Error() != want {
			t.Errorf("%s: %v, want %q", s, err, want)
		}
	}
}

func TestBindReusePort(t *testing.T) {
	a := mustBind(t, "127.0.0.1:0", true)
	if getsockoptInt(t, a.FD, unix.SOL_SOCKET, unix.SO_REUSEPORT) != 1 {
		t.Fatal("SO_REUSEPORT not set")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", a.Port())
	b := mustBind(t, addr, true)
	if b.Port() != a.Port() {
		t.Fatalf("second socket on port %d, want %d", b.Port(), a.Port())
	}
	// A connection reaches one of them.
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// Without reusePort on the new socket the port is taken.
	_, err = mustParse(t, addr).Bind(0, false)
	want := "listen tcp://" + addr + ": address already in use (another process listens on it)"
	if !errors.Is(err, unix.EADDRINUSE) || err.Error() != want {
		t.Fatalf("Bind without reusePort = %v, want %q", err, want)
	}
	// Nor may a reuseport socket join one bound without it.
	plain := mustBind(t, "127.0.0.1:0", false)
	paddr := fmt.Sprintf("127.0.0.1:%d", plain.Port())
	_, err = mustParse(t, paddr).Bind(0, true)
	want = "listen tcp://" + paddr + ": address already in use (another socket holds the port without SO_REUSEPORT, or belongs to another user)"
	if !errors.Is(err, unix.EADDRINUSE) || err.Error() != want {
		t.Fatalf("Bind with reusePort onto a plain socket = %v, want %q", err, want)
	}
}

func TestBindPortInUse(t *testing.T) {
	l := mustBind(t, "127.0.0.1:0", false)
	for _, s := range []string{fmt.Sprintf("127.0.0.1:%d", l.Port()), fmt.Sprintf("tcp4://:%d", l.Port())} {
		sp := mustParse(t, s)
		_, err := sp.Bind(16, false)
		var be *BindError
		if !errors.As(err, &be) || be.Op != "bind" || !errors.Is(err, unix.EADDRINUSE) {
			t.Fatalf("Bind %s = %#v, want a *BindError for EADDRINUSE", s, err)
		}
		want := "listen " + sp.String() + ": address already in use (another process listens on it)"
		if err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	// An address no interface has.
	_, err := mustParse(t, "192.0.2.1:0").Bind(0, false)
	if want := "listen tcp://192.0.2.1:0: cannot assign requested address (no network interface of this host has that address)"; !errors.Is(err, unix.EADDRNOTAVAIL) || err.Error() != want {
		t.Errorf("Bind to a foreign address = %v, want %q", err, want)
	}
}

// bindChildEnv asks TestBindAsNobody, run in a copy of the test binary, to do
// one Bind: "port ADDR" or "chown PATH" (bind a unix socket at PATH with
// chownArg root).
const bindChildEnv = "HERD_TEST_BIND_CHILD"

// TestBindAsNobody is the child half of the tests that must bind as an
// unprivileged user; it does nothing unless bindChildEnv is set.
func TestBindAsNobody(t *testing.T) {
	op, arg, _ := strings.Cut(os.Getenv(bindChildEnv), " ")
	switch op {
	case "port":
		_, err := mustParse(t, arg).Bind(0, false)
		fmt.Printf("uid=%d eacces=%v err=%v\n", os.Getuid(), errors.Is(err, unix.EACCES), err)
	case "chown":
		sp := mustParse(t, unixListenURL(arg)+"?owner=0")
		_, err := sp.Bind(0, false)
		_, serr := os.Lstat(arg)
		fmt.Printf("uid=%d eperm=%v left=%v err=%v\n", os.Getuid(), errors.Is(err, unix.EPERM), serr == nil, err)
	}
}

// asNobody runs TestBindAsNobody as uid and gid 65534 with bindChildEnv set to
// job, in a new network namespace if newNet, and returns its output. dir
// is a directory uid 65534 may write to.
func asNobody(t *testing.T, job func(dir string) string, newNet bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		listenLacking(t, "running a test as another user needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test's build directory and t.TempDir are 0700: copy the binary
	// where uid 65534 can run it.
	dir, err := os.MkdirTemp("", "herd-bind-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "listen.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestBindAsNobody$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), bindChildEnv+"="+job(dir))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if newNet {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if newNet && errors.Is(err, unix.EPERM) {
			listenLacking(t, "port 80 is unprivileged here and a network namespace cannot be created: %v", err)
		}
		t.Fatalf("child: %v\n%s", err, out)
	}
	return string(out)
}

// TestBindPrivilegedPort binds port 80 as uid 65534 and checks the message
// a user would see.
func TestBindPrivilegedPort(t *testing.T) {
	addr, newNet := "127.0.0.1:80", false
	if unprivilegedPortStart(os.DirFS("/")) <= 80 {
		// This network namespace lets anyone bind port 80 (Docker sets
		// ip_unprivileged_port_start=0): a new one starts at 1024, and its
		// loopback is down, so bind the wildcard there.
		addr, newNet = "0.0.0.0:80", true
	}
	out := asNobody(t, func(string) string { return "port " + addr }, newNet)
	want := "uid=65534 eacces=true err=listen tcp://" + addr + ": permission denied (binding a port below 1024 needs root or CAP_NET_BIND_SERVICE, or lower net.ipv4.ip_unprivileged_port_start)"
	if !strings.Contains(out, want) {
		t.Fatalf("child printed\n%s\nwant a line\n%s", out, want)
	}
}

// TestBindUnixFailureAfterBind: when chown fails, Bind closes the socket
// and removes the file it created.
func TestBindUnixFailureAfterBind(t *testing.T) {
	var p string
	out := asNobody(t, func(dir string) string { p = filepath.Join(dir, "app.sock"); return "chown " + p }, false)
	want := "uid=65534 eperm=true left=false err=listen " + unixListenURL(p) + ": chown 0: operation not permitted (changing a file's owner needs root or CAP_CHOWN)"
	if !strings.Contains(out, want) {
		t.Fatalf("child printed\n%s\nwant a line\n%s", out, want)
	}
}

// unixListenURL writes p as a HERD_LISTEN address.
func unixListenURL(p string) string { return Spec{Network: "unix", Address: p}.String() }

// tempSocketPath returns a socket path in a fresh directory.
func tempSocketPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "app.sock")
}

// leaveStaleSocket leaves a socket file at p with nothing behind it, as a
// killed process does.
func leaveStaleSocket(t *testing.T, p string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
}

func isSocketFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

func TestBindUnix(t *testing.T) {
	t.Run("accepts, non-blocking, Close removes the file", func(t *testing.T) {
		p := tempSocketPath(t)
		l := mustBind(t, unixListenURL(p), false)
		if a, ok := l.Addr.(*net.UnixAddr); !ok || a.Name != p || l.Port() != 0 {
			t.Fatalf("Addr %#v Port %d", l.Addr, l.Port())
		}
		if fl, err := unix.FcntlInt(uintptr(l.FD), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
			t.Errorf("F_GETFL = %#x, %v: want O_NONBLOCK", fl, err)
		}
		if fl, err := unix.FcntlInt(uintptr(l.FD), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("F_GETFD = %#x, %v: want FD_CLOEXEC", fl, err)
		}
		roundTripConn(t, l, "unix", p)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after Close: %v, want the socket file gone", err)
		}
	})
	t.Run("mode", func(t *testing.T) {
		p := tempSocketPath(t)
		mustBind(t, unixListenURL(p)+"?mode=0604", false)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o604 {
			t.Fatalf("socket file %v, %v: want a socket with mode 0604", fi.Mode(), err)
		}
	})
	t.Run("owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			listenLacking(t, "chown needs root")
		}
		p := tempSocketPath(t)
		l := mustBind(t, unixListenURL(p)+"?owner=65534&group=65534&mode=0660", false)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65534 || st.Gid != 65534 || st.Mode&0o777 != 0o660 {
			t.Fatalf("socket owned by %d:%d mode %#o, want 65534:65534 0660", st.Uid, st.Gid, st.Mode&0o777)
		}
		roundTripConn(t, l, "unix", p)
	})
	t.Run("owner unchanged when it is already the owner", func(t *testing.T) {
		p := tempSocketPath(t)
		sp := mustParse(t, unixListenURL(p))
		sp.UID, sp.GID = os.Geteuid(), os.Getegid()
		l, err := sp.Bind(0, false)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	})
}

// TestBindUnixStale: a socket file nobody accepts on is replaced; one a
// process serves stays.
func TestBindUnixStale(t *testing.T) {
	t.Run("stale socket removed", func(t *testing.T) {
		p := tempSocketPath(t)
		leaveStaleSocket(t, p)
		l := mustBind(t, unixListenURL(p), false)
		roundTripConn(t, l, "unix", p)
	})
	t.Run("live socket kept", func(t *testing.T) {
		p := tempSocketPath(t)
		live := mustBind(t, unixListenURL(p), false)
		sp := mustParse(t, unixListenURL(p))
		_, err := sp.Bind(0, false)
		want := "listen " + unixListenURL(p) + ": address already in use (a process accepts connections on it)"
		if !errors.Is(err, unix.EADDRINUSE) || err == nil || err.Error() != want {
			t.Fatalf("Bind over a live socket = %v, want %q", err, want)
		}
		// The server sees the probe as a connection closed at once.
		probe, _ := acceptConn(t, live.FD)
		if n, err := unix.Read(probe, make([]byte, 1)); n != 0 || err != nil {
			t.Fatalf("probe connection read %d, %v; want EOF", n, err)
		}
		roundTripConn(t, live, "unix", p)
	})
	t.Run("live socket with a full backlog kept", func(t *testing.T) {
		p := tempSocketPath(t)
		live, err := mustParse(t, unixListenURL(p)).Bind(1, false)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		// Fill the backlog: further connects would block.
		for i := 0; i < 4; i++ {
			fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			defer unix.Close(fd)
			unix.Connect(fd, &unix.SockaddrUnix{Name: p})
		}
		done := make(chan error, 1)
		go func() { _, err := mustParse(t, unixListenURL(p)).Bind(0, false); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, unix.EADDRINUSE) {
				t.Fatalf("Bind over a busy socket = %v, want EADDRINUSE", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Bind blocked probing a socket with a full backlog")
		}
	})
}

// TestBindUnixOtherFiles: Bind and Close leave alone every file that is not
// a stale socket, or not theirs.
func TestBindUnixOtherFiles(t *testing.T) {
	t.Run("regular file kept", func(t *testing.T) {
		p := tempSocketPath(t)
		if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := mustParse(t, unixListenURL(p)).Bind(0, false)
		want := "listen " + unixListenURL(p) + ": address already in use (" + p + " is a regular file, not a socket; herd removes only stale sockets)"
		if !errors.Is(err, unix.EADDRINUSE) || err.Error() != want {
			t.Fatalf("Bind over a regular file = %v, want %q", err, want)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != "data" {
			t.Fatalf("regular file now %q, %v", b, err)
		}
	})
	t.Run("symlink to a stale socket kept", func(t *testing.T) {
		p := tempSocketPath(t)
		target := p + ".real"
		leaveStaleSocket(t, target)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		_, err := mustParse(t, unixListenURL(p)).Bind(0, false)
		if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), "is a symbolic link, not a socket") {
			t.Fatalf("Bind over a symlink = %v", err)
		}
		if !isSocketFile(target) {
			t.Fatal("symlink target removed")
		}
	})
	t.Run("Close leaves a file that replaced the socket", func(t *testing.T) {
		p := tempSocketPath(t)
		l, err := mustParse(t, unixListenURL(p)).Bind(0, false)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		leaveStaleSocket(t, p) // another herd's socket now
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !isSocketFile(p) {
			t.Fatal("Close removed a socket file it did not create")
		}
	})
}

func TestBindUnixErrors(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "no", "app.sock")
		_, err := mustParse(t, unixListenURL(p)).Bind(0, false)
		want := "listen " + unixListenURL(p) + ": no such file or directory (directory " + filepath.Dir(p) + " does not exist)"
		if !errors.Is(err, unix.ENOENT) || err.Error() != want {
			t.Fatalf("Bind = %v, want %q", err, want)
		}
	})
	t.Run("reusePort refused", func(t *testing.T) {
		p := tempSocketPath(t)
		_, err := mustParse(t, unixListenURL(p)).Bind(0, true)
		if err == nil || !strings.Contains(err.Error(), "unix sockets cannot share a path: SO_REUSEPORT works for TCP only") {
			t.Fatalf("Bind with reusePort = %v", err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("socket file created")
		}
	})
}

// countOpenFDs counts this process's open descriptors.
func countOpenFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestBindAll(t *testing.T) {
	dir := t.TempDir()
	specs, err := Parse("127.0.0.1:0, unix://" + dir + "/a.sock")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := BindAll(specs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Spec.Address != specs[0].Address || ls[1].Spec != specs[1] || ls[0].Port() == 0 {
		t.Fatalf("BindAll = %v", ls)
	}
	// The default name of a port-0 socket names the port the kernel chose.
	if want := "tcp-" + strconv.Itoa(ls[0].Port()); ls[0].Spec.Name != want {
		t.Errorf("name %q, want %q", ls[0].Spec.Name, want)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBindAllClosesOnFailure(t *testing.T) {
	// A free port to bind by number, so that the test can check it is
	// released.
	probe := mustBind(t, "127.0.0.1:0", false)
	port := probe.Port()
	probe.Close()

	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := Parse(fmt.Sprintf("127.0.0.1:%d, unix://%s/a.sock, unix://%s", port, dir, blocker))
	if err != nil {
		t.Fatal(err)
	}
	before := countOpenFDs(t)
	ls, err := BindAll(specs, 0)
	if err == nil {
		t.Fatalf("BindAll = %v, want an error for the regular file", ls)
	}
	if !errors.Is(err, unix.EADDRINUSE) || !strings.HasPrefix(err.Error(), "listen "+unixListenURL(blocker)+": ") {
		t.Fatalf("BindAll error %v, want EADDRINUSE for %s", err, blocker)
	}
	if after := countOpenFDs(t); after != before {
		t.Fatalf("%d descriptors open before BindAll, %d after", before, after)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a.sock left behind")
	}
	// The port is free again.
	mustBind(t, fmt.Sprintf("127.0.0.1:%d", port), false)
}
