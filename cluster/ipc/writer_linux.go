package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// outMsg is one line waiting to be written.
type outMsg struct {
	line   []byte // with its '\n'
	off    int    // bytes already written
	fd     int    // fd to send with the first byte, or -1
	handle bool   // a NODE_HANDLE of herd's own: the queue stops behind it until ACK/NACK
	done   func(acked bool)
}

// Send writes msg to the worker as one line: a []byte or json.RawMessage is
// taken as an encoded JSON value (ClusterMessage, Reply) and must be valid
// JSON without a newline; anything else goes through encoding/json (as
// JSON.stringify would: a Go string becomes a top-level JSON string).
//
// Send never waits for the worker. The line is written at once when nothing
// is ahead of it; otherwise it is queued behind herd's pending handle and any
// partly written line, in order, and written as the worker acknowledges and
// reads. When the queue is at its bound Send returns ErrBackpressure.
//
// Send returns an error only for a message it did not take: ErrClosed after
// Close, the channel's write error (wrapping io.EOF once Run saw EOF) after
// the worker went away. A message taken and then not deliverable because the
// worker went away is dropped; that shows in Run (io.EOF), in done(false)
// for handles, and in the error of the next Send.
func (c *Channel) Send(msg any) error {
	line, err := encodeLine(msg)
	if err != nil {
		return err
	}
	return c.enqueue(&outMsg{line: line, fd: -1}, false)
}

// SendHandle sends {"cmd":"NODE_HANDLE","type":typ,"msg":msg} with fd as
// SCM_RIGHTS in the same sendmsg as the first byte of that line. At most one
// handle is in flight per channel: from this call until the worker's
// NODE_HANDLE_ACK or NACK, this line, if it has to, and everything sent after
// it wait in the queue, in order. done (may be nil) is called once, from
// whichever goroutine sees it, with true on ACK, false on NACK or when the
// channel dies first; it must not block. When SendHandle returns an error,
// done is never called.
//
// fd must be a non-blocking socket node can adopt: SOCK_STREAM of AF_INET,
// AF_INET6 or AF_UNIX for the net.* types, SOCK_DGRAM of AF_INET or AF_INET6
// for the dgram.* types. Anything else is refused with ErrBadHandle: a
// regular file or tty aborts node, a blocking socket stalls its event loop,
// an AF_UNIX datagram socket wedges fd passing on the channel for good.
//
// The Channel neither dups nor closes fd: the caller owns it and must keep it
// open at least until done has been called (for a newconn, until the
// cluster-level {accepted} reply, which comes after the ACK).
func (c *Channel) SendHandle(typ string, msg any, fd int, done func(acked bool)) error {
	if err := CheckHandle(typ, fd); err != nil {
		return err
	}
	return c.SendAccepted(typ, msg, fd, done)
}

// SendAccepted is SendHandle without CheckHandle's three syscalls, for an
// fd the caller knows node can take: a connection herd itself accepted with
// accept4(SOCK_NONBLOCK) on a TCP or unix stream socket. It is the
// round-robin hand-off's hot path.
func (c *Channel) SendAccepted(typ string, msg any, fd int, done func(acked bool)) error {
	inner, err := encodeValue(msg)
	if err != nil {
		return err
	}
	line := make([]byte, 0, len(inner)+len(typ)+40)
	line = append(line, `{"cmd":"NODE_HANDLE","type":`...)
	line = appendString(line, typ)
	line = append(line, `,"msg":`...)
	line = append(line, inner...)
	line = append(line, "}\n"...)
	return c.enqueue(&outMsg{line: line, fd: fd, handle: true, done: done}, false)
}

