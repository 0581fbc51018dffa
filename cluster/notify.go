package cluster

// The systemd notify protocol (sd_notify(3)), receiving side.
//
// A worker that speaks no cluster protocol reports its state by sending
// datagrams such as "READY=1\nSTATUS=serving\n" to the AF_UNIX SOCK_DGRAM
// socket named by $NOTIFY_SOCKET. herd owns that socket. The rules below
// follow what systemd's manager does with the same datagrams (src/core/
// manager.c, manager_dispatch_notify_fd, and src/shared/notify-recv.c), so a
// worker that works under systemd works under herd:
//
//   - The sender is the pid the kernel puts in SCM_CREDENTIALS, never a pid
//     named in the payload. SO_PASSCRED on the receiving socket makes the
//     kernel attach it to every datagram; it is the sender's pid as seen from
//     herd's pid namespace (0 when the sender is not visible there), and only a
//     sender with CAP_SYS_ADMIN can claim another pid. A datagram without a
//     valid pid is dropped ("Received notify message without valid
//     credentials. Ignoring.").
//   - A payload may hold at most notifyMaxPayload (4096) bytes: systemd reads
//     into a NOTIFY_BUFFER_MAX (PIPE_BUF) buffer and drops anything larger
//     ("Received notify message exceeded maximum size. Ignoring.").
//   - A NUL byte anywhere but at the very end drops the datagram ("We permit
//     one trailing NUL byte in the message, but don't expect it").
//   - Lines are separated by '\n' or '\r' (systemd splits on NEWLINE, "\n\r");
//     empty lines are skipped. systemd does not reject a line that is not an
//     assignment: it looks up the keys it knows and ignores the rest. herd does
//     the same (a line without '=' or with an empty key is skipped and
//     counted in NotifyMessage.Ignored), so "READY=1\ngarbage" still makes a
//     worker ready. A datagram with no assignment at all, the empty one
//     included, carries nothing and is dropped, as current systemd drops the
//     empty message ("Got empty notification message, ignoring.").
//   - File descriptors sent along (SCM_RIGHTS: FDSTORE=1, BARRIER=1) are
//     closed at once: herd keeps no fd store. Closing is also exactly what a
//     BARRIER=1 sender (sd_notify_barrier) waits for, and since Run hands
//     messages over in order, every message sent before the barrier has been
//     delivered when the sender wakes up.
//
// Where herd differs: when a key repeats, the last value wins (systemd acts on
// any READY=1, STOPPING=1 or RELOADING=1 line and on the first STATUS= and
// WATCHDOG=, src/core/service.c). Like systemd, a STATUS= that is not valid
// UTF-8 is ignored.
//
// Queueing: a unix datagram socket queues at most net.unix.max_dgram_qlen
// datagrams (a per network namespace sysctl, 10 by default; systemd raises it
// to 512 on the host) and SO_RCVBUF bytes. A sender on a full queue blocks (or
// gets EAGAIN if it is non-blocking); nothing is lost while Run keeps reading,
// which is why Run never does more than parse, close fds and hand over.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	initproc "github.com/herd-sh/herd/init"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Notify wire values: the keys of sd_notify(3) that herd acts on, and the
// values that switch them on.
const (
	notifyReady     = "READY"     // READY=1: the worker serves
	notifyReloading = "RELOADING" // RELOADING=1: reloading; READY=1 follows when done
	notifyStopping  = "STOPPING"  // STOPPING=1: the worker is shutting down (draining)
	notifyStatus    = "STATUS"    // STATUS=free text, one line
	notifyWatchdog  = "WATCHDOG"  // WATCHDOG=1 heartbeat; WATCHDOG=trigger: treat me as failed now
	notifyMainPID   = "MAINPID"   // MAINPID=4711: the service's main process, if not the sender

	notifyOn      = "1"       // READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1
	notifyTrigger = "trigger" // WATCHDOG=trigger
)

// Limits.
const (
	// notifyMaxPayload is the largest datagram accepted, systemd's
	// NOTIFY_BUFFER_MAX (PIPE_BUF, 4096 on Linux).
	notifyMaxPayload = 4096
	// notifyMaxFDs is how many fds one datagram may carry before its control
	// data is truncated, systemd's NOTIFY_FD_MAX. Truncated control data
	// drops the datagram; the fds that did arrive are closed, and the kernel
	// closes the ones that did not fit.
	notifyMaxFDs = 768
	// notifyRcvBuf is the receive buffer asked for, so that a burst from many
	// workers queues instead of blocking them (systemd asks for 8 MiB).
	// Best effort: SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by
	// net.core.rmem_max.
	notifyRcvBuf = 1 << 20
	// notifyMaxAncestors bounds the walk up the process tree in Attribute.
	notifyMaxAncestors = 32
	// notifyMaxName is the longest socket name: sun_path holds 108 bytes,
	// a path needs its terminating NUL, an abstract name its leading NUL.
	notifyMaxName = 107
)

