//go:build linux

package ipc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nodeWorker is a real node process running a testdata script as a cluster
// worker on the child end of a Pair, the way herd's spawner starts one.
type nodeWorker struct {
	c      *Channel
	r      *runner
	cmd    *exec.Cmd
	exited chan struct{}
	output syncBuffer
}

func startNode(t *testing.T, script string, id int, opts ...Option) *nodeWorker {
	t.Helper()
	node := requireNode(t)
	c, child, err := Pair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	w := &nodeWorker{c: c, exited: make(chan struct{})}
	w.cmd = exec.Command(node, script)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NODE_") {
			w.cmd.Env = append(w.cmd.Env, kv)
		}
	}
	w.cmd.Env = append(w.cmd.Env, "NODE_CHANNEL_FD=3", "NODE_UNIQUE_ID="+strconv.Itoa(id), "NODE_CHANNEL_SERIALIZATION_MODE=json")
	w.cmd.Stdout, w.cmd.Stderr = &w.output, &w.output
	// Only in tests: exec.Cmd calls Fd on ExtraFiles, which makes the child's
	// end blocking. Harmless here (node sets O_NONBLOCK on its end); herd's
	// spawner passes the raw fd in syscall.ProcAttr.Files instead.
	childFile := os.NewFile(uintptr(child), "ipc-child")
	w.cmd.ExtraFiles = []*os.File{childFile}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childFile.Close() // or herd never sees EOF
	go func() { w.cmd.Wait(); close(w.exited) }()
	w.r = run(t, c)
	t.Cleanup(func() {
		c.Close()
		select {
		case <-w.exited:
		case <-time.After(5 * time.Second):
			w.cmd.Process.Kill()
			<-w.exited
		}
		if t.Failed() {
			t.Logf("worker output:\n%s", w.output.String())
		}
	})
	return w
}

// next returns the next message node sent, skipping none.
func (w *nodeWorker) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-w.r.msgs:
		return m
	case err := <-w.r.done:
		t.Fatalf("Run ended: %v\nworker output:\n%s", err, w.output.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("no message from node within 10s\nworker output:\n%s", w.output.String())
	}
	return Message{}
}

// nextUser skips cluster-internal messages and decodes the next user message.
func (w *nodeWorker) nextUser(t *testing.T, v any) Message {
	t.Helper()
	for {
		m := w.next(t)
		if m.Internal() {
			continue
		}
		if v != nil {
			if err := json.Unmarshal(m.Raw, v); err != nil {
				t.Fatalf("user message %s: %v", m.Raw, err)
			}
		}
		return m
	}
}

// TestNodeStartup is docs/protocol.md §12 test 1 and 14: node's first line is
// online with seq 0, the app sees itself as cluster worker <id>, and closing
// herd's end makes it exit 0 at once.
func TestNodeStartup(t *testing.T) {
	w := startNode(t, "testdata/introspect.js", 7)
	if m := w.next(t); string(m.Raw) != `{"cmd":"NODE_CLUSTER","act":"online","seq":0}` {
		t.Fatalf("first line %s, want online seq 0", m.Raw)
	}
	var got struct {
		IsWorker, IsPrimary, Connected bool
		ID                             int
		State                          string
		ChannelFD                      int
		Env                            []string
	}
	w.nextUser(t, &got)
	if !got.IsWorker || got.IsPrimary || got.ID != 7 || got.State != "online" || !got.Connected || got.ChannelFD != 3 {
		t.Fatalf("the worker sees %+v", got)
	}
	if strings.Join(got.Env, ",") != "undefined,undefined,undefined" {
		t.Fatalf("node left the channel variables in the app's env: %v", got.Env)
	}

	// Idle, it stays up: the channel keeps it alive.
	select {
	case <-w.exited:
		t.Fatalf("the idle worker exited on its own: %v", w.cmd.ProcessState)
	case <-time.After(300 * time.Millisecond):
	}

	start := time.Now()
	must(t, w.c.Close())
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("node still running 5s after herd closed the channel")
	}
	t.Logf("node exited %v after Close", time.Since(start))
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("node exited %d after the channel closed, want 0", code)
	}
	if err := w.r.wait(t); err != ErrClosed {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
}

