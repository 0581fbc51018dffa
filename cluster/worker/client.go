package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/herd-sh/herd/cluster/ipc"
)

// client is the worker's side of the cluster protocol over one channel, as
// node's lib/internal/cluster/child.js plays it. One per process in
// production (see worker.go); tests make their own on a socketpair.
type client struct {
	ch   *ipc.Channel
	id   int
	exit func(code int) // os.Exit; tests record the call instead

	msgs     inbox
	disc     chan struct{} // closed once the worker stops serving (disconnect, or the channel ended)
	discOnce sync.Once
	ended    chan struct{} // closed when Run has returned and everything is cleaned up

	mu        sync.Mutex
	seq       int64                   // node's one cluster seq counter per process
	waiters   map[int64]replyFunc     // a request's seq → what to do with its reply
	listeners map[string]net.Listener // herd's key → listener
	indexes   map[string]*indexSet    // query.indexesKey → indexes in use
	stopping  bool                    // disconnect seen or Disconnect called: exitedAfterDisconnect
	closing   bool                    // Disconnect called: the channel is ours to close
	gone      bool                    // the channel ended: nothing more is sent
}

// replyFunc gets the reply to a request and the fd that came with it (-1
// if none), or (nil, -1) when the channel ended first. It runs on Run's
// goroutine without c.mu, in the order herd's messages arrive, so it must
// not block; it owns fd.
type replyFunc func(m *ipc.Message, fd int)

// indexSet is child.js's per-address counter: the next index only returns
// to 0 once every server under the key has closed.
type indexSet struct {
	next int
	used map[int]bool
}

// newClient takes fd (the channel; the client owns it from now on unless
// ipc.Open refuses it), sends online and starts reading. exit is called
// when the channel ends without a disconnect, as node calls process.exit(0).
func newClient(fd, id int, exit func(int)) (*client, error) {
	ch, err := ipc.Open(fd, ipc.WithKeepHandles())
	if err != nil {
		return nil, err
	}
	c := &client{
		ch:        ch,
		id:        id,
		exit:      exit,
		disc:      make(chan struct{}),
		ended:     make(chan struct{}),
		waiters:   make(map[int64]replyFunc),
		listeners: make(map[string]net.Listener),
		indexes:   make(map[string]*indexSet),
	}
	// Before Run starts, so that online is the first line herd reads, with
	// seq 0 as node's.
	c.mu.Lock()
	err = c.sendLocked(actOnline, nil)
	c.mu.Unlock()
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("send online: %w", err)
	}
	go func() { c.end(ch.Run(context.Background(), c.deliver)) }()
	return c, nil
}

// sendLocked sends a cluster message with the next seq. c.mu is held:
// seqs go out in order. ipc's Send never blocks.
func (c *client) sendLocked(act string, fields map[string]any) error {
	if c.gone {
		return ErrDisconnected
	}
	seq := c.seq
	c.seq++
	return c.ch.Send(json.RawMessage(ipc.ClusterMessage(act, seq, fields)))
}

// callLocked sends a request whose reply goes to fn.
func (c *client) callLocked(act string, fields map[string]any, fn replyFunc) error {
	if c.gone {
		return ErrDisconnected
	}
	seq := c.seq
	c.waiters[seq] = fn
	if err := c.sendLocked(act, fields); err != nil {
		delete(c.waiters, seq)
		return err
	}
	return nil
}

// deliver runs on Run's goroutine for every message herd sends. It never
// blocks: replies go to their request's replyFunc, connections to a
// listener's bounded queue, user messages to the inbox.
func (c *client) deliver(m ipc.Message) {
	switch {
	case m.Cmd == ipc.CmdHandle:
		// ipc has already sent NODE_HANDLE_ACK; the fd is ours.
		if m.Inner != nil && m.Inner.Cmd == ipc.CmdCluster {
			c.internal(m.Inner, m.FD)
			return
		}
		closeFD(m.FD) // a user message with a handle: the handle is not for us
		if m.Inner != nil {
			c.msgs.put(m.Inner.Raw)
		}
	case m.Cmd == ipc.CmdCluster:
		c.internal(&m, -1)
	case m.Internal():
		// Another NODE_ command: node routes it to 'internalMessage', which
		// the cluster code ignores.
	default:
		c.msgs.put(m.Raw)
	}
}