// CheckHandle reports whether node can take fd as a handle of type typ
// (see SendHandle). It makes three syscalls (fcntl and two getsockopt).
func CheckHandle(typ string, fd int) error {
	wantType := unix.SOCK_STREAM
	switch typ {
	case TypeNetNative, TypeNetServer, TypeNetSocket:
	case TypeDgramNative, TypeDgramSocket:
		wantType = unix.SOCK_DGRAM
	default:
		return fmt.Errorf("%w: type %q: node knows only net.Native, net.Server, net.Socket, dgram.Native and dgram.Socket", ErrBadHandle, typ)
	}
	if fd < 0 {
		return fmt.Errorf("%w: fd %d", ErrBadHandle, fd)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("%w: fd %d: fcntl: %w", ErrBadHandle, fd, err)
	}
	sotype, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		if errors.Is(err, unix.ENOTSOCK) {
			return fmt.Errorf("%w: fd %d is not a socket (node aborts on a file, pipe or tty)", ErrBadHandle, fd)
		}
		return fmt.Errorf("%w: fd %d: getsockopt SO_TYPE: %w", ErrBadHandle, fd, err)
	}
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("%w: fd %d: getsockopt SO_DOMAIN: %w", ErrBadHandle, fd, err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		return fmt.Errorf("%w: fd %d is blocking: it would stall the worker's event loop (was it taken with (*os.File).Fd()?)", ErrBadHandle, fd)
	}
	ok := sotype == wantType && (domain == unix.AF_INET || domain == unix.AF_INET6 ||
		(domain == unix.AF_UNIX && sotype == unix.SOCK_STREAM))
	if !ok {
		return fmt.Errorf("%w: fd %d is a socket of domain %d, type %d: not one libuv adopts as %s", ErrBadHandle, fd, domain, sotype, typ)
	}
	return nil
}

// encodeLine returns msg as one JSON line ending in '\n', in a new slice.
func encodeLine(msg any) ([]byte, error) {
	if _, ok := msg.([]byte); !ok {
		if _, ok := msg.(json.RawMessage); !ok {
			return marshal(msg, true)
		}
	}
	raw, err := encodeValue(msg)
	if err != nil {
		return nil, err
	}
	return appendNewline(raw), nil
}

// encodeValue returns msg as one JSON value without a newline. A []byte or
// json.RawMessage is checked and returned as is (not copied).
func encodeValue(msg any) ([]byte, error) {
	var raw []byte
	switch v := msg.(type) {
	case []byte:
		raw = v
	case json.RawMessage:
		raw = v
	default:
		return marshal(msg, false)
	}
	if bytes.IndexByte(raw, '\n') >= 0 {
		return nil, errors.New("ipc: a line must not contain a newline: it would end the message early")
	}
	if !json.Valid(raw) {
		return nil, errors.New("ipc: not one valid JSON value: node would die of it")
	}
	return raw, nil
}

// marshal encodes msg as JSON.stringify would (no HTML escaping), with or
// without the '\n' json.Encoder ends it with; it never puts one inside.
func marshal(msg any, newline bool) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		return nil, fmt.Errorf("ipc: encode %T: %w", msg, err)
	}
	out := b.Bytes()
	if !newline {
		out = out[:len(out)-1]
	}
	return out, nil
}

func appendNewline(b []byte) []byte {
	line := make([]byte, len(b)+1)
	copy(line, b)
	line[len(b)] = '\n'
	return line
}

// enqueue adds m (to the urgent list for the ACK/NACK herd owes the worker)
// and writes what it can at once.
func (c *Channel) enqueue(m *outMsg, urgent bool) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return err
	case c.qbytes > 0 && c.qbytes+len(m.line) > c.cfg.maxQueueBytes,
		len(c.queue)+len(c.urgent)+1 > c.cfg.maxQueueLen:
		c.mu.Unlock()
		return ErrBackpressure
	}
	if urgent {
		c.urgent = append(c.urgent, m)
	} else {
		c.queue = append(c.queue, m)
	}
	c.qbytes += len(m.line)
	fails := c.kickLocked()
	c.mu.Unlock()
	runDone(fails)
	return nil
}

// kickLocked writes what can be written now, unless a flusher is already
// waiting for the socket to drain (it will write in order). If the socket
// is full it starts one.
func (c *Channel) kickLocked() []func() {
	if c.flushing || c.closed || c.err != nil {
		return nil
	}
	var full bool
	var fails []func()
	// rc.Write with a callback that always reports done never waits: one
	// attempt, on the fd the poller holds, with O_NONBLOCK untouched.
	err := c.rc.Write(func(fd uintptr) bool {
		full, fails = c.writeLocked(int(fd))
		return true
	})
	if err != nil && c.err == nil {
		c.err = err
		fails = append(fails, c.failLocked()...)
	}
	if full {
		c.flushing = true
		go c.flush()
	}
	return fails
}

