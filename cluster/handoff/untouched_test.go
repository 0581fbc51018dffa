package handoff

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// untouched must tell a connection nobody has used from one a worker read
// from or wrote to, on real loopback TCP sockets.
func TestUntouched(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func() (client net.Conn, fd int) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		raw, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.Control(func(f uintptr) { fd = int(f) })
		return c, fd
	}
	// waitQueued waits until n bytes sent by the client are in fd's queue.
	waitQueued := func(fd, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if q, _ := unix.IoctlGetInt(fd, unix.SIOCINQ); q >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes never arrived", n)
			}
		}
	}

	_, fd := accept()
	if !untouched(fd) {
		t.Error("a fresh connection is touched")
	}

	c, fd := accept()
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	waitQueued(fd, 18)
	if !untouched(fd) {
		t.Error("a connection with an unread request is touched")
	}
	var buf [4]byte
	if _, err := unix.Read(fd, buf[:]); err != nil {
		t.Fatal(err)
	}
	if untouched(fd) {
		t.Error("a connection partly read is untouched")
	}

	_, fd = accept()
	if _, err := unix.Write(fd, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if untouched(fd) {
		t.Error("a connection written to is untouched")
	}

	// Not TCP: cannot tell, so touched.
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if untouched(p[0]) {
		t.Error("a unix socket counts as untouched")
	}
}
