package handoff

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// fakeWorker is the worker's side of a channel, in this process: it takes
// each newconn's socket and either answers the client with its name and
// {accepted: true}, or (hold) keeps the socket without reading it or
// answering herd, as a worker that dies in that moment would.
type fakeWorker struct {
	name   string
	ch     *ipc.Channel
	hw     *Worker
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	hold bool
	held []int
}

func newFakeWorker(t *testing.T, h *Handoff, name string, slot int, deliver func(ipc.Message)) *fakeWorker {
	t.Helper()
	herdEnd, child, err := ipc.Pair(ipc.WithoutPoller())
	if err != nil {
		t.Fatal(err)
	}
	wch, err := ipc.Open(child, ipc.WithKeepHandles())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeWorker{name: name, ch: wch, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		_ = wch.Run(ctx, f.receive)
	}()
	if deliver == nil {
		deliver = func(ipc.Message) {}
	}
	if f.hw, err = h.Attach(herdEnd, slot+1, slot, deliver, func(error) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.die(); herdEnd.Close() })
	return f
}

func (f *fakeWorker) receive(m ipc.Message) {
	if m.Cmd != ipc.CmdHandle || m.Inner == nil || m.Inner.Act != actNewconn || m.FD < 0 {
		return
	}
	f.mu.Lock()
	if f.hold {
		f.held = append(f.held, m.FD)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	// Read what the client sent (a socket closed with unread data sends
	// a reset), then answer.
	buf := make([]byte, 64)
	for {
		if n, err := unix.Read(m.FD, buf); n <= 0 || err != nil {
			break
		}
	}
	_, _ = unix.Write(m.FD, []byte(f.name))
	unix.Close(m.FD)
	_ = f.ch.Send(json.RawMessage(ipc.Reply(*m.Inner.Seq, 0, map[string]any{"accepted": true})))
}

// die ends the worker: its channel and every socket it held close, as
// the kernel closes them when a process exits.
func (f *fakeWorker) die() {
	f.cancel()
	<-f.done
	f.ch.Close()
	f.mu.Lock()
	for _, fd := range f.held {
		unix.Close(fd)
	}
	f.held = nil
	f.mu.Unlock()
}

func listenTCP(t *testing.T) (addr string, fd int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return ln.Addr().String(), fd
}

// ask connects to addr, sends send, and returns what the worker wrote
// before closing, or "error: ..." when the connection failed.
func ask(addr string, send string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			return "error: " + err.Error()
		}
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

func started(t *testing.T) *Handoff {
	t.Helper()
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Connections go round-robin to the workers that joined, and the totals
// count every one.
func TestHandoffRoundRobin(t *testing.T) {
	h := started(t)
	addr, fd := listenTCP(t)
	srv, err := h.Open("key", fd)
	if err != nil {
		t.Fatal(err)
	}
	a := newFakeWorker(t, h, "a", 0, nil)
	b := newFakeWorker(t, h, "b", 1, nil)
	h.Join(srv, a.hw)
	h.Join(srv, b.hw)
	got := map[string]int{}
	for i := 0; i < 20; i++ {
		got[ask(addr, "")]++
	}
	if got["a"] != 10 || got["b"] != 10 {
		t.Errorf("answers %v, want 10 from each worker", got)
	}
	// A client may read its answer before herd reads the worker's reply.
	st := h.Stats()
	for deadline := time.Now().Add(10 * time.Second); st.HandedOff[0]+st.HandedOff[1] < 20 && time.Now().Before(deadline); st = h.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Accepted != 20 || st.HandedOff[0] != 10 || st.HandedOff[1] != 10 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
	if !a.hw.Served() || !b.hw.Served() || a.hw.Taken() != 10 || b.hw.Taken() != 10 {
		t.Errorf("taken %d and %d, served %v and %v; want 10 each, served", a.hw.Taken(), b.hw.Taken(), a.hw.Served(), b.hw.Served())
	}
	if h.Busy() {
		t.Error("busy with nothing in flight")
	}
	// Disconnected, a worker gets no more; left, the same.
	h.Disconnect(a.hw)
	for i := 0; i < 4; i++ {
		if got := ask(addr, ""); got != "b" {
			t.Errorf("after disconnecting a: %q", got)
		}
	}
	h.Leave(srv, a.hw)
	h.Leave(srv, b.hw)
	h.Close(srv)
}

// A worker that dies with an unanswered connection: one it had not touched
// goes to another worker and its client is served; one it had read from
// is closed, so its client sees the end at once rather than waiting.
func TestHandoffDeadWorkerConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		send    string // what the client sends first
		read    bool   // the dying worker reads it
		answer  string // what the client gets
		handed0 uint64 // hand-offs counted for slot 0
	}{
		{"untouched goes to another worker", "GET", false, "b", 0},
		{"read from is closed", "GET", true, "error: read tcp", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := started(t)
			addr, fd := listenTCP(t)
			srv, err := h.Open("key", fd)
			if err != nil {
				t.Fatal(err)
			}
			a := newFakeWorker(t, h, "a", 0, nil)
			a.hold = true
			h.Join(srv, a.hw)
			answer := make(chan string, 1)
			go func() { answer <- ask(addr, tc.send) }()
			// Wait until a holds the connection and the request is there.
			var held int
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				a.mu.Lock()
				if len(a.held) == 1 {
					held = a.held[0]
				}
				a.mu.Unlock()
				if n, _ := unix.IoctlGetInt(held, unix.SIOCINQ); held > 0 && n == len(tc.send) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the worker never held the connection with its request")
				}
			}
			if tc.read {
				buf := make([]byte, 1)
				if _, err := unix.Read(held, buf); err != nil {
					t.Fatal(err)
				}
			}
			if !h.Busy() {
				t.Error("not busy with a connection unanswered")
			}
			b := newFakeWorker(t, h, "b", 1, nil)
			h.Leave(srv, a.hw)
			a.die()
			h.Detach(a.hw, true)
			h.Join(srv, b.hw)
			select {
			case got := <-answer:
				if !strings.HasPrefix(got, tc.answer) {
					t.Errorf("client got %q, want %q", got, tc.answer)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the client is still waiting")
			}
			if st := h.Stats(); st.HandedOff[0] != tc.handed0 || st.Queued != 0 {
				t.Errorf("stats %+v", st)
			}
			h.Close(srv)
		})
	}
}

