//go:build linux

package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPairFlags(t *testing.T) {
	c, child, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer unix.Close(child)

	var herdFD int
	var flags, fdflags int
	c.rc.Control(func(fd uintptr) {
		herdFD = int(fd)
		flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0)
		fdflags, _ = unix.FcntlInt(fd, unix.F_GETFD, 0)
	})
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("herd's end is blocking, want O_NONBLOCK")
	}
	if fdflags&unix.FD_CLOEXEC == 0 {
		t.Error("herd's end lacks FD_CLOEXEC")
	}
	cf, _ := unix.FcntlInt(uintptr(child), unix.F_GETFD, 0)
	if cf&unix.FD_CLOEXEC == 0 {
		t.Error("child's end lacks FD_CLOEXEC: it would leak into every other process herd starts")
	}
	for _, fd := range []int{herdFD, child} {
		typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		dom, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if typ != unix.SOCK_STREAM || dom != unix.AF_UNIX {
			t.Errorf("fd %d: domain %d type %d, want AF_UNIX SOCK_STREAM", fd, dom, typ)
		}
	}
}

func TestOpenRefusesOtherSockets(t *testing.T) {
	a, b := socketpair(t, unix.SOCK_DGRAM)
	defer unix.Close(a)
	defer unix.Close(b)
	if _, err := Open(a); err == nil {
		t.Fatal("Open accepted an AF_UNIX SOCK_DGRAM socket")
	}
	if !isOpen(a) {
		t.Fatal("Open closed an fd it refused")
	}
}

func TestReadOverSocket(t *testing.T) {
	c, p := newPair(t)
	r := run(t, c)
	// One message in three writes, 50 ms apart (docs/protocol.md §12 test 16).
	p.write(`{"any":"thing",`)
	time.Sleep(50 * time.Millisecond)
	p.write(`"nested":{"n":1,"s":"` + "\xc3")
	time.Sleep(50 * time.Millisecond)
	p.write("\xa9\\n\"}}\n\"just a string\"\n")
	if m := r.next(t); string(m.Raw) != `{"any":"thing","nested":{"n":1,"s":"é\n"}}` || m.Cmd != "" || m.Internal() {
		t.Fatalf("got %s", m.Raw)
	}
	if m := r.next(t); string(m.Raw) != `"just a string"` || m.Fields != nil {
		t.Fatalf("got %s", m.Raw)
	}
	p.conn.Close()
	if err := r.wait(t); err != io.EOF {
		t.Fatalf("Run = %v, want io.EOF", err)
	}
}

func TestReadErrorsOverSocket(t *testing.T) {
	tests := []struct {
		name string
		data string
		fds  int
		want Kind
	}{
		{"empty line", "{}\n\n", 0, KindEmptyLine},
		{"invalid", "{}\nnot json\n", 0, KindInvalidJSON},
		{"too long", "[" + strings.Repeat("1,", 600) + "1]\n", 0, KindLineTooLong},
		{"orphan fd", `{"a":1}` + "\n", 1, KindOrphanFD},
		{"two fds", handleLine + "\n", 2, KindExtraFD},
		{"unexpected ack", `{"cmd":"NODE_HANDLE_ACK"}` + "\n", 0, KindUnexpectedAck},
		{"unexpected nack", `{"cmd":"NODE_HANDLE_NACK"}` + "\n", 0, KindUnexpectedAck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := newPair(t, WithMaxLine(1000))
			r := run(t, c)
			var fds []int
			for range tt.fds {
				a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
				fds = append(fds, a)
				defer unix.Close(b)
			}
			p.write(tt.data, fds...)
			closeFDs(fds)
			err := r.wait(t)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Kind != tt.want {
				t.Fatalf("Run = %v, want a ProtocolError of kind %v", err, tt.want)
			}
		})
	}
}