// NotifyMessage is one datagram: who sent it and what it said. One datagram
// may set several flags; systemd lets STOPPING=1 win over READY=1, and READY=1
// over RELOADING=1 (READY=1 with RELOADING=1 means a reload has finished).
type NotifyMessage struct {
	// Pid is the sender, from the kernel's SCM_CREDENTIALS, not from the
	// payload. It may be a child of a worker; see Attribute and Worker.
	Pid int
	// Lineage is Pid followed by its ancestors (at most notifyMaxAncestors),
	// read from /proc by Run when the datagram arrived, while a short-lived
	// sender such as systemd-notify is most likely still there. Nil when the
	// sender had already gone; ParseNotify leaves it nil.
	Lineage []int
	// Fields holds every assignment, keys as sent; when a key repeats the
	// last value wins.
	Fields map[string]string
	// Ignored counts the lines that were not KEY=VALUE (no '=', empty key),
	// and a STATUS= that was not UTF-8.
	Ignored int

	Ready           bool // READY=1
	Reloading       bool // RELOADING=1
	Stopping        bool // STOPPING=1
	Watchdog        bool // WATCHDOG=1
	WatchdogTrigger bool // WATCHDOG=trigger
	Status          string
	HasStatus       bool // STATUS= was sent (possibly empty: clears the status)
	MainPID         int  // MAINPID=, 0 when absent or not a positive number
}

// Worker maps the message's sender to a worker pid through Lineage: the
// sender itself if it is in workers, else its nearest ancestor that is. When
// Lineage is empty (the sender had exited before Run looked), only Pid itself
// is checked.
func (m NotifyMessage) Worker(workers map[int]bool) (worker int, ok bool) {
	if len(m.Lineage) == 0 {
		return m.Pid, m.Pid > 0 && workers[m.Pid]
	}
	for _, pid := range m.Lineage {
		if workers[pid] {
			return pid, true
		}
	}
	return 0, false
}

var (
	errNotifyTooLong   = fmt.Errorf("notify: datagram longer than %d bytes", notifyMaxPayload)
	errNotifyNUL       = errors.New("notify: datagram holds a NUL byte")
	errNotifyEmpty     = errors.New("notify: datagram holds no KEY=VALUE assignment")
	errNotifyNoCreds   = errors.New("notify: datagram without sender credentials")
	errNotifyTruncated = errors.New("notify: datagram with truncated control data (too many fds)")
)

// ParseNotify parses one payload: assignments KEY=VALUE separated by '\n'
// (or '\r'). Empty lines are skipped; a line without '=' or with an empty key
// is skipped and counted in Ignored, as systemd ignores what it does not
// understand. The value is everything after the first '=', taken literally.
// One trailing NUL byte is allowed. It fails when the payload is longer than
// notifyMaxPayload, holds any other NUL byte, or holds no assignment at all.
// Pid and Lineage are left zero: the payload does not say who sent it.
func ParseNotify(payload []byte) (NotifyMessage, error) {
	if len(payload) > notifyMaxPayload {
		return NotifyMessage{}, errNotifyTooLong
	}
	if i := bytes.IndexByte(payload, 0); i >= 0 {
		if i != len(payload)-1 {
			return NotifyMessage{}, errNotifyNUL
		}
		payload = payload[:i]
	}
	m := NotifyMessage{Fields: make(map[string]string)}
	for line := range strings.FieldsFuncSeq(string(payload), isNotifyNewline) {
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			m.Ignored++
			continue
		}
		m.Fields[key] = value
	}
	if len(m.Fields) == 0 {
		return NotifyMessage{}, errNotifyEmpty
	}
	m.Ready = m.Fields[notifyReady] == notifyOn
	m.Reloading = m.Fields[notifyReloading] == notifyOn
	m.Stopping = m.Fields[notifyStopping] == notifyOn
	m.Watchdog = m.Fields[notifyWatchdog] == notifyOn
	m.WatchdogTrigger = m.Fields[notifyWatchdog] == notifyTrigger
	if status, ok := m.Fields[notifyStatus]; ok {
		if utf8.ValidString(status) {
			m.Status, m.HasStatus = status, true
		} else {
			m.Ignored++
		}
	}
	if pid, err := strconv.Atoi(m.Fields[notifyMainPID]); err == nil && pid > 0 {
		m.MainPID = pid
	}
	return m, nil
}

