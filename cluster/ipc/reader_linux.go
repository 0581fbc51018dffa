package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// Run reads the channel until EOF, ctx is done, Close, or a protocol error,
// and calls deliver for every message the caller should see, in order, on
// Run's goroutine. The transport layer stays inside: NODE_HANDLE_ACK and
// NACK release herd's send queue; a NODE_HANDLE from the worker is answered
// with NODE_HANDLE_ACK at once (before deliver sees it) and its fd closed
// (see WithKeepHandles), or with NODE_HANDLE_NACK and dropped, as node does,
// when no fd came with it.
//
// deliver runs on Run's goroutine and nothing is read while it runs (an ACK
// that would release herd's queue waits too), so it should hand the message
// on and return; it may call Send, SendHandle and Close.
//
// Run returns io.EOF when the worker closed its end (it exited, or called
// process.disconnect()); a partial last line is dropped. It returns a
// *ProtocolError when the worker broke the protocol, ctx.Err() when ctx
// ended (the channel stays open), and ErrClosed after Close. Every fd that
// arrived and was not handed to deliver is closed before Run returns. Run
// may be called once.
func (c *Channel) Run(ctx context.Context, deliver func(Message)) error {
	if c.cfg.noPoller {
		return errors.New("ipc: Run on a channel opened WithoutPoller: use a Reader")
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("ipc: Run called twice")
	}
	if deliver == nil {
		deliver = func(Message) {}
	}
	stop := context.AfterFunc(ctx, func() {
		// Wakes the blocked read; the channel itself stays usable.
		c.file.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	f := newFramer(c.cfg.maxLine)
	defer f.closeFD()
	buf := make([]byte, readBufSize)
	oob := make([]byte, oobSize)
	emit := func(m Message) error { return c.receive(m, deliver) }
	for {
		n, fds, trunc, err := c.recv(buf, oob)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case c.isClosed():
				return ErrClosed
			case errors.Is(err, unix.ECONNRESET):
				err = io.EOF
			}
			if err == io.EOF {
				c.peerGone()
			}
			return err
		}
		if err := f.feed(buf[:n], fds, trunc, emit); err != nil {
			return err
		}
	}
}

// Reader reads a channel opened WithoutPoller, for a caller that waits for
// it to become readable itself. It applies the same rules as Run.
type Reader struct {
	c       *Channel
	f       *framer
	buf     []byte
	oob     []byte
	deliver func(Message)
	err     error
}

// NewReader returns the channel's Reader; deliver is as for Run and runs on
// ReadReady's goroutine. At most one Reader (or Run) per channel.
func (c *Channel) NewReader(deliver func(Message)) (*Reader, error) {
	if !c.running.CompareAndSwap(false, true) {
		return nil, errors.New("ipc: a channel has one reader")
	}
	if deliver == nil {
		deliver = func(Message) {}
	}
	return &Reader{c: c, f: newFramer(c.cfg.maxLine), buf: make([]byte, readBufSize),
		oob: make([]byte, oobSize), deliver: deliver}, nil
}

// ReadReady reads and delivers what the channel holds now, without waiting,
// up to readyReads reads: a worker that writes without pause cannot keep
// the caller from its other channels (a level-triggered poller reports the
// rest again). It returns nil when it stopped reading, and otherwise what
// Run would return when the channel ends (io.EOF, a *ProtocolError,
// ErrClosed), every time it is called from then on.
func (r *Reader) ReadReady() error {
	if r.err != nil {
		return r.err
	}
	c := r.c
	emit := func(m Message) error { return c.receive(m, r.deliver) }
	for range readyReads {
		n, fds, trunc, err := c.recvNow(r.buf, r.oob)
		if err == unix.EAGAIN {
			return nil
		}
		if err != nil {
			switch {
			case c.isClosed():
				err = ErrClosed
			case errors.Is(err, unix.ECONNRESET):
				err = io.EOF
			}
			if err == io.EOF {
				c.peerGone()
			}
			r.fail(err)
			return err
		}
		if err := r.f.feed(r.buf[:n], fds, trunc, emit); err != nil {
			r.fail(err)
			return err
		}
		if n < len(r.buf) {
			return nil // a short read: the socket is empty (a later event says otherwise)
		}
	}
	return nil
}

// readyReads bounds one ReadReady: 16 reads of up to 64 KiB.
const readyReads = 16

func (r *Reader) fail(err error) {
	r.err = err
	r.f.closeFD()
}

// recv does one recvmsg, waiting in the netpoller while there is nothing to
// read. Received fds are close-on-exec (MSG_CMSG_CLOEXEC).
func (c *Channel) recv(buf, oob []byte) (n int, fds []int, truncated bool, err error) {
	return c.recvmsg(buf, oob, true)
}

// recvNow is recv without the wait: unix.EAGAIN when there is nothing.
func (c *Channel) recvNow(buf, oob []byte) (n int, fds []int, truncated bool, err error) {
	return c.recvmsg(buf, oob, false)
}

func (c *Channel) recvmsg(buf, oob []byte, wait bool) (n int, fds []int, truncated bool, err error) {
	var oobn, flags int
	var serr error
	rerr := c.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, serr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			if serr == unix.EINTR {
				continue
			}
			return !wait || serr != unix.EAGAIN
		}
	})
	if rerr != nil {
		return 0, nil, false, rerr
	}
	if oobn > 0 {
		fds = parseRights(oob[:oobn])
	}
	truncated = flags&unix.MSG_CTRUNC != 0
	if serr == unix.EAGAIN {
		return 0, nil, false, serr
	}
	if serr != nil {
		closeFDs(fds)
		return 0, nil, false, fmt.Errorf("ipc: recvmsg: %w", serr)
	}
	if n == 0 && len(fds) == 0 && !truncated {
		return 0, nil, false, io.EOF
	}
	return n, fds, truncated, nil
}

// parseRights returns every fd in the SCM_RIGHTS messages of oob.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// receive applies the transport rules to one line and delivers the rest.
func (c *Channel) receive(m Message, deliver func(Message)) error {
	if c.cfg.trace != nil {
		c.mu.Lock()
		c.cfg.trace(Event{Op: OpRead, Line: m.Raw, FD: m.FD})
		c.mu.Unlock()
	}
	switch m.Cmd {
	case CmdHandleAck, CmdHandleNack:
		return c.release(m)
	case CmdHandle:
		reply := ackLine
		if m.FD < 0 {
			reply = nackLine
		}
		err := c.enqueue(&outMsg{line: appendNewline(reply), fd: -1}, true)
		if m.FD < 0 {
			// node drops a NODE_HANDLE that came without an fd
			return stalled(err)
		}
		if !c.cfg.keepHandles {
			unix.Close(m.FD)
			m.FD = -1
		}
		if err := stalled(err); err != nil {
			if m.FD >= 0 {
				unix.Close(m.FD)
			}
			return err
		}
	}
	deliver(m)
	return nil
}

// stalled turns a full send queue while answering the worker into a protocol
// error; other send errors (peer gone, closed) show up as EOF or ErrClosed
// on the read side.
func stalled(err error) error {
	if errors.Is(err, ErrBackpressure) {
		return protoErr(KindStalled, nil, err, "the worker does not read the acknowledgements it is owed")
	}
	return nil
}

func (c *Channel) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