// flush waits in the netpoller until the socket is writable and writes on,
// until nothing writable is left (empty, or stopped behind a pending handle).
func (c *Channel) flush() {
	var fails []func()
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			c.mu.Lock()
			if c.closed || c.err != nil {
				c.flushing = false
				c.mu.Unlock()
				return true
			}
			full, f := c.writeLocked(int(fd))
			fails = append(fails, f...)
			if !full {
				c.flushing = false
				c.mu.Unlock()
				return true
			}
			c.mu.Unlock()
			if !c.cfg.noPoller {
				return false // wait for EPOLLOUT in the netpoller
			}
			// Not in the netpoller: wait here, in slices, so that a Close
			// (which waits for this callback to return) is not held up.
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd, 20)
		}
	})
	if err != nil {
		c.mu.Lock()
		c.flushing = false
		if !c.closed && c.err == nil {
			c.err = err
			fails = append(fails, c.failLocked()...)
		}
		c.mu.Unlock()
	}
	runDone(fails)
}

// writeLocked writes lines in order until the socket is full (full = true),
// or nothing is writable: urgent lines go first, but never into the middle
// of a partly written line, and the queue stops behind herd's pending
// handle. On a write error the channel is dead: c.err is set and every
// handle's done(false) is returned for the caller to run after unlocking.
func (c *Channel) writeLocked(fd int) (full bool, fails []func()) {
	for {
		if c.cur == nil {
			switch {
			case len(c.urgent) > 0:
				c.cur = c.urgent[0]
				c.urgent[0] = nil
				c.urgent = c.urgent[1:]
			case c.pending == nil && len(c.queue) > 0:
				c.cur = c.queue[0]
				c.queue[0] = nil
				c.queue = c.queue[1:]
				if c.cur.handle {
					c.pending = c.cur
				}
			default:
				if len(c.queue) == 0 {
					c.queue = nil // let a long queue's array go
				}
				return false, nil
			}
		}
		m := c.cur
		var oob []byte
		if m.off == 0 && m.fd >= 0 {
			oob = unix.UnixRights(m.fd)
		}
		n, err := unix.SendmsgN(fd, m.line[m.off:], oob, nil, unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true, nil
		case err != nil:
			c.err = fmt.Errorf("ipc: sendmsg: %w", err)
			return false, c.failLocked()
		}
		if m.off == 0 && c.cfg.trace != nil {
			c.cfg.trace(Event{Op: OpWrite, Line: m.line[:len(m.line)-1], FD: m.fd})
		}
		m.off += n
		c.qbytes -= n
		if m.off == len(m.line) {
			c.cur = nil
		}
	}
}

// release handles the worker's NODE_HANDLE_ACK or NACK for herd's pending
// handle: the queue moves on, then done runs.
func (c *Channel) release(m Message) error {
	c.mu.Lock()
	p := c.pending
	if p == nil || c.cur == p {
		c.mu.Unlock()
		// An ACK for a line the worker cannot have read whole yet is as bogus
		// as one for no line at all.
		return protoErr(KindUnexpectedAck, m.Raw, nil, "herd has no handle awaiting it")
	}
	c.pending = nil
	fails := c.kickLocked()
	c.mu.Unlock()
	if p.done != nil {
		p.done(m.Cmd == CmdHandleAck)
	}
	runDone(fails)
	return nil
}

// peerGone is called when Run saw EOF: nothing more will be read or
// acknowledged, so queued and pending handles fail now.
func (c *Channel) peerGone() {
	c.mu.Lock()
	var fails []func()
	if !c.closed && c.err == nil {
		c.err = errPeerGone
		fails = c.failLocked()
	}
	c.mu.Unlock()
	runDone(fails)
}

var errPeerGone = fmt.Errorf("ipc: the worker closed its end of the channel: %w", io.EOF)

// failLocked drops everything unwritten and returns done(false) for every
// handle that will never be acknowledged, in the order they were sent.
func (c *Channel) failLocked() []func() {
	var fails []func()
	add := func(m *outMsg) {
		if m != nil && m.handle && m.done != nil {
			done := m.done
			m.done = nil
			fails = append(fails, func() { done(false) })
		}
	}
	add(c.pending)
	if c.cur != c.pending {
		add(c.cur)
	}
	for _, m := range c.queue {
		add(m)
	}
	c.pending, c.cur, c.queue, c.urgent, c.qbytes = nil, nil, nil, nil, 0
	return fails
}

func runDone(fails []func()) {
	for _, f := range fails {
		f()
	}
}
