//go:build linux

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/ipc"
)

const timeout = 5 * time.Second

// primary is herd's end of a worker's channel, scripted by a test.
type primary struct {
	t      testing.TB
	ch     *ipc.Channel
	in     chan ipc.Message
	runErr chan error
	seq    int64
}

// exitCodes records the client's calls of exit.
type exitCodes chan int

// start makes a socketpair, a client on the child's end (in this process)
// and a primary on herd's end, and checks the first line is online.
func start(t testing.TB) (*primary, *client, exitCodes) {
	t.Helper()
	ch, child, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	exits := make(exitCodes, 4)
	c, err := newClient(child, 7, func(code int) { exits <- code })
	if err != nil {
		ch.Close()
		t.Fatal(err)
	}
	p := &primary{t: t, ch: ch, in: make(chan ipc.Message, 1024), runErr: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { p.runErr <- ch.Run(ctx, func(m ipc.Message) { p.in <- m }) }()
	t.Cleanup(func() {
		cancel()
		ch.Close()
		select {
		case <-c.ended:
		case <-time.After(timeout):
			t.Error("the client did not end after herd closed the channel")
		}
	})
	p.expect(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`)
	return p, c, exits
}

// next returns the next line the worker wrote.
func (p *primary) next() ipc.Message {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	case err := <-p.runErr:
		p.t.Fatalf("herd's channel ended while a message was expected: %v", err)
	case <-time.After(timeout):
		p.t.Fatal("no message from the worker")
	}
	panic("unreachable")
}

// expect checks the next line byte for byte.
func (p *primary) expect(want string) ipc.Message {
	p.t.Helper()
	m := p.next()
	if string(m.Raw) != want {
		p.t.Fatalf("worker sent\n\t%s\nwant\n\t%s", m.Raw, want)
	}
	return m
}

// expectEOF checks the worker closes its end without writing anything more.
func (p *primary) expectEOF() {
	p.t.Helper()
	select {
	case m := <-p.in:
		p.t.Fatalf("worker sent %s, want EOF", m.Raw)
	case err := <-p.runErr:
		if !errors.Is(err, io.EOF) {
			p.t.Fatalf("herd's Run: %v, want EOF", err)
		}
	case <-time.After(timeout):
		p.t.Fatal("the worker did not close its end")
	}
}

// quiet checks the worker sends nothing for a moment.
func (p *primary) quiet() {
	p.t.Helper()
	select {
	case m := <-p.in:
		p.t.Fatalf("worker sent %s, want nothing", m.Raw)
	case <-time.After(50 * time.Millisecond):
	}
}

func (p *primary) nextSeq() int64 {
	s := p.seq
	p.seq++
	return s
}

// send sends a cluster message from herd.
func (p *primary) send(act string, fields map[string]any) int64 {
	p.t.Helper()
	seq := p.nextSeq()
	if err := p.ch.Send(json.RawMessage(ipc.ClusterMessage(act, seq, fields))); err != nil {
		p.t.Fatal(err)
	}
	return seq
}

// reply answers the worker's request ack without a handle.
func (p *primary) reply(ack int64, fields map[string]any) {
	p.t.Helper()
	if err := p.ch.Send(json.RawMessage(ipc.Reply(ack, p.nextSeq(), fields))); err != nil {
		p.t.Fatal(err)
	}
}

// handle sends msg with fd as a net.Native handle and waits for the
// worker's NODE_HANDLE_ACK.
func (p *primary) handle(msg []byte, fd int) {
	p.t.Helper()
	acked := make(chan bool, 1)
	if err := p.ch.SendHandle(ipc.TypeNetNative, json.RawMessage(msg), fd, func(ok bool) { acked <- ok }); err != nil {
		p.t.Fatal(err)
	}
	select {
	case ok := <-acked:
		if !ok {
			p.t.Fatal("the worker NACKed herd's handle")
		}
	case <-time.After(timeout):
		p.t.Fatal("no NODE_HANDLE_ACK from the worker")
	}
}

// newconn hands fd to the worker for key and returns the newconn's seq.
func (p *primary) newconn(key string, fd int) int64 {
	p.t.Helper()
	seq := p.nextSeq()
	p.handle(ipc.ClusterMessage(actNewconn, seq, map[string]any{"key": key}), fd)
	return seq
}

// tcpSocket returns a non-blocking TCP socket bound to 127.0.0.1:0 (and
// listening if listen), as herd makes them, and its port.
func tcpSocket(t testing.TB, listen bool) (fd, port int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if listen {
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port
}

// tcpConn returns a connected TCP pair: the client's net.Conn and the
// server side as a raw non-blocking fd, the way herd holds an accepted
// connection (never through (*os.File).Fd), with the function that closes
// herd's copy (at the latest at the end of the test).
func tcpConn(t testing.TB) (client net.Conn, serverFD int, release func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fd, release := rawFD(t, s.(syscall.Conn))
	return client, fd, release
}

// rawFD dups c's socket with F_DUPFD_CLOEXEC inside Control, which leaves
// O_NONBLOCK alone. release closes the dup once; the test's end calls it.
func rawFD(t testing.TB, c syscall.Conn) (fd int, release func()) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd = -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		t.Fatal(err)
	}
	if derr != nil {
		t.Fatal(derr)
	}
	release = sync.OnceFunc(func() { unix.Close(fd) })
	t.Cleanup(release)
	return fd, release
}

// unixConn is tcpConn over a unix socketpair.
func unixConn(t testing.TB) (client net.Conn, serverFD int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return connOf(t, fds[0]), fds[1]
}

// connOf makes a net.Conn of fd (taking it) for the test's side.
func connOf(t testing.TB, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "test") // non-blocking: Fd leaves it so
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nonblocking reports whether fd's open file description has O_NONBLOCK.
func nonblocking(t testing.TB, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// echo checks that conn (the worker's) and client (the peer's) carry bytes
// both ways.
func echo(t testing.TB, conn, client net.Conn, text string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(timeout))
	client.SetDeadline(time.Now().Add(timeout))
	if _, err := client.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(text))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != text {
		t.Fatalf("worker read %q, %v; want %q", buf, err, text)
	}
	if _, err := conn.Write([]byte("re:" + text)); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, len("re:"+text))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "re:"+text {
		t.Fatalf("client read %q, %v; want %q", buf, err, "re:"+text)
	}
}

// result is what a Listen running in a goroutine returned.
type result struct {
	l   net.Listener
	err error
}

// goListen runs c.listen in a goroutine: it blocks until herd replies.
func goListen(c *client, network, address string) <-chan result {
	r := make(chan result, 1)
	go func() {
		l, err := c.listen(network, address)
		r <- result{l, err}
	}()
	return r
}

func wait(t testing.TB, r <-chan result) result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(timeout):
		t.Fatal("Listen did not return")
	}
	panic("unreachable")
}