// TestNodeFlowControl is docs/protocol.md §12 test 10 and the 64 KiB trap of
// §3.3: while node is busy, herd writes a message longer than 64 KiB sized so
// that node's 64 KiB read ends inside the next line, then two handles at once.
// The second handle must go out only after node's ACK for the first, and
// each connection must reach node with its own message.
func TestNodeFlowControl(t *testing.T) {
	var trace traceLog
	w := startNode(t, "testdata/echo.js", 1, WithTrace(trace.record))
	w.next(t) // online

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var clients []net.Conn
	var fds []int
	for range 2 {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, rawFD(t, server.(*net.TCPConn)))
		server.Close()
		clients = append(clients, client)
	}
	defer closeFDs(fds)

	must(t, w.c.Send(map[string]int{"block": 1000}))
	time.Sleep(300 * time.Millisecond) // node has read it and is busy

	// 2×64 KiB - 40 bytes: node's second read ends 40 bytes into handle 1.
	const quietLine = 2*65536 - 40
	filler := strings.Repeat("f", quietLine-len(`{"quiet":""}`+"\n"))
	must(t, w.c.Send(map[string]string{"quiet": filler}))
	acks := make(chan bool, 2)
	for i := range 2 {
		must(t, w.c.SendHandle(TypeNetNative, map[string]int{"conn": i + 1}, fds[i], func(ok bool) { acks <- ok }))
		if !w.c.Pending() {
			t.Fatal("Pending() = false after SendHandle")
		}
	}

	reports := map[int]struct {
		Type, Flags string
	}{}
	for len(reports) < 2 {
		var rep struct {
			Handle      *struct{ Conn int }
			Type, Flags string
			QuietLen    int
			Unblocked   bool
		}
		w.nextUser(t, &rep)
		switch {
		case rep.Unblocked:
		case rep.QuietLen > 0:
			if rep.QuietLen != len(filler) {
				t.Fatalf("node read a %d-byte filler, sent %d", rep.QuietLen, len(filler))
			}
		case rep.Handle != nil:
			reports[rep.Handle.Conn] = struct{ Type, Flags string }{rep.Type, rep.Flags}
		}
	}
	for i := 1; i <= 2; i++ {
		if reports[i].Type != "TCP" {
			t.Errorf("conn %d arrived as %q, want a TCP wrap", i, reports[i].Type)
		}
		if !nonblocking(reports[i].Flags) {
			t.Errorf("conn %d is blocking in the worker (fdinfo flags %s)", i, reports[i].Flags)
		}
	}
	for i, client := range clients {
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(client).ReadString('\n')
		if want := fmt.Sprintf("conn %d\n", i+1); line != want {
			t.Errorf("connection %d got %q (%v), want %q: a handle reached node with the wrong line", i+1, line, err, want)
		}
	}
	for range 2 {
		if !<-acks {
			t.Error("node NACKed a handle")
		}
	}

	ev := trace.snapshot()
	find := func(op Op, sub string, from int) int {
		for i := from; i < len(ev); i++ {
			if ev[i].Op == op && bytes.Contains(ev[i].Line, []byte(sub)) {
				return i
			}
		}
		return -1
	}
	quiet := find(OpWrite, `{"quiet":`, 0)
	h1 := find(OpWrite, `"msg":{"conn":1}`, 0)
	ack1 := find(OpRead, `{"cmd":"NODE_HANDLE_ACK"}`, h1+1)
	h2 := find(OpWrite, `"msg":{"conn":2}`, 0)
	if quiet < 0 || h1 < quiet || ack1 < h1 || h2 < ack1 {
		t.Fatalf("write log: filler at %d, handle 1 at %d, its ACK at %d, handle 2 at %d: handle 2 must follow the ACK", quiet, h1, ack1, h2)
	}
	if ev[h1].FD != fds[0] || ev[h2].FD != fds[1] {
		t.Fatalf("write log: handles went with fds %d and %d, want %d and %d", ev[h1].FD, ev[h2].FD, fds[0], fds[1])
	}
}

// TestNodeHandlesFromApp is docs/protocol.md §12 test 11: the app sends a server
// with process.send; herd ACKs at once and closes the fd, and node's queue
// behind that handle (a user message, then a queryServer) comes through.
func TestNodeHandlesFromApp(t *testing.T) {
	var trace traceLog
	w := startNode(t, "testdata/sendhandle.js", 1, WithTrace(trace.record))
	before := countFDs(t)
	w.next(t) // online
	m := w.next(t)
	if m.Cmd != CmdHandle || m.Type != TypeNetServer || m.FD != -1 || m.Inner == nil || string(m.Inner.Raw) != `{"x":1}` {
		t.Fatalf("got %s (FD %d), want the app's NODE_HANDLE with its fd closed", m.Raw, m.FD)
	}
	if m := w.next(t); string(m.Raw) != `{"after":1}` {
		t.Fatalf("got %s, want the user message node queued behind its handle", m.Raw)
	}
	q := w.next(t)
	if q.Cmd != CmdCluster || q.Act != "queryServer" || ServerKey(q) != "null:0:4:undefined:0" {
		t.Fatalf("got %s, want a queryServer for listen(0)", q.Raw)
	}

	ev := trace.snapshot()
	var read, ack = -1, -1
	for i, e := range ev {
		if e.Op == OpRead && bytes.HasPrefix(e.Line, []byte(`{"cmd":"NODE_HANDLE",`)) {
			read = i
			if e.FD < 0 {
				t.Fatal("trace: the app's handle came without an fd")
			}
		}
		if e.Op == OpWrite && string(e.Line) == `{"cmd":"NODE_HANDLE_ACK"}` && read >= 0 && ack < 0 {
			ack = i
		}
	}
	if read < 0 || ack != read+1 {
		t.Fatalf("trace: handle read at %d, ACK written at %d; want the ACK right after\n%v", read, ack, ev)
	}
	if after := countFDs(t); after != before {
		t.Fatalf("herd has %d fds, had %d before node sent its handle", after, before)
	}
}