func isNotifyNewline(r rune) bool { return r == '\n' || r == '\r' }

// NotifySocket is herd's receiving end of the notify protocol. Its address
// goes into every worker's environment as NOTIFY_SOCKET.
type NotifySocket struct {
	conn    *net.UnixConn
	addr    string
	path    string      // file system path to remove on Close, "" for abstract
	file    os.FileInfo // the socket file as bound, so Close removes only ours
	proc    fs.FS       // /proc, for Lineage
	dropped atomic.Uint64
	done    chan struct{}
	once    sync.Once
	err     error
}

// ListenNotify creates herd's notify socket: AF_UNIX, SOCK_DGRAM,
// SOCK_CLOEXEC (Go's default), with SO_PASSCRED set before bind so that every
// datagram carries its sender's pid, and a receive buffer of about 1 MiB when
// the kernel grants it.
//
// name "" picks an abstract socket "@herd-notify-<pid>-<random>": it needs no
// file system (a read-only root is fine) and lives in the network namespace,
// which the workers share; anyone in that namespace may send to it. A name
// starting with '@' is that abstract name. A name starting with '/' is a path:
// a socket file left there by a process that is gone is replaced, a live
// socket or any other file is an error; the new file is made writable by
// every user (sending needs write permission, and workers may run as another
// user) and is removed by Close.
func ListenNotify(name string) (*NotifySocket, error) {
	n := &NotifySocket{proc: os.DirFS("/proc"), done: make(chan struct{})}
	switch {
	case name == "":
		var r [8]byte
		_, _ = rand.Read(r[:]) // never fails (crypto/rand)
		name = fmt.Sprintf("@herd-notify-%d-%s", os.Getpid(), hex.EncodeToString(r[:]))
	case strings.HasPrefix(name, "@"):
	case strings.HasPrefix(name, "/"):
		n.path = name
	default:
		return nil, fmt.Errorf("notify: socket %q: want an absolute path, an abstract name starting with '@', or empty for a fresh abstract name", name)
	}
	if len(name) > notifyMaxName {
		return nil, fmt.Errorf("notify: socket %q: name is %d bytes, at most %d fit in sun_path", name, len(name), notifyMaxName)
	}
	if n.path != "" {
		if err := removeStaleSocket(n.path); err != nil {
			return nil, err
		}
	}
	lc := net.ListenConfig{Control: controlNotify}
	pc, err := lc.ListenPacket(context.Background(), "unixgram", name)
	if err != nil {
		return nil, fmt.Errorf("notify: listen %s: %w", name, err)
	}
	n.conn = pc.(*net.UnixConn)
	n.addr = name
	if n.path != "" {
		if err := os.Chmod(n.path, 0o666); err != nil {
			n.conn.Close()
			os.Remove(n.path)
			return nil, fmt.Errorf("notify: %w", err)
		}
		if n.file, err = os.Lstat(n.path); err != nil {
			n.conn.Close()
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	return n, nil
}

// controlNotify runs on the socket before bind: SO_PASSCRED is required,
// the large receive buffer is best effort.
func controlNotify(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1); serr != nil {
			serr = fmt.Errorf("SO_PASSCRED: %w", serr)
			return
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, notifyRcvBuf) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, notifyRcvBuf)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// removeStaleSocket clears path for bind: nothing there is fine; a socket
// nobody receives on (connect refused) is removed; a live socket or any other
// kind of file is left alone and reported.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("notify: %s exists and is not a socket; not replacing it", path)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err == nil {
		c.Close()
		return fmt.Errorf("notify: %s is a socket in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("notify: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("notify: removing stale socket: %w", err)
	}
	return nil
}

// Addr is the value for NOTIFY_SOCKET: the path, or "@name" for an abstract
// socket, the form systemd uses and sd_notify clients turn into the leading
// NUL byte of an abstract address.
func (n *NotifySocket) Addr() string { return n.addr }

// Dropped counts the datagrams Run threw away: too long, truncated control
// data, no credentials, a NUL byte, no assignment.
func (n *NotifySocket) Dropped() uint64 { return n.dropped.Load() }

// Run reads datagrams until Close and sends each parsed message to out,
// blocking until the caller takes it (or Close). Bad datagrams are dropped and
// counted (Dropped), never fatal. Every fd a datagram carries is closed before
// anything else is looked at; none reaches the caller or a worker. Run returns
// nil after Close, and an error only if reading the socket fails otherwise.
// Call it once, from one goroutine.
func (n *NotifySocket) Run(out chan<- NotifyMessage) error {
	buf := make([]byte, notifyMaxPayload+1) // one more: a full buffer means too long
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*notifyMaxFDs))
	for {
		nb, noob, flags, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			select {
			case <-n.done:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("notify: read: %w", err)
		}
		m, err := n.decode(buf[:nb], oob[:noob], flags)
		if err != nil {
			n.dropped.Add(1)
			continue
		}
		select {
		case out <- m:
		case <-n.done:
			return nil
		}
	}
}

