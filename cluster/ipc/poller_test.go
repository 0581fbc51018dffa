//go:build linux

package ipc

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pollRun reads c (opened WithoutPoller) the way herd's poller does: an
// epoll set of the test's own, level-triggered, and ReadReady on every
// event. It collects what is delivered in a runner, as run does for Run.
func pollRun(t testing.TB, c *Channel) *runner {
	t.Helper()
	r := &runner{msgs: make(chan Message, 1024), done: make(chan error, 1)}
	rd, err := c.NewReader(func(m Message) { r.msgs <- m })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewReader(nil); err == nil {
		t.Fatal("a channel must not get a second reader")
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, c.FD(), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 1}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer unix.Close(epfd)
		ev := make([]unix.EpollEvent, 1)
		for {
			n, err := unix.EpollWait(epfd, ev, 100)
			if err != nil && !errors.Is(err, unix.EINTR) {
				r.done <- err
				return
			}
			// A timeout also reads, so that a Close (which takes the fd
			// out of the set) is seen.
			_ = n
			if err := rd.ReadReady(); err != nil {
				r.done <- err
				return
			}
		}
	}()
	return r
}

func TestWithoutPollerReads(t *testing.T) {
	c, p := newPair(t, WithoutPoller())
	flags, err := unix.FcntlInt(uintptr(c.FD()), unix.F_GETFL, 0)
	must(t, err)
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the channel's fd is blocking")
	}
	if err := c.Run(t.Context(), nil); err == nil {
		t.Fatal("Run on a channel opened WithoutPoller must fail")
	}
	r := pollRun(t, c)

	// Two lines in one write, one line across two writes, an ACK owed for
	// a handle the worker sends.
	p.write(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}` + "\n" + `{"a":1}` + "\n")
	if m := r.next(t); m.Act != "online" || *m.Seq != 0 {
		t.Fatalf("got %s", m.Raw)
	}
	if m := r.next(t); string(m.Raw) != `{"a":1}` {
		t.Fatalf("got %s", m.Raw)
	}
	p.write(`{"cmd":"NODE_CLUSTER","ack":3,`)
	p.write(`"accepted":true,"seq":1}` + "\n")
	if m := r.next(t); m.Ack == nil || *m.Ack != 3 {
		t.Fatalf("got %s", m.Raw)
	}
	h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(hpeer)
	p.write(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"x":1}}`+"\n", h)
	unix.Close(h)
	p.expectLine(`{"cmd":"NODE_HANDLE_ACK"}`, 0)
	if m := r.next(t); m.Cmd != CmdHandle {
		t.Fatalf("got %s", m.Raw)
	}

	// A handle of herd's own: the queue stops behind it until the ACK the
	// reader picks up.
	conn, cpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer unix.Close(conn)
	defer unix.Close(cpeer)
	acked := make(chan bool, 1)
	must(t, c.SendAccepted(TypeNetNative, []byte(`{"n":1}`), conn, func(ok bool) { acked <- ok }))
	must(t, c.Send(map[string]int{"after": 1}))
	l := p.expectLine(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"n":1}}`, 1)
	unix.Close(l.fds[0])
	p.expectNothing(50 * time.Millisecond)
	p.write(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	if !<-acked {
		t.Fatal("done(false) after an ACK")
	}
	p.expectLine(`{"after":1}`, 0)

	// The worker goes: EOF, once and for good.
	p.conn.Close()
	if err := r.wait(t); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadReady after the peer closed: %v, want EOF", err)
	}
}

// TestWithoutPollerPartialWrites: lines larger than the socket buffer get
// out whole, in order, although nothing waits for the socket in Go's
// netpoller.
func TestWithoutPollerPartialWrites(t *testing.T) {
	c, p := newPair(t, WithoutPoller())
	pollRun(t, c)
	big := strings.Repeat("y", 3<<20)
	returns(t, "Send to a worker that does not read", func() error {
		return errors.Join(c.Send(map[string]string{"big": big}), c.Send(map[string]string{"big2": big}))
	})
	p.expectLine(`{"big":"`+big+`"}`, 0)
	p.expectLine(`{"big2":"`+big+`"}`, 0)
}

// TestWithoutPollerClose: Close while the flusher waits for a worker that
// does not read returns promptly, and the reader reports ErrClosed.
func TestWithoutPollerClose(t *testing.T) {
	c, _ := newPair(t, WithoutPoller())
	r := pollRun(t, c)
	must(t, c.Send(map[string]string{"big": strings.Repeat("z", 3<<20)}))
	returns(t, "Close while the flusher waits", c.Close)
	if err := r.wait(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadReady after Close: %v, want ErrClosed", err)
	}
}

// TestWithoutPollerLongLine: a line longer than one ReadReady reads (16 ×
// 64 KiB) arrives whole over several calls.
func TestWithoutPollerLongLine(t *testing.T) {
	c, p := newPair(t, WithoutPoller())
	r := pollRun(t, c)
	big := `{"big":"` + strings.Repeat("q", 3<<20) + `"}`
	go p.conn.Write([]byte(big + "\n" + `{"after":1}` + "\n"))
	if m := r.next(t); string(m.Raw) != big {
		t.Fatalf("got %d bytes, want the %d-byte line", len(m.Raw), len(big))
	}
	if m := r.next(t); string(m.Raw) != `{"after":1}` {
		t.Fatalf("got %s", m.Raw)
	}
}
