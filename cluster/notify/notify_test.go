package notify

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

// notifyPy sends argv[1] as one datagram to $NOTIFY_SOCKET the way
// sd_notify does, then stays alive until its stdin closes, so that the test
// can look at it in /proc.
const notifyPy = `
import os, socket, sys
a = os.environ["NOTIFY_SOCKET"]
if a.startswith("@"):
    a = "\0" + a[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(a)
s.send(sys.argv[1].encode())
sys.stdin.read()
`

// listenNotify opens a notify socket and runs it; the socket is closed and
// Run's return checked at cleanup.
func listenNotify(t *testing.T, name string) (*Socket, <-chan Message) {
	t.Helper()
	n, err := Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Message, 16)
	done := make(chan error, 1)
	go func() { done <- n.Run(out) }()
	t.Cleanup(func() {
		n.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return n, out
}

// sendNotify sends one datagram from this process, with oob as control data.
func sendNotify(t *testing.T, addr string, payload string, oob []byte) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if oob == nil {
		if _, err := c.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		return
	}
	// WriteMsgUnix refuses a connected datagram socket; sendmsg does not.
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), []byte(payload), oob, nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

func recvNotify(t *testing.T, out <-chan Message) Message {
	t.Helper()
	select {
	case m := <-out:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notify message within 10s")
	}
	return Message{}
}

func TestNotifyAbstract(t *testing.T) {
	n, out := listenNotify(t, "")
	prefix := fmt.Sprintf("@herd-notify-%d-", os.Getpid())
	if !strings.HasPrefix(n.Addr(), prefix) || len(n.Addr()) <= len(prefix) {
		t.Fatalf("Addr = %q, want %q followed by a random part", n.Addr(), prefix)
	}
	if other, _ := listenNotify(t, ""); other.Addr() == n.Addr() {
		t.Fatalf("two sockets share the name %q", n.Addr())
	}

	sendNotify(t, n.Addr(), "READY=1\nSTATUS=serving\n", nil)
	m := recvNotify(t, out)
	if m.Pid != os.Getpid() {
		t.Errorf("Pid = %d, want this process %d", m.Pid, os.Getpid())
	}
	if !m.Ready || !m.HasStatus || m.Status != "serving" || m.Stopping || m.Watchdog {
		t.Errorf("message = %+v, want ready with status serving", m)
	}
	want := map[string]string{"READY": "1", "STATUS": "serving"}
	if !maps.Equal(m.Fields, want) {
		t.Errorf("Fields = %v, want %v", m.Fields, want)
	}
	if len(m.Lineage) < 2 || m.Lineage[0] != os.Getpid() || m.Lineage[1] != os.Getppid() {
		t.Errorf("Lineage = %v, want [%d %d ...]", m.Lineage, os.Getpid(), os.Getppid())
	}
	if n.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", n.Dropped())
	}
}

func TestNotifyNames(t *testing.T) {
	name := fmt.Sprintf("@herd-notify-test-%d", os.Getpid())
	n, out := listenNotify(t, name)
	if n.Addr() != name {
		t.Fatalf("Addr = %q, want %q", n.Addr(), name)
	}
	sendNotify(t, name, "STOPPING=1", nil)
	if m := recvNotify(t, out); !m.Stopping {
		t.Errorf("message = %+v, want stopping", m)
	}
	for _, bad := range []string{"relative.sock", "/" + strings.Repeat("x", 200)} {
		if _, err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) succeeded, want an error", bad)
		}
	}
}

func TestNotifyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	n, out := listenNotify(t, path)
	if n.Addr() != path {
		t.Fatalf("Addr = %q, want %q", n.Addr(), path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Errorf("mode = %v, want a socket writable by all (srw-rw-rw-)", fi.Mode())
	}
	sendNotify(t, path, "WATCHDOG=1\n", nil)
	if m := recvNotify(t, out); !m.Watchdog || m.Pid != os.Getpid() {
		t.Errorf("message = %+v, want a watchdog ping from %d", m, os.Getpid())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNotifyPathStale(t *testing.T) {
	dir := t.TempDir()

	// A socket left behind by a process that is gone: Go does not unlink a
	// unixgram socket on Close, which is just what a crashed herd leaves.
	stale := filepath.Join(dir, "stale.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	n, out := listenNotify(t, stale)
	sendNotify(t, stale, "READY=1", nil)
	if m := recvNotify(t, out); !m.Ready {
		t.Errorf("message = %+v, want ready", m)
	}

	// A live socket belongs to someone else.
	if _, err := Listen(stale); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen over a live socket: %v, want an in-use error", err)
	}
	n.Close()

	// Any other file is not ours to delete.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep" {
		t.Errorf("regular file after Listen: %q, %v; want it untouched", data, err)
	}

	// Close removes only the file it bound: a socket that replaced it stays.
	path := filepath.Join(dir, "replaced.sock")
	n2, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	other, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	n2.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a socket it did not create: %v", err)
	}
}

// startNotifier starts command with NOTIFY_SOCKET set and stdin a pipe the
// cleanup closes, which ends notifyPy.
func startNotifier(t *testing.T, addr string, args ...string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Fatalf("%s is needed: %v", args[0], err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+addr, "PY="+notifyPy)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() // another test's reaper may have collected it
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return cmd
}

func TestNotifyChildProcess(t *testing.T) {
	n, out := listenNotify(t, "")

	// The worker itself sends.
	child := startNotifier(t, n.Addr(), "python3", "-c", notifyPy, "READY=1\nSTATUS=child\n")
	m := recvNotify(t, out)
	if m.Pid != child.Process.Pid || !m.Ready || m.Status != "child" {
		t.Fatalf("message = %+v, want READY=1 STATUS=child from the child %d", m, child.Process.Pid)
	}
	workers := map[int]bool{child.Process.Pid: true}
	if w, ok := Attribute(os.DirFS("/proc"), m.Pid, workers); !ok || w != child.Process.Pid {
		t.Errorf("Attribute(child) = %d, %v; want %d", w, ok, child.Process.Pid)
	}

	// A grandchild of the worker sends: sh (the worker) runs sh runs python.
	// The trailing "; true" makes each shell fork instead of exec.
	worker := startNotifier(t, n.Addr(), "sh", "-c", `sh -c 'python3 -c "$PY" "WATCHDOG=trigger"; true'; true`)
	m = recvNotify(t, out)
	if !m.WatchdogTrigger || m.Watchdog {
		t.Errorf("message = %+v, want WATCHDOG=trigger", m)
	}
	workers = map[int]bool{child.Process.Pid: true, worker.Process.Pid: true}
	if m.Pid == worker.Process.Pid {
		t.Fatalf("sender %d is the worker itself; the shells did not fork", m.Pid)
	}
	if w, ok := Attribute(os.DirFS("/proc"), m.Pid, workers); !ok || w != worker.Process.Pid {
		t.Errorf("Attribute(grandchild %d) = %d, %v; want the worker %d", m.Pid, w, ok, worker.Process.Pid)
	}
	if w, ok := m.Worker(workers); !ok || w != worker.Process.Pid {
		t.Errorf("Worker() with Lineage %v = %d, %v; want %d", m.Lineage, w, ok, worker.Process.Pid)
	}
	if len(m.Lineage) < 3 || m.Lineage[0] != m.Pid || m.Lineage[2] != worker.Process.Pid {
		t.Errorf("Lineage = %v, want [sender, inner sh, worker %d, ...]", m.Lineage, worker.Process.Pid)
	}
	if w, ok := Attribute(os.DirFS("/proc"), m.Pid, map[int]bool{}); ok {
		t.Errorf("Attribute with no workers = %d, true; want false", w)
	}
}

