//go:build linux

package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/ipc"
)

// TestListenShared: herd answers with a socket (policies none and
// reuseport); the worker listens on it if herd did not, and accepts itself.
func TestListenShared(t *testing.T) {
	for _, tc := range []struct {
		name      string
		listening bool // herd sends a listening socket (reuseport), else only bound (none, as node's primary)
	}{
		{"bound", false},
		{"listening", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c, exits := start(t)
			fd, port := tcpSocket(t, tc.listening)
			const key = "127.0.0.1:0:4:undefined:0"

			r := goListen(c, "tcp", "127.0.0.1:0")
			p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":0,"addressType":4,"flags":0,"backlog":0,"seq":1}`)
			p.handle(ipc.Reply(1, p.nextSeq(), map[string]any{"errno": 0, "key": key, "data": nil}), fd)
			res := wait(t, r)
			if res.err != nil {
				t.Fatal(res.err)
			}
			l := res.l
			p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":%d,"addressType":4,"flags":0,"backlog":0,"seq":2}`, port))
			if got := l.Addr().String(); got != fmt.Sprintf("127.0.0.1:%d", port) {
				t.Errorf("Addr() = %s, want herd's socket's address", got)
			}
			if !nonblocking(t, fd) {
				t.Error("herd's copy of the listening socket became blocking")
			}

			client, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			conn, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			echo(t, conn, client, "shared")

			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"` + key + `","seq":3}`)
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			p.quiet() // one close only
			if !nonblocking(t, fd) {
				t.Error("herd's copy of the listening socket became blocking")
			}
			if len(exits) > 0 {
				t.Errorf("exit(%d) called", <-exits)
			}
		})
	}
}

// TestListenRR: herd answers without a socket (policy rr) and hands each
// connection over as newconn.
func TestListenRR(t *testing.T) {
	p, c, _ := start(t)
	const key = "null:0:4:undefined:0"

	r := goListen(c, "tcp", ":0")
	p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`)
	p.reply(1, map[string]any{"errno": nil, "key": key, "data": nil,
		"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 43210}})
	res := wait(t, r)
	if res.err != nil {
		t.Fatal(res.err)
	}
	l := res.l
	p.expect(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":43210,"addressType":4,"backlog":0,"seq":2}`)
	if got := l.Addr().String(); got != "[::]:43210" {
		t.Errorf("Addr() = %s, want herd's sockname [::]:43210", got)
	}

	seq := int64(3)
	for i := range 3 {
		client, fd, release := tcpConn(t)
		ack := p.newconn(key, fd)
		p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":true,"seq":%d}`, ack, seq))
		seq++
		conn, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := conn.(*net.TCPConn); !ok {
			t.Errorf("Accept returned a %T, want *net.TCPConn", conn)
		}
		if !nonblocking(t, fd) {
			t.Error("herd's copy of the connection became blocking")
		}
		release() // herd closes its copy after accepted:true
		echo(t, conn, client, fmt.Sprint("conn ", i))
		conn.Close()
	}

	// Handed over, then closed before Accept took it: the peer sees the end.
	client, fd, release := tcpConn(t)
	ack := p.newconn(key, fd)
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":true,"seq":%d}`, ack, seq))
	release()
	l.Close()
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"close","key":"%s","seq":%d}`, key, seq+1))
	expectEOF(t, client)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}

	// After close: refused, and the connection stays herd's to re-dispatch.
	client, fd, _ = tcpConn(t)
	ack = p.newconn(key, fd)
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":false,"seq":%d}`, ack, seq+2))
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, connOf(t, dup), client, "back at herd")
}

// TestListenRRUnix: a unix path under rr: made absolute in queryServer,
// no sockname, connections are *net.UnixConn.
func TestListenRRUnix(t *testing.T) {
	p, c, _ := start(t)
	path := filepath.Join(t.TempDir(), "x.sock")
	key := path + ":-1:-1:undefined:0"

	r := goListen(c, "unix", path)
	p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"` + path + `","port":-1,"addressType":-1,"backlog":0,"seq":1}`)
	p.reply(1, map[string]any{"errno": nil, "key": key, "data": nil})
	res := wait(t, r)
	if res.err != nil {
		t.Fatal(res.err)
	}
	p.expect(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"` + path + `","port":-1,"addressType":-1,"backlog":0,"seq":2}`)
	if a, ok := res.l.Addr().(*net.UnixAddr); !ok || a.Name != path {
		t.Errorf("Addr() = %#v, want the path", res.l.Addr())
	}
	client, fd := unixConn(t)
	p.newconn(key, fd)
	p.next() // accepted
	conn, err := res.l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*net.UnixConn); !ok {
		t.Errorf("Accept returned a %T, want *net.UnixConn", conn)
	}
	echo(t, conn, client, "unix")
}

