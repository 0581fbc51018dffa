package ipc

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// oobSize has room for a few SCM_RIGHTS fds: enough to see (and close) a
// misbehaving peer's extras instead of having the kernel truncate them.
var oobSize = unix.CmsgSpace(8 * 4)

// Channel is herd's end of one worker's IPC socket: a framed JSON reader
// (Run) and a writer that carries fds (Send, SendHandle). Its methods are
// safe for concurrent use. See the package documentation for the invariants.
type Channel struct {
	file *os.File        // herd's end, non-blocking, registered with the netpoller (unless WithoutPoller)
	rc   syscall.RawConn // file's; its Read and Write never touch O_NONBLOCK
	fd   int             // file's descriptor, for FD
	cfg  config

	running atomic.Bool // Run has been called

	mu       sync.Mutex
	closed   bool
	err      error     // sticky: the channel can no longer write (peer gone, write error)
	cur      *outMsg   // the line being written; may be partly out
	urgent   []*outMsg // ACK/NACK owed to the worker: never behind a pending handle
	queue    []*outMsg // everything else, in order
	qbytes   int       // bytes not yet written, over cur, urgent and queue
	pending  *outMsg   // herd's handle awaiting NODE_HANDLE_ACK/NACK
	flushing bool      // a goroutine waits for the socket to become writable
}

// Pair makes the socketpair for one worker: AF_UNIX SOCK_STREAM, both ends
// close-on-exec, herd's end non-blocking. child is the raw fd to give the
// worker: pass it in syscall.ProcAttr.Files (which dup2s it into place and so
// clears close-on-exec in the child only), set NODE_CHANNEL_FD to its number
// there, and close child in herd right after the worker started, or herd
// never sees EOF when the worker dies. Never wrap child in an os.File and
// call Fd on it.
func Pair(opts ...Option) (herd *Channel, child int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("ipc: socketpair: %w", err)
	}
	c, err := Open(fds[0], opts...)
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, -1, err
	}
	return c, fds[1], nil
}

// Open makes a Channel of fd, a connected AF_UNIX SOCK_STREAM socket (for
// instance the NODE_CHANNEL_FD a worker inherited). It sets O_NONBLOCK and
// FD_CLOEXEC on fd, and the Channel owns fd from then on; on error fd is
// left open and stays the caller's.
func Open(fd int, opts ...Option) (*Channel, error) {
	cfg := config{maxLine: DefaultMaxLine, maxQueueBytes: DefaultMaxQueueBytes, maxQueueLen: DefaultMaxQueueLen}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxLine <= 0 || cfg.maxQueueBytes <= 0 || cfg.maxQueueLen <= 0 {
		return nil, fmt.Errorf("ipc: bounds must be positive: max line %d, max queue %d bytes and %d messages", cfg.maxLine, cfg.maxQueueBytes, cfg.maxQueueLen)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("ipc: fd %d: %w", fd, err)
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return nil, fmt.Errorf("ipc: fd %d: %w", fd, err)
	}
	if typ != unix.SOCK_STREAM || dom != unix.AF_UNIX {
		return nil, fmt.Errorf("ipc: fd %d is not an AF_UNIX SOCK_STREAM socket: node's channel needs one to pass fds", fd)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("ipc: fd %d: set FD_CLOEXEC: %w", fd, err)
	}
	if cfg.noPoller {
		// os.NewFile registers a non-blocking fd with the netpoller, so
		// O_NONBLOCK is set only once the File exists (on the descriptor,
		// never through Fd(), which would clear it).
		if err := unix.SetNonblock(fd, false); err != nil {
			return nil, fmt.Errorf("ipc: fd %d: clear O_NONBLOCK: %w", fd, err)
		}
	} else if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("ipc: fd %d: set O_NONBLOCK: %w", fd, err)
	}
	file := os.NewFile(uintptr(fd), "ipc")
	if cfg.noPoller {
		if err := unix.SetNonblock(fd, true); err != nil {
			_ = unix.SetNonblock(fd, false)
			return nil, fmt.Errorf("ipc: fd %d: set O_NONBLOCK: %w", fd, err)
		}
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("ipc: fd %d: %w", fd, err)
	}
	return &Channel{file: file, rc: rc, fd: fd, cfg: cfg}, nil
}

// FD is the channel's descriptor, for a caller of WithoutPoller to wait on
// (epoll). It is valid until Close; never read or write it directly.
func (c *Channel) FD() int { return c.fd }

// Close closes herd's end of the channel. For a node worker that is the
// dead-man switch: it reads EOF and calls process.exit(0) at once, without
// draining requests (use the cluster-level disconnect for a graceful stop).
// Handles still queued or awaiting ACK get done(false). Run returns
// ErrClosed. A second Close returns ErrClosed.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	fails := c.failLocked()
	c.mu.Unlock()
	runDone(fails)
	// Outside mu: Close waits for a flusher inside rc.Write to leave, and
	// that flusher takes mu.
	if err := c.file.Close(); err != nil {
		return fmt.Errorf("ipc: close: %w", err)
	}
	return nil
}

// Pending reports whether a handle herd sent still awaits the worker's
// NODE_HANDLE_ACK or NACK. While it does, everything else herd sends waits
// (a round-robin dispatcher gives connections to workers that are not
// pending).
func (c *Channel) Pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending != nil
}
