//go:build linux

package ipc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireNode returns the path of node, skipping the test without it, or
// failing it under CI=true (the test command installs node).
func requireNode(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node not found on PATH (CI=true): %v", err)
		}
		t.Skipf("node not found on PATH: %v", err)
	}
	return path
}

// peer is the worker's end of a Pair, driven by the test: raw writes with or
// without fds, and a reader that gives each received fd to the last line that
// started in the read that brought it (herd sends a handle line alone in the
// sendmsg that carries its fd, and the kernel ends a read after it).
type peer struct {
	t    testing.TB
	conn *net.UnixConn

	lines []peerLine
}

type peerLine struct {
	text string
	fds  []int
}

// newPair returns herd's Channel and the test's peer on the other end.
func newPair(t testing.TB, opts ...Option) (*Channel, *peer) {
	t.Helper()
	c, child, err := Pair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(child), "peer")
	conn, err := net.FileConn(f) // dups child
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, conn: conn.(*net.UnixConn)}
	t.Cleanup(func() {
		c.Close()
		p.conn.Close()
	})
	return c, p
}

// write sends data in one sendmsg, with fds as SCM_RIGHTS.
func (p *peer) write(data string, fds ...int) {
	p.t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := p.conn.WriteMsgUnix([]byte(data), oob, nil)
	if err != nil || n != len(data) {
		p.t.Fatalf("peer write: n=%d of %d: %v", n, len(data), err)
	}
}

// readLine returns the next complete line herd wrote, and the fds it carried.
func (p *peer) readLine(timeout time.Duration) (peerLine, error) {
	deadline := time.Now().Add(timeout)
	for {
		if len(p.lines) > 0 && (len(p.lines) > 1 || strings.HasSuffix(p.lines[0].text, "\n")) {
			l := p.lines[0]
			p.lines = p.lines[1:]
			l.text = strings.TrimSuffix(l.text, "\n")
			return l, nil
		}
		p.conn.SetReadDeadline(deadline)
		buf := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(8*4))
		n, oobn, _, _, err := p.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return peerLine{}, err
		}
		fds := parseRights(oob[:oobn])
		p.take(buf[:n], fds)
	}
}

// take splits one read into lines; p.lines' last entry may be partial.
func (p *peer) take(data []byte, fds []int) {
	owner := -1
	for len(data) > 0 {
		if len(p.lines) == 0 || strings.HasSuffix(p.lines[len(p.lines)-1].text, "\n") {
			p.lines = append(p.lines, peerLine{})
			owner = len(p.lines) - 1
		}
		last := &p.lines[len(p.lines)-1]
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			last.text += string(data)
			break
		}
		last.text += string(data[:i+1])
		data = data[i+1:]
	}
	if owner < 0 {
		owner = len(p.lines) - 1
	}
	if len(fds) > 0 {
		if owner < 0 {
			p.t.Errorf("peer: fds %v arrived with no data", fds)
			return
		}
		p.lines[owner].fds = append(p.lines[owner].fds, fds...)
	}
}

// expectLine reads the next line and checks it.
func (p *peer) expectLine(want string, wantFDs int) peerLine {
	p.t.Helper()
	l, err := p.readLine(5 * time.Second)
	if err != nil {
		p.t.Fatalf("peer: waiting for %s: %v", want, err)
	}
	if l.text != want {
		p.t.Fatalf("peer read %q, want %q", l.text, want)
	}
	if len(l.fds) != wantFDs {
		p.t.Fatalf("peer: line %s came with fds %v, want %d", want, l.fds, wantFDs)
	}
	return l
}

// expectNothing checks that herd writes nothing for a while.
func (p *peer) expectNothing(d time.Duration) {
	p.t.Helper()
	l, err := p.readLine(d)
	if err == nil {
		p.t.Fatalf("peer read %q, want nothing yet", l.text)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		p.t.Fatalf("peer: %v", err)
	}
}

// runner runs c.Run in the background and collects what it delivers.
type runner struct {
	msgs chan Message
	done chan error
}

func run(t testing.TB, c *Channel) *runner {
	t.Helper()
	r := &runner{msgs: make(chan Message, 1024), done: make(chan error, 1)}
	go func() { r.done <- c.Run(context.Background(), func(m Message) { r.msgs <- m }) }()
	return r
}

func (r *runner) next(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case err := <-r.done:
		t.Fatalf("Run ended before a message came: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return Message{}
}

func (r *runner) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
	}
	return nil
}

// socketpair returns a connected pair with the given type and flags.
func socketpair(t testing.TB, typ int) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// isOpen reports whether fd is an open descriptor.
func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// countFDs is the number of fds this process has open.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// traceLog records a Channel's trace.
type traceLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *traceLog) record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Line = bytes.Clone(e.Line)
	l.events = append(l.events, e)
}

func (l *traceLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// index returns the position of the first event with op whose line contains
// sub, or -1.
func (l *traceLog) index(op Op, sub string) int {
	for i, e := range l.snapshot() {
		if e.Op == op && bytes.Contains(e.Line, []byte(sub)) {
			return i
		}
	}
	return -1
}

// returns runs f and fails the test if f has not returned within 30 s: f
// is expected not to wait for the peer (which reads nothing meanwhile), so
// waiting would mean never returning, not returning late.
func returns(t testing.TB, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return: it waits for the worker", what)
	}
}