// decode turns one received datagram into a message. It closes every fd in
// oob first, whatever else is wrong with the datagram.
func (n *NotifySocket) decode(payload, oob []byte, flags int) (NotifyMessage, error) {
	pid, cerr := notifyControl(oob)
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		return NotifyMessage{}, errNotifyTruncated
	case flags&unix.MSG_TRUNC != 0 || len(payload) > notifyMaxPayload:
		return NotifyMessage{}, errNotifyTooLong
	case cerr != nil:
		return NotifyMessage{}, cerr
	case pid <= 0:
		return NotifyMessage{}, errNotifyNoCreds
	}
	m, err := ParseNotify(payload)
	if err != nil {
		return NotifyMessage{}, err
	}
	m.Pid = pid
	m.Lineage = lineage(n.proc, pid)
	return m, nil
}

// notifyControl closes every fd the control data carries (SCM_RIGHTS, and
// SCM_PIDFD should a kernel ever send one unasked) and returns the sender's
// pid from SCM_CREDENTIALS, 0 if there is none.
func notifyControl(oob []byte) (pid int, err error) {
	if len(oob) == 0 {
		return 0, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, fmt.Errorf("notify: control data: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_RIGHTS, unix.SCM_PIDFD:
			fds, ferr := unix.ParseUnixRights(m)
			for _, fd := range fds {
				unix.Close(fd)
			}
			if ferr != nil && err == nil {
				err = fmt.Errorf("notify: control data: %w", ferr)
			}
		case unix.SCM_CREDENTIALS:
			if cred, cerr := unix.ParseUnixCredentials(m); cerr == nil {
				pid = int(cred.Pid)
			}
		}
	}
	return pid, err
}

// Close stops Run and closes the socket; a path socket's file is removed if it
// is still the one ListenNotify bound. Calling it again does nothing.
func (n *NotifySocket) Close() error {
	n.once.Do(func() {
		close(n.done)
		n.err = n.conn.Close()
		if n.path != "" {
			if fi, err := os.Lstat(n.path); err == nil && os.SameFile(fi, n.file) {
				if err := os.Remove(n.path); err != nil && n.err == nil {
					n.err = err
				}
			}
		}
		if n.err != nil {
			n.err = fmt.Errorf("notify: close: %w", n.err)
		}
	})
	return n.err
}

// Attribute maps a sender pid to a worker pid: the sender itself if it is in
// workers, else its nearest ancestor that is, following the parent pid in
// fsys's <pid>/stat (fsys is /proc) for at most notifyMaxAncestors steps.
// This is how a worker's children (a shell wrapper that forked the server,
// gunicorn's arbiter, a systemd-notify call in a start script) report for
// their worker. ok is false when no ancestor is a worker, or when the sender
// or an ancestor is gone from /proc before it is read: attribute promptly, or
// use the Lineage Run recorded on arrival (NotifyMessage.Worker).
func Attribute(fsys fs.FS, pid int, workers map[int]bool) (worker int, ok bool) {
	for step := 0; pid > 0; step++ {
		if workers[pid] {
			return pid, true
		}
		if step == notifyMaxAncestors {
			break
		}
		ppid, err := readPPid(fsys, pid)
		if err != nil {
			break
		}
		pid = ppid
	}
	return 0, false
}

// lineage is pid and its ancestors, up to notifyMaxAncestors of them, as fsys
// shows them now; nil when pid's own stat cannot be read.
func lineage(fsys fs.FS, pid int) []int {
	ppid, err := readPPid(fsys, pid)
	if err != nil {
		return nil
	}
	out := []int{pid}
	for len(out) <= notifyMaxAncestors && ppid > 0 {
		out = append(out, ppid)
		if ppid, err = readPPid(fsys, ppid); err != nil {
			break
		}
	}
	return out
}

// readPPid reads the parent pid from <pid>/stat.
func readPPid(fsys fs.FS, pid int) (int, error) {
	data, err := fs.ReadFile(fsys, strconv.Itoa(pid)+"/stat")
	if err != nil {
		return 0, err
	}
	p, err := initproc.ParseStat(data)
	if err != nil {
		return 0, err
	}
	if p.PPid < 0 {
		return 0, fmt.Errorf("notify: malformed stat ppid %d", p.PPid)
	}
	return p.PPid, nil
}