// systemd's own client (Debian: the systemd package, which the test
// command installs; missing under CI=true is a failure).
func TestNotifySystemdNotify(t *testing.T) {
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-notify not installed (CI=true): %v", err)
		}
		t.Skip("systemd-notify not installed")
	}
	n, out := listenNotify(t, "")
	worker := startNotifier(t, n.Addr(), "sh", "-c", `systemd-notify --ready --status="up and running"; cat`)
	m := recvNotify(t, out)
	if !m.Ready || m.Status != "up and running" {
		t.Errorf("message = %+v, want READY=1 STATUS=up and running", m)
	}
	// With CAP_SYS_ADMIN systemd-notify sends its parent's pid in
	// SCM_CREDENTIALS (it exits at once, its parent stays); without, its own.
	workers := map[int]bool{worker.Process.Pid: true}
	if w, ok := m.Worker(workers); m.Pid == worker.Process.Pid && (!ok || w != worker.Process.Pid) {
		t.Errorf("Worker() = %d, %v; want %d", w, ok, worker.Process.Pid)
	}
	t.Logf("systemd-notify reported pid %d (worker sh %d), lineage %v", m.Pid, worker.Process.Pid, m.Lineage)
}

func waitDropped(t *testing.T, n *Socket, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n.Dropped() == want {
			return
		}
	}
	t.Fatalf("Dropped = %d, want %d", n.Dropped(), want)
}

func TestNotifyDropped(t *testing.T) {
	n, out := listenNotify(t, "")
	bad := []string{
		"",
		"garbage",
		"=1\nno equals sign",
		"READY=1\x00STATUS=x",
		"STATUS=" + strings.Repeat("z", maxPayload-len("STATUS=")+1), // one byte too long
		"STATUS=" + strings.Repeat("y", 64*1024),                     // far too long
		"READY=1" + strings.Repeat("\n", maxPayload),                 // too long by padding
		"READY=1\n\x00\n",        // NUL not at the end
		strings.Repeat("\n", 10), // nothing but newlines
		"\r\n",                   // still nothing
	}
	for i, payload := range bad {
		sendNotify(t, n.Addr(), payload, nil)
		waitDropped(t, n, uint64(i+1))
	}
	// The receiver keeps going, and the largest datagram passes.
	biggest := "STATUS=" + strings.Repeat("s", maxPayload-len("STATUS="))
	sendNotify(t, n.Addr(), biggest, nil)
	if m := recvNotify(t, out); len(m.Status) != maxPayload-len("STATUS=") {
		t.Errorf("status of %d bytes, want %d", len(m.Status), maxPayload-len("STATUS="))
	}
	sendNotify(t, n.Addr(), "READY=1\x00", nil) // one trailing NUL is allowed
	if m := recvNotify(t, out); !m.Ready {
		t.Errorf("message = %+v, want ready", m)
	}
	if n.Dropped() != uint64(len(bad)) {
		t.Errorf("Dropped = %d, want %d", n.Dropped(), len(bad))
	}
	select {
	case m := <-out:
		t.Errorf("unexpected message %+v", m)
	default:
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestNotifyClosesFDs(t *testing.T) {
	n, out := listenNotify(t, "")

	// FDSTORE=1 with three fds: herd keeps no store, all are closed.
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	before := countFDs(t)
	sendNotify(t, n.Addr(), "FDSTORE=1\nFDNAME=cache\n", unix.UnixRights(fd, fd, fd))
	m := recvNotify(t, out)
	if m.Fields["FDSTORE"] != "1" || m.Fields["FDNAME"] != "cache" {
		t.Errorf("Fields = %v, want FDSTORE=1 FDNAME=cache", m.Fields)
	}
	if after := countFDs(t); after != before {
		t.Errorf("open fds: %d before, %d after receiving 3; received fds leaked", before, after)
	}

	// BARRIER=1 (sd_notify_barrier): the sender waits for EOF on a pipe whose
	// write end it sent; it arrives only when herd closes its copy.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sendNotify(t, n.Addr(), "BARRIER=1\n", unix.UnixRights(int(w.Fd())))
	w.Close()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("barrier pipe read: %v, want EOF (the received write end was closed)", err)
	}
	if m := recvNotify(t, out); m.Fields["BARRIER"] != "1" {
		t.Errorf("Fields = %v, want BARRIER=1", m.Fields)
	}

	// A datagram that is dropped closes its fds too.
	before = countFDs(t)
	sendNotify(t, n.Addr(), "no assignment", unix.UnixRights(fd))
	waitDropped(t, n, 1)
	if after := countFDs(t); after != before {
		t.Errorf("open fds: %d before, %d after a dropped datagram with an fd", before, after)
	}
}

// Datagrams the kernel would only hand over in odd cases: no credentials,
// pid 0 (a sender outside herd's pid namespace), truncated control data.
func TestNotifyDecode(t *testing.T) {
	n := &Socket{proc: fstest.MapFS{}}
	creds := func(pid int32) []byte { return unix.UnixCredentials(&unix.Ucred{Pid: pid}) }
	dupNull := func() int {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	for _, tc := range []struct {
		name    string
		oob     func() ([]byte, int) // control data and an fd that must be closed, or -1
		flags   int
		wantErr error
	}{
		{"no control data", func() ([]byte, int) { return nil, -1 }, 0, errNoCreds},
		{"pid 0", func() ([]byte, int) { return creds(0), -1 }, 0, errNoCreds},
		{"fd without creds", func() ([]byte, int) { fd := dupNull(); return unix.UnixRights(fd), fd }, 0, errNoCreds},
		{"truncated control", func() ([]byte, int) {
			fd := dupNull()
			return append(creds(42), unix.UnixRights(fd)...), fd
		}, unix.MSG_CTRUNC, errTruncated},
		{"truncated payload", func() ([]byte, int) { return creds(42), -1 }, unix.MSG_TRUNC, errTooLong},
		{"good with fd", func() ([]byte, int) {
			fd := dupNull()
			return append(creds(42), unix.UnixRights(fd)...), fd
		}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oob, fd := tc.oob()
			m, err := n.decode([]byte("READY=1"), oob, tc.flags)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("decode: %v, want %v", err, tc.wantErr)
			}
			if err == nil && (m.Pid != 42 || !m.Ready || m.Lineage != nil) {
				t.Errorf("decode = %+v, want ready from 42 with no lineage (no /proc entry)", m)
			}
			if fd >= 0 {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
					t.Errorf("fd %d still open after decode (fcntl: %v)", fd, err)
				}
			}
		})
	}
}