// TestListenError: a negative errno is net.Listen's bind error, and the
// index is free again.
func TestListenError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  map[string]any
		want   error
		closes bool // herd counted the worker in: it is told
	}{
		{"EADDRINUSE", map[string]any{"errno": -98, "key": "null:8080:4:undefined:0", "data": nil}, syscall.EADDRINUSE, false},
		{"EACCES", map[string]any{"errno": -13, "key": "null:8080:4:undefined:0", "data": nil}, syscall.EACCES, false},
		// net.js checkBindError: a fixed port must be the one bound.
		{"port mismatch", map[string]any{"errno": nil, "key": "null:8080:4:undefined:0", "data": nil,
			"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 8081}}, syscall.EADDRINUSE, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c, _ := start(t)
			r := goListen(c, "tcp", ":8080")
			q := p.next()
			p.reply(*q.Seq, tc.reply)
			res := wait(t, r)
			if !errors.Is(res.err, tc.want) {
				t.Fatalf("Listen: %v, want %v", res.err, tc.want)
			}
			var op *net.OpError
			if !errors.As(res.err, &op) || op.Op != "listen" {
				t.Errorf("Listen: %#v, want a *net.OpError as net.Listen's", res.err)
			}
			t.Log(res.err)
			if tc.closes {
				p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"null:8080:4:undefined:0","seq":2}`)
			}
			p.quiet()
		})
	}
}

func TestListenErrorFreesIndex(t *testing.T) {
	p, c, _ := start(t)
	r := goListen(c, "tcp", ":8080")
	p.next()
	p.reply(1, map[string]any{"errno": -98, "key": "null:8080:4:undefined:0", "data": nil})
	if res := wait(t, r); !errors.Is(res.err, syscall.EADDRINUSE) {
		t.Fatalf("Listen: %v", res.err)
	}
	goListen(c, "tcp", ":8080")
	p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8080,"addressType":4,"backlog":0,"seq":2}`)
}

// TestIndexes: child.js counts servers per address; an index comes back
// only when every server under the address has closed, so keys stay
// unique within the process.
func TestIndexes(t *testing.T) {
	p, c, _ := start(t)
	listen := func(port, wantIndex int) net.Listener {
		t.Helper()
		r := goListen(c, "tcp", fmt.Sprint(":", port))
		q := p.next()
		idx, _ := q.Field("index")
		if string(idx) != fmt.Sprint(wantIndex) {
			t.Fatalf("queryServer %s: index %s, want %d", q.Raw, idx, wantIndex)
		}
		bound := port
		if port == 0 {
			bound = 40000 + wantIndex
		}
		p.reply(*q.Seq, map[string]any{"errno": nil, "key": ipc.ServerKey(q), "data": nil,
			"sockname": map[string]any{"address": "::", "family": "IPv6", "port": bound}})
		res := wait(t, r)
		if res.err != nil {
			t.Fatal(res.err)
		}
		p.next() // listening
		return res.l
	}
	a := listen(0, 0)
	b := listen(0, 1)
	other := listen(9, 0) // another address counts on its own
	a.Close()
	p.next()
	c2 := listen(0, 2) // b still open: no reuse, as in node
	b.Close()
	p.next()
	c2.Close()
	p.next()
	listen(0, 0) // every server under :0 closed: back to 0
	other.Close()
	p.next()
}

// TestDisconnectFromHerd: herd's disconnect closes every listener, each
// sends close, Disconnected fires, and the exit is not forced.
func TestDisconnectFromHerd(t *testing.T) {
	p, c, exits := start(t)

	rr := goListen(c, "tcp", ":0")
	p.next()
	p.reply(1, map[string]any{"errno": nil, "key": "null:0:4:undefined:0", "data": nil,
		"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 40000}})
	rrl := wait(t, rr).l
	p.next()
	fd, _ := tcpSocket(t, false)
	sh := goListen(c, "tcp", "127.0.0.1:0")
	p.next()
	p.handle(ipc.Reply(3, p.nextSeq(), map[string]any{"errno": 0, "key": "127.0.0.1:0:4:undefined:0", "data": nil}), fd)
	shl := wait(t, sh).l
	p.next()

	accepts := make(chan error, 2)
	for _, l := range []net.Listener{rrl, shl} {
		go func() {
			_, err := l.Accept()
			accepts <- err
		}()
	}
	select {
	case <-c.disc:
		t.Fatal("Disconnected before disconnect")
	default:
	}

	p.send(actDisconnect, nil)
	closes := map[string]bool{}
	for range 2 {
		m := p.next()
		if m.Act != actClose {
			t.Fatalf("worker sent %s, want close", m.Raw)
		}
		closes[string(m.Fields["key"])] = true
	}
	if !closes[`"null:0:4:undefined:0"`] || !closes[`"127.0.0.1:0:4:undefined:0"`] {
		t.Errorf("close sent for %v, want both keys", closes)
	}
	for range 2 {
		select {
		case err := <-accepts:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept: %v, want net.ErrClosed", err)
			}
		case <-time.After(timeout):
			t.Fatal("Accept did not return after disconnect")
		}
	}
	select {
	case <-c.disc:
	case <-time.After(timeout):
		t.Fatal("Disconnected not closed")
	}
	if _, err := c.listen("tcp", ":0"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Listen after disconnect: %v, want ErrDisconnected", err)
	}

	// The program has drained; herd sees EOF, with no exitedAfterDisconnect
	// (herd asked), and the process is not made to exit.
	if err := c.disconnect(); err != nil {
		t.Fatal(err)
	}
	p.expectEOF()
	if err := c.disconnect(); err != nil {
		t.Errorf("second Disconnect: %v", err)
	}
	select {
	case code := <-exits:
		t.Errorf("exit(%d) after a disconnect", code)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestDisconnectByWorker: node's cluster.worker.disconnect(): close,
// exitedAfterDisconnect acknowledged by herd, then EOF.
func TestDisconnectByWorker(t *testing.T) {
	p, c, exits := start(t)
	r := goListen(c, "tcp", ":0")
	p.next()
	p.reply(1, map[string]any{"errno": nil, "key": "null:0:4:undefined:0", "data": nil,
		"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 40000}})
	wait(t, r)
	p.next()

	done := make(chan error, 1)
	go func() { done <- c.disconnect() }()
	p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"null:0:4:undefined:0","seq":3}`)
	p.expect(`{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":4}`)
	select {
	case err := <-done:
		t.Fatalf("Disconnect returned (%v) before herd's ack", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.reply(4, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout):
		t.Fatal("Disconnect did not return after herd's ack")
	}
	p.expectEOF()
	if len(exits) > 0 {
		t.Errorf("exit(%d) called", <-exits)
	}
}

// TestChannelEOF: herd closes the channel (or dies) without disconnect: the
// worker exits 0 at once, as node does.
func TestChannelEOF(t *testing.T) {
	p, c, exits := start(t)
	r := goListen(c, "tcp", ":0")
	p.next()
	p.ch.Close()
	select {
	case code := <-exits:
		if code != 0 {
			t.Errorf("exit(%d), want exit(0)", code)
		}
	case <-time.After(timeout):
		t.Fatal("no exit after EOF")
	}
	if res := wait(t, r); !errors.Is(res.err, ErrDisconnected) {
		t.Errorf("Listen waiting for its reply: %v, want ErrDisconnected", res.err)
	}
	select {
	case <-c.disc:
	default:
		t.Error("Disconnected not closed after EOF")
	}
	if err := c.send("x"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Send after EOF: %v, want ErrDisconnected", err)
	}
}

// TestProtocolError: a line node itself would die of ends the worker with 1.
func TestProtocolError(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	exits := make(chan int, 1)
	c, err := newClient(fds[1], 1, func(code int) { exits <- code })
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fds[0], []byte("not json\n"))
	select {
	case code := <-exits:
		if code != 1 {
			t.Errorf("exit(%d), want exit(1)", code)
		}
	case <-time.After(timeout):
		t.Fatal("no exit after a protocol error")
	}
	<-c.ended
}

func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer read %d bytes, %v; want EOF", n, err)
	}
}