// TestIncomingHandle: the app sent a handle (process.send(msg, server)):
// herd answers NODE_HANDLE_ACK at once and closes its copy of the fd.
func TestIncomingHandle(t *testing.T) {
	c, p := newPair(t)
	r := run(t, c)
	a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(b)
	p.write(`{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"x":1}}`+"\n", a)
	unix.Close(a)
	p.expectLine(`{"cmd":"NODE_HANDLE_ACK"}`, 0)
	m := r.next(t)
	if m.Cmd != CmdHandle || m.Type != TypeNetServer || m.FD != -1 || m.Inner == nil || string(m.Inner.Raw) != `{"x":1}` {
		t.Fatalf("delivered %+v", m)
	}
	// herd closed the only other reference to a: b reads EOF.
	unix.SetNonblock(b, false)
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(b, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if n, err := unix.Read(b, make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("read on the other end = %d, %v; want EOF (herd kept the fd open)", n, err)
	}

	// Without an fd: NACK, and nothing delivered (node drops it too).
	p.write(`{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"x":2}}` + "\n" + `{"after":1}` + "\n")
	p.expectLine(`{"cmd":"NODE_HANDLE_NACK"}`, 0)
	if m := r.next(t); string(m.Raw) != `{"after":1}` {
		t.Fatalf("delivered %s, want the line after the dropped handle", m.Raw)
	}
}

func TestIncomingHandleKept(t *testing.T) {
	c, p := newPair(t, WithKeepHandles())
	r := run(t, c)
	a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(b)
	p.write(handleLine+"\n", a)
	unix.Close(a)
	p.expectLine(`{"cmd":"NODE_HANDLE_ACK"}`, 0)
	m := r.next(t)
	if m.FD < 0 || m.Inner == nil || m.Inner.Act != "newconn" {
		t.Fatalf("delivered %+v", m)
	}
	defer unix.Close(m.FD)
	if fl, _ := unix.FcntlInt(uintptr(m.FD), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("received fd is not close-on-exec (MSG_CMSG_CLOEXEC)")
	}
	if _, err := unix.Write(m.FD, []byte("x")); err != nil {
		t.Fatalf("write on the received fd: %v", err)
	}
	buf := make([]byte, 1)
	unix.SetNonblock(b, false)
	if n, _ := unix.Read(b, buf); n != 1 || buf[0] != 'x' {
		t.Fatal("the delivered fd is not the one sent")
	}
}

// TestHandleQueue: one handle in flight; everything after it waits, in
// order, until NODE_HANDLE_ACK or NACK; done reports which.
func TestHandleQueue(t *testing.T) {
	var trace traceLog
	c, p := newPair(t, WithTrace(trace.record))
	r := run(t, c)
	h1, h1peer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	h2, h2peer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	for _, fd := range []int{h1, h1peer, h2, h2peer} {
		defer unix.Close(fd)
	}
	dones := make(chan string, 2)
	done := func(name string) func(bool) {
		return func(acked bool) { dones <- fmt.Sprintf("%s:%v", name, acked) }
	}

	msg1 := ClusterMessage("newconn", 1, map[string]any{"key": "k"})
	if err := c.SendHandle(TypeNetNative, msg1, h1, done("h1")); err != nil {
		t.Fatal(err)
	}
	if !c.Pending() {
		t.Fatal("Pending() = false right after SendHandle")
	}
	must(t, c.Send(map[string]int{"a": 1}))
	must(t, c.SendHandle(TypeNetNative, ClusterMessage("newconn", 2, map[string]any{"key": "k"}), h2, done("h2")))
	must(t, c.Send("b"))

	p.expectLine(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":1}}`, 1)
	p.expectNothing(200 * time.Millisecond)

	// A handle from the worker meanwhile: its ACK goes out at once, ahead of
	// the queue.
	a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(b)
	p.write(`{"cmd":"NODE_HANDLE","type":"net.Server","msg":{}}`+"\n", a)
	unix.Close(a)
	p.expectLine(`{"cmd":"NODE_HANDLE_ACK"}`, 0)
	r.next(t)
	p.expectNothing(100 * time.Millisecond)
	if !c.Pending() {
		t.Fatal("Pending() = false while h1 awaits its ACK")
	}

	p.write(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	if got := <-dones; got != "h1:true" {
		t.Fatalf("done: %s", got)
	}
	p.expectLine(`{"a":1}`, 0)
	p.expectLine(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":2}}`, 1)
	p.expectNothing(100 * time.Millisecond)
	p.write(`{"cmd":"NODE_HANDLE_NACK"}` + "\n")
	if got := <-dones; got != "h2:false" {
		t.Fatalf("done: %s", got)
	}
	p.expectLine(`"b"`, 0)
	if c.Pending() {
		t.Fatal("Pending() after the NACK")
	}

	// The write log: h2 went out only after the ACK for h1 came in.
	ack := -1
	for i, e := range trace.snapshot() {
		if e.Op == OpRead && string(e.Line) == `{"cmd":"NODE_HANDLE_ACK"}` {
			ack = i
		}
	}
	w1, w2 := trace.index(OpWrite, `"seq":1}}`), trace.index(OpWrite, `"seq":2}}`)
	if !(w1 >= 0 && w1 < ack && ack < w2) {
		t.Fatalf("trace: h1 written at %d, ACK read at %d, h2 written at %d\n%v", w1, ack, w2, trace.snapshot())
	}
	if e := trace.snapshot()[w1]; e.FD != h1 {
		t.Fatalf("trace: h1 written with fd %d, want %d", e.FD, h1)
	}
}

// TestPartialWrites: a worker that reads slowly. Lines longer than the
// socket buffer go out in pieces; the fd goes with the first piece of its
// line only; order is kept.
func TestPartialWrites(t *testing.T) {
	var trace traceLog
	c, p := newPair(t, WithTrace(trace.record))
	run(t, c)
	h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(h)
	defer unix.Close(hpeer)

	big := strings.Repeat("x", 3<<20)
	acked := make(chan bool, 1)
	returns(t, "Send to a worker that does not read", func() error {
		return errors.Join(c.Send(map[string]string{"big": big}),
			c.SendHandle(TypeNetNative, map[string]int{"h": 1}, h, func(ok bool) { acked <- ok }),
			c.Send(map[string]string{"big2": big}))
	})

	p.expectLine(`{"big":"`+big+`"}`, 0)
	l := p.expectLine(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"h":1}}`, 1)
	unix.Close(l.fds[0])
	p.write(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	if !<-acked {
		t.Fatal("done(false) after an ACK")
	}
	p.expectLine(`{"big2":"`+big+`"}`, 0)
	writes := 0
	for _, e := range trace.snapshot() {
		if e.Op == OpWrite {
			writes++
		}
	}
	if writes != 3 {
		t.Fatalf("%d OpWrite events for 3 lines", writes)
	}
}

func TestBackpressure(t *testing.T) {
	c, p := newPair(t, WithMaxQueue(1<<20, 1000))
	run(t, c)
	chunk := strings.Repeat("y", 32<<10)
	var sent int
	var err error
	for sent = 0; sent < 10000; sent++ {
		if err = c.Send(map[string]any{"n": sent, "s": chunk}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrBackpressure) {
		t.Fatalf("after %d sends: %v, want ErrBackpressure", sent, err)
	}
	// Everything accepted arrives, in order, once the worker reads.
	for i := 0; i < sent; i++ {
		p.expectLine(fmt.Sprintf(`{"n":%d,"s":"%s"}`, i, chunk), 0)
	}
	must(t, c.Send("after"))
	p.expectLine(`"after"`, 0)
}

// TestStalledWorker: a worker that sends handles but never reads the ACKs
// herd owes it fills the queue; Run reports it instead of growing for ever.
func TestStalledWorker(t *testing.T) {
	c, p := newPair(t, WithMaxQueue(4<<10, 1000))
	r := run(t, c)
	line := []byte(`{"cmd":"NODE_HANDLE","type":"net.Server","msg":{}}` + "\n")
	go func() {
		for i := 0; i < 20000; i++ {
			if _, err := p.conn.Write(line); err != nil {
				return
			}
		}
	}()
	err := r.wait(t)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Kind != KindStalled || !errors.Is(err, ErrBackpressure) {
		t.Fatalf("Run = %v, want a KindStalled ProtocolError", err)
	}
}

func TestCloseFailsHandles(t *testing.T) {
	c, _ := newPair(t)
	r := run(t, c)
	h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(h)
	defer unix.Close(hpeer)
	var mu sync.Mutex
	var got []string
	rec := func(name string) func(bool) {
		return func(ok bool) { mu.Lock(); got = append(got, fmt.Sprintf("%s:%v", name, ok)); mu.Unlock() }
	}
	must(t, c.SendHandle(TypeNetNative, 1, h, rec("a")))
	must(t, c.SendHandle(TypeNetNative, 2, h, rec("b")))
	must(t, c.Close())
	if fmt.Sprint(got) != "[a:false b:false]" {
		t.Fatalf("done calls %v", got)
	}
	if err := r.wait(t); err != ErrClosed {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
	if err := c.Send(1); err != ErrClosed {
		t.Fatalf("Send after Close = %v", err)
	}
	if err := c.SendHandle(TypeNetNative, 1, h, nil); err != ErrClosed {
		t.Fatalf("SendHandle after Close = %v", err)
	}
	if err := c.Close(); err != ErrClosed {
		t.Fatalf("second Close = %v", err)
	}
}

func TestEOFFailsHandles(t *testing.T) {
	c, p := newPair(t)
	r := run(t, c)
	h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(h)
	defer unix.Close(hpeer)
	acked := make(chan bool, 1)
	must(t, c.SendHandle(TypeNetNative, 1, h, func(ok bool) { acked <- ok }))
	p.expectLine(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":1}`, 1)
	p.write(`{"partial":`)
	p.conn.Close()
	if err := r.wait(t); err != io.EOF {
		t.Fatalf("Run = %v, want io.EOF", err)
	}
	if <-acked {
		t.Fatal("done(true) for a handle the worker never acknowledged")
	}
	if err := c.Send(1); !errors.Is(err, io.EOF) {
		t.Fatalf("Send after EOF = %v", err)
	}
}

func TestRunContext(t *testing.T) {
	c, p := newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run ignored its context")
	}
	must(t, c.Send("still open"))
	p.expectLine(`"still open"`, 0)
	if err := c.Run(context.Background(), nil); err == nil {
		t.Fatal("second Run did not fail")
	}
}

func TestSendRefusesBadLines(t *testing.T) {
	c, p := newPair(t)
	for _, msg := range []any{
		[]byte(""), []byte("not json"), []byte("{\n}"), []byte(`{"a":1}` + "\n"), []byte("{} {}"),
		make(chan int), func() {},
	} {
		if err := c.Send(msg); err == nil {
			t.Errorf("Send(%q) accepted", msg)
		}
	}
	must(t, c.Send([]byte(` {"ok":true} `)))
	must(t, c.Send(nil))
	must(t, c.Send("<&>"))
	p.expectLine(` {"ok":true} `, 0)
	p.expectLine(`null`, 0)
	p.expectLine(`"<&>"`, 0)
}

func TestCheckHandle(t *testing.T) {
	file, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var fileFD int
	rc, _ := file.SyscallConn()
	rc.Control(func(fd uintptr) { fileFD = int(fd) })

	var pipe [2]int
	must(t, unix.Pipe2(pipe[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer closeFDs(pipe[:])
	blocking, bpeer := socketpair(t, unix.SOCK_STREAM)
	defer closeFDs([]int{blocking, bpeer})
	stream, speer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer closeFDs([]int{stream, speer})
	udgram, upeer := socketpair(t, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK)
	defer closeFDs([]int{udgram, upeer})
	tcp, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(tcp)
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(udp)
	const closed = 1<<20 - 1 // above any fd this test opens

	tests := []struct {
		name string
		typ  string
		fd   int
		ok   bool
	}{
		{"tcp stream", TypeNetNative, tcp, true},
		{"unix stream", TypeNetNative, stream, true},
		{"unix stream as net.Server", TypeNetServer, stream, true},
		{"udp", TypeDgramNative, udp, true},
		{"regular file", TypeNetNative, fileFD, false},
		{"pipe", TypeNetNative, pipe[0], false},
		{"blocking socket", TypeNetNative, blocking, false},
		{"unix datagram", TypeDgramNative, udgram, false},
		{"udp as net.Native", TypeNetNative, udp, false},
		{"tcp as dgram.Native", TypeDgramNative, tcp, false},
		{"unknown type", "net.Pipe", tcp, false},
		{"closed fd", TypeNetNative, closed, false},
		{"negative fd", TypeNetNative, -1, false},
	}
	c, _ := newPair(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SendHandle(tt.typ, map[string]int{}, tt.fd, nil)
			if tt.ok != (err == nil) {
				t.Fatalf("SendHandle = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadHandle) {
				t.Fatalf("error %v does not wrap ErrBadHandle", err)
			}
			if err == nil {
				// release the queue for the next case
				c.mu.Lock()
				c.pending = nil
				c.mu.Unlock()
			}
		})
	}
}

// TestNoFDLeak: many hand-offs both ways leave herd's fd count where it was.
func TestNoFDLeak(t *testing.T) {
	c, p := newPair(t)
	r := run(t, c)
	before := countFDs(t)
	for i := 0; i < 300; i++ {
		h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
		acked := make(chan bool, 1)
		must(t, c.SendHandle(TypeNetNative, i, h, func(ok bool) { acked <- ok }))
		l := p.expectLine(fmt.Sprintf(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":%d}`, i), 1)
		closeFDs(l.fds)
		p.write(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
		if !<-acked {
			t.Fatal("NACKed")
		}
		closeFDs([]int{h, hpeer})

		a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
		p.write(`{"cmd":"NODE_HANDLE","type":"net.Socket","msg":{}}`+"\n", a)
		closeFDs([]int{a, b})
		p.expectLine(`{"cmd":"NODE_HANDLE_ACK"}`, 0)
		r.next(t)
	}
	if after := countFDs(t); after != before {
		t.Fatalf("%d fds open before, %d after", before, after)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