// TestNodeBigMessage: a 3 MB user message goes to node and comes back intact
// (docs/protocol.md §12 test 16); node's 64 KiB reads and herd's partial writes
// both cut it into many pieces.
func TestNodeBigMessage(t *testing.T) {
	w := startNode(t, "testdata/echo.js", 1)
	w.next(t)
	var b strings.Builder
	for i := 0; b.Len() < 3_000_000; i++ {
		fmt.Fprintf(&b, "%d é\n\u2028\"", i)
	}
	sent, err := json.Marshal(map[string]string{"big": b.String()})
	must(t, err)
	must(t, w.c.Send(json.RawMessage(sent)))
	must(t, w.c.Send(map[string]int{"small": 1}))
	got := w.nextUser(t, nil)
	var a, z map[string]string
	must(t, json.Unmarshal(sent, &a))
	must(t, json.Unmarshal(got.Raw, &z))
	if a["big"] != z["big"] {
		t.Fatalf("3 MB message came back changed (%d bytes sent, %d back)", len(sent), len(got.Raw))
	}
	if m := w.nextUser(t, nil); string(m.Raw) != `{"small":1}` {
		t.Fatalf("got %s after the big message", m.Raw)
	}
}

// TestNodeSplitWrites: one line written in three pieces 50 ms apart is
// delivered once, whole (docs/protocol.md §12 test 16).
func TestNodeSplitWrites(t *testing.T) {
	w := startNode(t, "testdata/echo.js", 1)
	w.next(t)
	must(t, w.c.Send(map[string]bool{"split": true}))
	if m := w.nextUser(t, nil); string(m.Raw) != `{"split":"yes","n":1}` {
		t.Fatalf("got %s", m.Raw)
	}
	must(t, w.c.Send("still in sync"))
	if m := w.nextUser(t, nil); string(m.Raw) != `"still in sync"` {
		t.Fatalf("got %s", m.Raw)
	}
}

// TestNodeFDHygiene is docs/protocol.md §12 test 17 at the channel level: every
// fd herd sends reaches node non-blocking, and many hand-offs leave herd's
// fd count where it was.
func TestNodeFDHygiene(t *testing.T) {
	w := startNode(t, "testdata/echo.js", 1)
	w.next(t)
	const n = 300
	before := countFDs(t)
	for i := 0; i < n; i++ {
		a, b := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
		acked := make(chan bool, 1)
		must(t, w.c.SendHandle(TypeNetNative, map[string]int{"probe": i}, a, func(ok bool) { acked <- ok }))
		var rep struct {
			Handle      struct{ Probe int }
			Type, Flags string
		}
		w.nextUser(t, &rep)
		if !<-acked {
			t.Fatalf("handle %d NACKed", i)
		}
		if rep.Handle.Probe != i || rep.Type != "Pipe" || !nonblocking(rep.Flags) {
			t.Fatalf("handle %d: node reports %+v", i, rep)
		}
		closeFDs([]int{a, b})
	}
	if after := countFDs(t); after != before {
		t.Fatalf("%d fds before %d hand-offs, %d after", before, n, after)
	}
}

// rawFD dups a connection's fd without (*os.File).Fd, so the shared file
// description stays non-blocking.
func rawFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	fd := -1
	var derr error
	must(t, rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }))
	must(t, derr)
	return fd
}

// nonblocking reads the octal flags line of /proc/<pid>/fdinfo/<fd>.
func nonblocking(octal string) bool {
	v, err := strconv.ParseUint(octal, 8, 64)
	return err == nil && v&unix.O_NONBLOCK != 0
}

// syncBuffer is a bytes.Buffer safe for exec's copying goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