// Every message that is not a newconn reply reaches deliver, in order;
// the end of the channel reaches ended and stops the hand-offs to it.
func TestHandoffDeliversTheRest(t *testing.T) {
	h := started(t)
	herdEnd, child, err := ipc.Pair(ipc.WithoutPoller())
	if err != nil {
		t.Fatal(err)
	}
	defer herdEnd.Close()
	got := make(chan string, 8)
	ended := make(chan error, 1)
	hw, err := h.Attach(herdEnd, 1, 0, func(m ipc.Message) { got <- string(m.Raw) }, func(err error) { ended <- err })
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`, `{"hello":"user message"}`}
	if _, err := unix.Write(child, []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range lines {
		select {
		case line := <-got:
			if line != want {
				t.Errorf("delivered %s, want %s", line, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not delivered", want)
		}
	}
	unix.Close(child)
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("ended with %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the channel was not reported")
	}
	h.mu.Lock()
	disconnected := hw.disconnected
	h.mu.Unlock()
	if !disconnected {
		t.Error("a worker whose channel ended may still get connections")
	}
	h.Detach(hw, true)
}

// TestLaggingHoldsBackOnlyPastTheShare: a free worker gives way to a busy
// one that is behind it by lagBehind connections and by 1/lagShare of its
// count, and by nothing less: a faster worker keeps its pace within that
// share instead of idling until the slower one catches up.
func TestLaggingHoldsBackOnlyPastTheShare(t *testing.T) {
	now := time.Now()
	cases := []struct {
		free, busy int
		hold       bool
	}{
		{free: 7, busy: 0, hold: false},
		{free: 8, busy: 0, hold: true},
		{free: 1000 + 39, busy: 1000, hold: false}, // 39 behind, under 1000/25
		{free: 1000 + 40, busy: 1000, hold: true},
		{free: 100000 + 3000, busy: 100000, hold: false},
		{free: 100000 + 4000, busy: 100000, hold: true},
	}
	for _, c := range cases {
		free := &Worker{count: c.free}
		busy := &Worker{count: c.busy, rr: &conn{sent: now}}
		srv := &Server{order: []*Worker{free, busy}}
		wait := lagging(srv, free, now)
		if got := wait > 0; got != c.hold {
			t.Errorf("free worker at %d, busy one at %d: held back %v (%v), want %v", c.free, c.busy, got, wait, c.hold)
		}
		// A busy worker whose newconn went out lagWait ago is stalled:
		// nobody waits for it.
		busy.rr.sent = now.Add(-lagWait)
		if wait := lagging(srv, free, now); wait != 0 {
			t.Errorf("free worker at %d, stalled one at %d: held back %v", c.free, c.busy, wait)
		}
	}
}