// A burst from many senders is queued, not lost: senders block while the
// queue (net.unix.max_dgram_qlen) is full and Run drains it.
func TestNotifyBurst(t *testing.T) {
	n, out := listenNotify(t, "")
	const senders, each = 8, 100
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.Addr(), Net: "unixgram"})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := range each {
				if _, err := fmt.Fprintf(c, "WATCHDOG=1\nSTATUS=%d-%d\n", s, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := make(map[string]bool)
	for range senders * each {
		m := recvNotify(t, out)
		if !m.Watchdog || seen[m.Status] {
			t.Fatalf("message %+v: not a fresh watchdog ping", m)
		}
		seen[m.Status] = true
	}
	wg.Wait()
	if n.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", n.Dropped())
	}
}

func TestNotifyCloseStopsRun(t *testing.T) {
	for _, drain := range []bool{true, false} {
		t.Run(fmt.Sprintf("drained=%v", drain), func(t *testing.T) {
			n, err := Listen("")
			if err != nil {
				t.Fatal(err)
			}
			out := make(chan Message) // unbuffered: undrained, Run blocks on it
			done := make(chan error, 1)
			go func() { done <- n.Run(out) }()
			sendNotify(t, n.Addr(), "READY=1", nil)
			if drain {
				recvNotify(t, out)
			} else {
				time.Sleep(50 * time.Millisecond) // let Run block on out
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run after Close: %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after Close")
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    Message
		err     error
	}{
		{payload: "READY=1", want: Message{Ready: true, Fields: map[string]string{"READY": "1"}}},
		{payload: "READY=1\nSTATUS=serving\n", want: Message{Ready: true, Status: "serving", HasStatus: true,
			Fields: map[string]string{"READY": "1", "STATUS": "serving"}}},
		{payload: "READY=0", want: Message{Fields: map[string]string{"READY": "0"}}},
		{payload: "STOPPING=1\n", want: Message{Stopping: true, Fields: map[string]string{"STOPPING": "1"}}},
		{payload: "RELOADING=1\nMONOTONIC_USEC=123\n", want: Message{Reloading: true,
			Fields: map[string]string{"RELOADING": "1", "MONOTONIC_USEC": "123"}}},
		{payload: "WATCHDOG=1", want: Message{Watchdog: true, Fields: map[string]string{"WATCHDOG": "1"}}},
		{payload: "WATCHDOG=trigger", want: Message{WatchdogTrigger: true, Fields: map[string]string{"WATCHDOG": "trigger"}}},
		{payload: "MAINPID=4711", want: Message{MainPID: 4711, Fields: map[string]string{"MAINPID": "4711"}}},
		{payload: "MAINPID=-3", want: Message{Fields: map[string]string{"MAINPID": "-3"}}},
		{payload: "STATUS=", want: Message{HasStatus: true, Fields: map[string]string{"STATUS": ""}}},
		// The value is everything after the first '=', literally.
		{payload: "STATUS=a=b \\n c", want: Message{Status: "a=b \\n c", HasStatus: true,
			Fields: map[string]string{"STATUS": "a=b \\n c"}}},
		// Last value wins; keys are case-sensitive and kept as sent.
		{payload: "STATUS=one\nSTATUS=two\nready=1", want: Message{Status: "two", HasStatus: true,
			Fields: map[string]string{"STATUS": "two", "ready": "1"}}},
		// '\r' separates too (systemd splits on "\n\r"); empty lines are skipped.
		{payload: "\n\nREADY=1\r\nSTATUS=x\r\r\n", want: Message{Ready: true, Status: "x", HasStatus: true,
			Fields: map[string]string{"READY": "1", "STATUS": "x"}}},
		// Lines that are not assignments are skipped, as systemd does.
		{payload: "READY=1\ngarbage\n=nokey\n", want: Message{Ready: true, Ignored: 2,
			Fields: map[string]string{"READY": "1"}}},
		// One trailing NUL is allowed.
		{payload: "READY=1\n\x00", want: Message{Ready: true, Fields: map[string]string{"READY": "1"}}},
		// STATUS that is not UTF-8 is ignored (systemd too); the field stays.
		{payload: "READY=1\nSTATUS=\xff\xfe", want: Message{Ready: true, Ignored: 1,
			Fields: map[string]string{"READY": "1", "STATUS": "\xff\xfe"}}},
		{payload: "", err: errEmpty},
		{payload: "\n\r\n", err: errEmpty},
		{payload: "garbage", err: errEmpty},
		{payload: "=1", err: errEmpty},
		{payload: "\x00", err: errEmpty},
		{payload: "READY=1\x00\x00", err: errNUL},
		{payload: "READY=\x001", err: errNUL},
		{payload: "STATUS=" + strings.Repeat("x", maxPayload), err: errTooLong},
	} {
		got, err := parse([]byte(tc.payload))
		if !errors.Is(err, tc.err) {
			t.Errorf("parse(%q) error = %v, want %v", tc.payload, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		gotFields, wantFields := got.Fields, tc.want.Fields
		got.Fields, tc.want.Fields = nil, nil
		if !maps.Equal(gotFields, wantFields) || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			got.Fields, tc.want.Fields = gotFields, wantFields
			t.Errorf("parse(%q) =\n %+v\nwant\n %+v", tc.payload, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"READY=1\nSTATUS=serving\n", "WATCHDOG=trigger", "=\n=", "\x00", "A=\xff\r\nB", "MAINPID=99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := parse(payload)
		if err != nil {
			return
		}
		if len(m.Fields) == 0 || len(payload) > maxPayload {
			t.Fatalf("accepted %q: %+v", payload, m)
		}
		for k, v := range m.Fields {
			if k == "" || strings.ContainsAny(k, "=\n\r\x00") || strings.ContainsAny(v, "\n\r\x00") {
				t.Fatalf("bad field %q=%q from %q", k, v, payload)
			}
		}
		if m.Ready != (m.Fields[keyReady] == valueOn) || m.WatchdogTrigger != (m.Fields[keyWatchdog] == valueTrigger) ||
			(m.HasStatus && m.Status != m.Fields[keyStatus]) || m.MainPID < 0 || m.Pid != 0 || m.Lineage != nil {
			t.Fatalf("inconsistent message from %q: %+v", payload, m)
		}
	})
}

// procFS builds /proc with one stat file per pid, parent given by ppid.
func procFS(ppid map[int]int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for pid, parent := range ppid {
		fsys[strconv.Itoa(pid)+"/stat"] = &fstest.MapFile{
			Data: fmt.Appendf(nil, "%d (a (b) c) S %d %d 0 -1 4194560 ...\n", pid, parent, pid),
		}
	}
	return fsys
}

func TestAttribute(t *testing.T) {
	// 1 ─ 10 (worker) ─ 11 ─ 12 ─ 13;  1 ─ 20 (worker);  1 ─ 30;  a chain
	// 100 ─ 101 ─ … ─ 140 whose top is a worker; 50 ⇄ 51 loop; 60 gone parent.
	tree := map[int]int{1: 0, 10: 1, 11: 10, 12: 11, 13: 12, 20: 1, 30: 1, 50: 51, 51: 50, 61: 60}
	for pid := 101; pid <= 140; pid++ {
		tree[pid] = pid - 1
	}
	tree[100] = 1
	fsys := procFS(tree)
	fsys["70/stat"] = &fstest.MapFile{Data: []byte("70 (broken")}
	workers := map[int]bool{10: true, 20: true, 100: true}
	for _, tc := range []struct {
		pid, want int
		ok        bool
	}{
		{10, 10, true},   // the worker itself
		{20, 20, true},   //
		{11, 10, true},   // child
		{13, 10, true},   // great-grandchild
		{30, 0, false},   // not under a worker
		{1, 0, false},    // init
		{132, 100, true}, // 32 steps up: found
		{133, 0, false},  // 33 steps: too far
		{50, 0, false},   // a loop ends at the step limit
		{61, 0, false},   // parent gone from /proc
		{99, 0, false},   // sender gone from /proc
		{70, 0, false},   // malformed stat
		{0, 0, false},    //
		{-5, 0, false},   //
	} {
		w, ok := Attribute(fsys, tc.pid, workers)
		if w != tc.want || ok != tc.ok {
			t.Errorf("Attribute(%d) = %d, %v; want %d, %v", tc.pid, w, ok, tc.want, tc.ok)
		}
	}

	if got, want := lineage(fsys, 13), []int{13, 12, 11, 10, 1}; !slices.Equal(got, want) {
		t.Errorf("lineage(13) = %v, want %v", got, want)
	}
	if got := lineage(fsys, 99); got != nil {
		t.Errorf("lineage(gone) = %v, want nil", got)
	}
	if got := lineage(fsys, 140); len(got) != maxAncestors+1 || got[0] != 140 || got[maxAncestors] != 108 {
		t.Errorf("lineage(140) = %v, want 140 and %d ancestors", got, maxAncestors)
	}
	if got := lineage(fsys, 61); !slices.Equal(got, []int{61, 60}) {
		t.Errorf("lineage(61) = %v, want [61 60]", got)
	}

	m := Message{Pid: 13, Lineage: []int{13, 12, 11, 10, 1}}
	if w, ok := m.Worker(workers); !ok || w != 10 {
		t.Errorf("Worker() = %d, %v; want 10", w, ok)
	}
	m = Message{Pid: 20}
	if w, ok := m.Worker(workers); !ok || w != 20 {
		t.Errorf("Worker() without lineage = %d, %v; want 20", w, ok)
	}
	m = Message{Pid: 13}
	if _, ok := m.Worker(workers); ok {
		t.Error("Worker() without lineage for a non-worker: ok, want false")
	}
}

func FuzzAttributeStat(f *testing.F) {
	for _, s := range []string{"1 (init) S 0 1 1 0", "7 (a) b) (c) R 3 7", "9 ()", ")", "5 (x) S -1", "5 (x) S 99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys0 := fstest.MapFS{"5/stat": &fstest.MapFile{Data: data}}
		if ppid, err := readPPid(fsys0, 5); err == nil && ppid < 0 {
			t.Fatalf("readPPid(%q) = %d", data, ppid)
		}
		fsys := fstest.MapFS{"5/stat": &fstest.MapFile{Data: data}}
		Attribute(fsys, 5, map[int]bool{1: true})
	})
}