// internal is child.js's internal(worker, onmessage): a reply goes to whoever
// waits for it; otherwise act decides.
func (c *client) internal(m *ipc.Message, fd int) {
	if m.Ack != nil {
		c.mu.Lock()
		fn, ok := c.waiters[*m.Ack]
		delete(c.waiters, *m.Ack)
		c.mu.Unlock()
		if ok {
			fn(m, fd)
			return
		}
	}
	switch m.Act {
	case actNewconn:
		c.newconn(m, fd)
		return
	case actDisconnect:
		c.stop()
	}
	closeFD(fd)
}

// newconn is child.js's onconnection: reply {ack, accepted}, and give the
// connection to the round-robin listener with that key. accepted is false
// when there is none (closed) or its queue is full; the fd is closed then
// and herd gives the connection to another worker.
func (c *client) newconn(m *ipc.Message, fd int) {
	var key string
	if raw, ok := m.Field("key"); ok {
		json.Unmarshal(raw, &key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, _ := c.listeners[key].(*rrListener)
	accepted := fd >= 0 && l != nil && l.offer(fd)
	if !accepted {
		closeFD(fd)
	}
	if m.Seq == nil || c.gone {
		return
	}
	seq := c.seq
	c.seq++
	c.ch.Send(json.RawMessage(ipc.Reply(*m.Seq, seq, map[string]any{"accepted": accepted})))
}

// stop closes every listener (each sends close) because herd asked
// (disconnect) or the program did (Disconnect). Disconnected fires first,
// so that a server learns why its Accept fails.
func (c *client) stop() {
	c.mu.Lock()
	c.stopping = true
	ls := c.listenersLocked()
	c.mu.Unlock()
	c.closeDisc()
	for _, l := range ls {
		l.Close()
	}
}

func (c *client) closeDisc() { c.discOnce.Do(func() { close(c.disc) }) }

// disconnect is Disconnect: node's worker.disconnect() when herd did not ask
// (close the servers, exitedAfterDisconnect and wait for herd's ack so that
// herd counts the exit as planned), then process.disconnect(): herd reads
// EOF.
func (c *client) disconnect() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.ended
		return nil
	}
	c.closing = true
	byHerd := c.stopping
	c.mu.Unlock()

	c.stop()
	if !byHerd {
		acked := make(chan struct{})
		c.mu.Lock()
		err := c.callLocked(actExitedAfterDisconnect, nil, func(_ *ipc.Message, fd int) {
			closeFD(fd)
			close(acked)
		})
		c.mu.Unlock()
		if err == nil {
			<-acked
		}
	}
	// Close is immediate: a line still queued in ipc (only when herd stopped
	// reading) is dropped with the channel.
	err := c.ch.Close()
	<-c.ended
	if err != nil && !errors.Is(err, ipc.ErrClosed) {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// end runs once Run has returned: every waiter, listener and the inbox is
// released. The channel ending without a disconnect ends the process, as in
// node: herd closed it (or died), and nothing would route connections here
// any more.
func (c *client) end(err error) {
	c.mu.Lock()
	c.gone = true
	planned := c.stopping
	waiters := c.waiters
	c.waiters = make(map[int64]replyFunc)
	ls := c.listenersLocked()
	c.mu.Unlock()
	for _, fn := range waiters {
		fn(nil, -1)
	}
	c.closeDisc()
	for _, l := range ls {
		l.Close()
	}
	c.msgs.close()
	close(c.ended)
	if planned {
		return
	}
	if errors.Is(err, io.EOF) {
		c.exit(0)
		return
	}
	fmt.Fprintf(os.Stderr, "worker: IPC channel to herd: %v\n", err)
	c.exit(1)
}

func (c *client) listenersLocked() []net.Listener {
	ls := make([]net.Listener, 0, len(c.listeners))
	for _, l := range c.listeners {
		ls = append(ls, l)
	}
	return ls
}

// allocIndexLocked and freeIndexLocked are child.js's indexes map.
func (c *client) allocIndexLocked(k string) int {
	s := c.indexes[k]
	if s == nil {
		s = &indexSet{used: make(map[int]bool)}
		c.indexes[k] = s
	}
	i := s.next
	s.next++
	s.used[i] = true
	return i
}

func (c *client) freeIndexLocked(k string, i int) {
	s := c.indexes[k]
	if s == nil {
		return
	}
	delete(s.used, i)
	if len(s.used) == 0 {
		delete(c.indexes, k)
	}
}

// release is a listener's Close: herd drops this worker from key (close),
// and the index is free again.
func (c *client) release(key, indexesKey string, index int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.listeners, key)
	c.freeIndexLocked(indexesKey, index)
	c.sendLocked(actClose, map[string]any{"key": key})
}
