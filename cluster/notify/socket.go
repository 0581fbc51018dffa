package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/listen"
)

// Limits of the socket.
const (
	// maxFDs is how many fds one datagram may carry before its control
	// data is truncated, systemd's NOTIFY_FD_MAX. Truncated control data
	// drops the datagram; the fds that did arrive are closed, and the kernel
	// closes the ones that did not fit.
	maxFDs = 768
	// rcvBuf is the receive buffer asked for, so that a burst from many
	// workers queues instead of blocking them (systemd asks for 8 MiB).
	// Best effort: SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by
	// net.core.rmem_max.
	rcvBuf = 1 << 20
	// maxName is the longest socket name: sun_path holds 108 bytes,
	// a path needs its terminating NUL, an abstract name its leading NUL.
	maxName = 107
)

// Socket is herd's receiving end of the notify protocol. Its address
// goes into every worker's environment as NOTIFY_SOCKET.
type Socket struct {
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

// Listen creates herd's notify socket: AF_UNIX, SOCK_DGRAM,
// SOCK_CLOEXEC (Go's default), with SO_PASSCRED set before bind so that every
// datagram carries its sender's pid, and a receive buffer of about 1 MiB when
// the kernel grants it.
//
// name "" picks an abstract socket "@herd-notify-<pid>-<random>": it needs no
// file system (a read-only root is fine) and lives in the network namespace,
// which the workers share; anyone in that namespace may send to it. A name
// starting with '@' is that abstract name. A name starting with '/' is a path:
// a socket file left there by a process that is gone is replaced
// (listen.RemoveStale), a live socket or any other file is an error; the new file is made writable by
// every user (sending needs write permission, and workers may run as another
// user) and is removed by Close.
func Listen(name string) (*Socket, error) {
	n := &Socket{proc: os.DirFS("/proc"), done: make(chan struct{})}
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
	if len(name) > maxName {
		return nil, fmt.Errorf("notify: socket %q: name is %d bytes, at most %d fit in sun_path", name, len(name), maxName)
	}
	if n.path != "" {
		if err := listen.RemoveStale(n.path); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	lc := net.ListenConfig{Control: controlSocket}
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

// controlSocket runs on the socket before bind: SO_PASSCRED is required,
// the large receive buffer is best effort.
func controlSocket(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1); serr != nil {
			serr = fmt.Errorf("SO_PASSCRED: %w", serr)
			return
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Addr is the value for NOTIFY_SOCKET: the path, or "@name" for an abstract
// socket, the form systemd uses and sd_notify clients turn into the leading
// NUL byte of an abstract address.
func (n *Socket) Addr() string { return n.addr }

// Dropped counts the datagrams Run threw away: too long, truncated control
// data, no credentials, a NUL byte, no assignment.
func (n *Socket) Dropped() uint64 { return n.dropped.Load() }

// Run reads datagrams until Close and sends each parsed message to out,
// blocking until the caller takes it (or Close). Bad datagrams are dropped and
// counted (Dropped), never fatal. Every fd a datagram carries is closed before
// anything else is looked at; none reaches the caller or a worker. Run returns
// nil after Close, and an error only if reading the socket fails otherwise.
// Call it once, from one goroutine.
func (n *Socket) Run(out chan<- Message) error {
	buf := make([]byte, maxPayload+1) // one more: a full buffer means too long
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*maxFDs))
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
func (n *Socket) decode(payload, oob []byte, flags int) (Message, error) {
	pid, cerr := parseControl(oob)
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		return Message{}, errTruncated
	case flags&unix.MSG_TRUNC != 0 || len(payload) > maxPayload:
		return Message{}, errTooLong
	case cerr != nil:
		return Message{}, cerr
	case pid <= 0:
		return Message{}, errNoCreds
	}
	m, err := parse(payload)
	if err != nil {
		return Message{}, err
	}
	m.Pid = pid
	m.Lineage = lineage(n.proc, pid)
	return m, nil
}

// parseControl closes every fd the control data carries (SCM_RIGHTS, and
// SCM_PIDFD should a kernel ever send one unasked) and returns the sender's
// pid from SCM_CREDENTIALS, 0 if there is none.
func parseControl(oob []byte) (pid int, err error) {
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
// is still the one Listen bound. Calling it again does nothing.
func (n *Socket) Close() error {
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
