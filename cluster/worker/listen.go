package worker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/herd-sh/herd/cluster/ipc"
)

// errDupKey: herd answered two live servers of this process with one key;
// node's worker asserts on it (child.js).
var errDupKey = errors.New("herd gave a key this process already listens on")

// queried is what the reply callback hands back to listen.
type queried struct {
	r   reply
	rr  *rrListener // already registered, so that no newconn finds it missing
	err error
}

// listen is child.js's _getServer followed by net.js's listen: queryServer,
// wait for the reply, make the listener (shared: listen(2) on herd's
// socket; round-robin: connections arrive as newconn), register it under
// herd's key, send listening.
func (c *client) listen(network, address string) (net.Listener, error) {
	q, ok, err := parseQuery(network, address)
	if err != nil {
		return nil, err
	}
	if !ok {
		return net.Listen(network, address)
	}
	ik := q.indexesKey()

	done := make(chan queried, 1)
	c.mu.Lock()
	if c.stopping || c.gone {
		c.mu.Unlock()
		return nil, q.opErr(ErrDisconnected)
	}
	index := c.allocIndexLocked(ik)
	err = c.callLocked(actQueryServer, q.fields(index, q.port), func(m *ipc.Message, fd int) {
		done <- c.onQueryReply(q, ik, index, m, fd)
	})
	if err != nil {
		c.freeIndexLocked(ik, index)
		c.mu.Unlock()
		return nil, q.opErr(err)
	}
	c.mu.Unlock()

	res := <-done
	r := res.r
	if res.err != nil {
		closeFD(r.fd)
		c.mu.Lock()
		c.freeIndexLocked(ik, index)
		c.mu.Unlock()
		return nil, q.opErr(res.err)
	}

	var l net.Listener
	port := q.port
	if res.rr != nil {
		l = res.rr
		if r.sockname != nil && r.sockname.Port > 0 {
			port = r.sockname.Port
		}
	} else {
		s, err := c.shared(r, ik, index)
		if err != nil {
			return nil, q.opErr(err)
		}
		l = s
		if ta, ok := s.Addr().(*net.TCPAddr); ok && ta.Port > 0 {
			port = ta.Port
		}
	}
	// net.js checkBindError: a fixed port must be the one bound.
	if q.port > 0 && port != q.port {
		l.Close()
		return nil, q.opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}

	c.mu.Lock()
	if c.listeners[r.key] == l { // not closed by a disconnect meanwhile (child.js checks indexes)
		c.sendLocked(actListening, q.fields(index, port))
	}
	c.mu.Unlock()
	return l, nil
}

// onQueryReply runs on Run's goroutine with the reply to a queryServer (m
// nil: the channel ended). A round-robin listener is made and registered here,
// before the next message from herd, which may well be its first newconn.
func (c *client) onQueryReply(q query, ik string, index int, m *ipc.Message, fd int) queried {
	if m == nil {
		return queried{r: reply{fd: -1}, err: ErrDisconnected}
	}
	r, err := parseReply(m, fd)
	switch {
	case err != nil:
		return queried{r: r, err: err}
	case r.errno != 0:
		// A negative errno, as libuv's; node's primary sends -98 for
		// EADDRINUSE. Reported as net.Listen would report the bind error.
		errno := r.errno
		if errno < 0 {
			errno = -errno
		}
		return queried{r: r, err: os.NewSyscallError("bind", syscall.Errno(errno))}
	case fd >= 0:
		return queried{r: r} // shared: listen(2) and the rest on listen's goroutine
	}
	l := newRRListener(c, q, r, ik, index)
	if err := c.register(r.key, l); err != nil {
		if !errors.Is(err, errDupKey) {
			c.release(r.key, "", -1) // herd counts this worker under key: tell it
		}
		return queried{r: r, err: err}
	}
	return queried{r: r, rr: l}
}

// shared makes a listener of the socket herd sent and registers it.
func (c *client) shared(r reply, ik string, index int) (*sharedListener, error) {
	sl, err := listenShared(r.fd)
	if err != nil {
		c.release(r.key, ik, index) // herd counts this worker under key: tell it
		return nil, err
	}
	s := &sharedListener{Listener: sl, c: c, key: r.key, indexesKey: ik, index: index}
	if err := c.register(r.key, s); err != nil {
		sl.Close()
		if errors.Is(err, errDupKey) { // the key is another listener's
			c.mu.Lock()
			c.freeIndexLocked(ik, index)
			c.mu.Unlock()
		} else {
			c.release(r.key, ik, index)
		}
		return nil, err
	}
	return s, nil
}

// register puts l under herd's key, unless the worker is stopping.
func (c *client) register(key string, l net.Listener) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch _, dup := c.listeners[key]; {
	case c.stopping || c.gone:
		return ErrDisconnected
	case dup:
		return fmt.Errorf("%w: %q", errDupKey, key)
	}
	c.listeners[key] = l
	return nil
}

func (q query) opErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return err
	}
	return &net.OpError{Op: "listen", Net: q.network, Addr: q.addr, Err: err}
}
