package handoff

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// retryAtLocked has srv dispatched again at t. With h.mu held.
func (h *Handoff) retryAtLocked(srv *Server, t time.Time) {
	if !srv.waking {
		srv.waking = true
		h.waiting = append(h.waiting, srv)
	}
	if h.due.IsZero() || t.Before(h.due) {
		h.due = t
		h.poll.interrupt() // the poller may be asleep with a later timeout
	}
}

// retryTimeout is how long the poller may sleep before a retry is due:
// -1 for none, else milliseconds, rounded up.
func (h *Handoff) retryTimeout(now time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.due.IsZero() {
		return -1
	}
	d := h.due.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// retryDue dispatches the servers whose retry has come.
func (h *Handoff) retryDue(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.due.IsZero() || now.Before(h.due) {
		return
	}
	waiting := h.waiting
	h.waiting, h.due = nil, time.Time{}
	for _, srv := range waiting {
		srv.waking = false
		if !srv.closed {
			h.dispatchLocked(srv) // may ask for another retry
		}
	}
}

// conn is the newconn a worker has not answered yet.
type conn struct {
	srv   *Server
	fd    int
	seq   int64
	acked atomic.Bool // the transport ACK arrived: the worker has the fd (set by the channel's reader)
	sent  time.Time   // when herd sent it
}

// lagBehind, lagShare and lagWait bound how uneven the round-robin spread
// may grow when workers answer at different speeds: a connection waits (at
// most lagWait after that worker's last hand-off) for a busy worker that is
// behind the free one it would otherwise go to by lagBehind connections and
// by 1/lagShare of its count. The share leaves a faster worker its pace
// (a free worker held back is an idle CPU: holding the spread to a few
// connections cost 10 % of the requests/s under Connection: close load)
// while keeping every worker within a few % of the others.
const (
	lagBehind = 8
	lagShare  = 25
	lagWait   = time.Millisecond
)

// holdFor is how long a worker that answered accepted:false is passed over.
const holdFor = 20 * time.Millisecond

// acceptReady hands on what srv's socket holds: the poller saw it readable,
// which it reports only while some worker is free (see dispatchLocked).
func (h *Handoff) acceptReady(srv *Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dispatchLocked(srv)
}

// accept1 takes one connection from srv's socket: its fd, or -1 when none
// waits (or the socket is closed).
func (h *Handoff) accept1(srv *Server) int {
	for srv.acceptFD >= 0 {
		// accept4 with no address: unix.Accept4 would add a getsockopt
		// per connection to decode one.
		nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(srv.acceptFD), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			h.stats.accepted(1)
			return int(nfd)
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
		default:
			h.log.Debug("accept failed", "key", srv.key, "err", errno)
		}
		break
	}
	return -1
}

// dispatchLocked gives connections to free workers, round-robin: first
// those herd holds (taken back or refused), then new ones, accepted one at
// a time as a worker is free to take each. A worker is free when it has
// answered its last newconn and its channel has no handle awaiting ACK, so
// a stalled worker receives nothing. Called with h.mu held.
//
// While no worker is free, new connections wait in the kernel's accept
// queue, not in herd: the poller stops watching the socket, and the answer
// that frees a worker (which wakes herd anyway) takes the next one. Under
// load that is one wake-up of herd per connection instead of two.
func (h *Handoff) dispatchLocked(srv *Server) {
	now := time.Now()
	var held time.Duration
	drained := false // the socket had nothing more, and a worker was free
	for {
		w, pick, wait := h.pickLocked(srv, now)
		if wait > 0 && (held == 0 || wait < held) {
			held = wait
		}
		if w == nil {
			break
		}
		var fd int
		if len(srv.queue) > 0 {
			fd = srv.queue[0]
			srv.queue = srv.queue[1:]
			h.stats.queued(-1)
		} else if fd = h.accept1(srv); fd < 0 {
			drained = true
			break
		}
		srv.next = (srv.next + pick + 1) % len(srv.order)
		if !h.handTo(w, srv, fd, now) {
			srv.queue = append([]int{fd}, srv.queue...)
			h.stats.queued(1)
			w.hold = now.Add(holdFor)
			continue
		}
		w.count++
	}
	if len(srv.queue) == 0 {
		srv.queue = nil // let a burst's array go
	}
	h.watchAccept(srv, drained)
	if held > 0 {
		h.retryAtLocked(srv, now.Add(held))
	}
}

// pickLocked chooses the worker for srv's next connection: of the free
// workers, the one that has been handed the fewest connections, in turn
// order on a tie (a worker that was busy when its turn came gets the next
// connection once it is free, so the spread stays even although workers
// answer at different speeds). It returns nil and how long to wait when the
// connection should wait: for a worker held back after refusing one, or
// for a busy worker lagBehind connections behind whose newconn went out less
// than lagWait ago (it will be free in a moment; one whose newconn is older
// is stalled, and gets nothing until it answers).
func (h *Handoff) pickLocked(srv *Server, now time.Time) (w *Worker, pick int, wait time.Duration) {
	n := len(srv.order)
	for i := 0; i < n; i++ {
		cand := srv.order[(srv.next+i)%n]
		if cand.rr != nil || cand.disconnected || cand.ch.Pending() {
			continue
		}
		if d := cand.hold.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if w == nil || cand.count < w.count {
			w, pick = cand, i
		}
	}
	if w == nil {
		return nil, 0, wait
	}
	if lag := lagging(srv, w, now); lag > 0 {
		return nil, 0, lag
	}
	return w, pick, 0
}

// watchAccept has the poller watch srv's socket only while a worker is free
// and the socket had nothing more for it (on), so that a connection that
// arrives while every worker is busy does not wake herd for nothing.
func (h *Handoff) watchAccept(srv *Server, on bool) {
	if srv.acceptFD < 0 || on == srv.acceptOn {
		return
	}
	if err := h.poll.watch(srv.acceptFD, srv.acceptTok, on); err != nil {
		h.log.Warn("cannot change what herd's poller watches", "key", srv.key, "err", err)
		return
	}
	srv.acceptOn = on
}

// handTo sends fd to w as a newconn of srv.
func (h *Handoff) handTo(w *Worker, srv *Server, fd int, now time.Time) bool {
	seq := h.NextSeq()
	c := &conn{srv: srv, fd: fd, seq: seq, sent: now}
	line := strconv.AppendInt(append(make([]byte, 0, len(srv.newconn)+24), srv.newconn...), seq, 10)
	line = append(line, '}')
	err := w.ch.SendAccepted(ipc.TypeNetNative, json.RawMessage(line), fd, func(acked bool) {
		if acked {
			// Noted where it happens: the {accepted} reply right behind
			// it is what hands the worker its next connection.
			c.acked.Store(true)
			return
		}
		// A NACK, or the channel died first: the worker never had the fd.
		// This may run inside SendAccepted, under the lock, so the
		// connection is taken back from another goroutine.
		go func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if w.rr == c {
				h.takeBackLocked(w)
			}
		}()
	})
	if err != nil {
		return false
	}
	w.rr = c
	return true
}

// lagging returns how long to wait for a busy worker of srv that is behind
// w, or 0 to hand the connection to w now.
func lagging(srv *Server, w *Worker, now time.Time) time.Duration {
	var wait time.Duration
	for _, o := range srv.order {
		if o == w || o.rr == nil || o.disconnected || w.count-o.count < max(lagBehind, o.count/lagShare) {
			continue
		}
		if left := lagWait - now.Sub(o.rr.sent); left > 0 && (wait == 0 || left < wait) {
			wait = left
		}
	}
	return wait
}

// isNewconnReply reports whether m is a worker's {ack, accepted} answer to
// a newconn: a cluster message with ack and no act.
func isNewconnReply(m ipc.Message) bool {
	return m.Cmd == ipc.CmdCluster && m.Ack != nil && m.Act == ""
}

// newconnReply applies a worker's {ack, accepted} to its newconn; it runs on
// the worker's channel reader.
func (h *Handoff) newconnReply(w *Worker, m ipc.Message) {
	accepted := bytes.Equal(bytes.TrimSpace(m.Fields["accepted"]), []byte("true"))
	h.mu.Lock()
	defer h.mu.Unlock()
	c := w.rr
	if c == nil || c.seq != *m.Ack {
		return // a reply to a newconn taken back already, or to another message
	}
	w.rr = nil
	if accepted {
		unix.Close(c.fd)
		if n := w.taken.Add(1); w.limit > 0 && n >= w.limit && !w.disconnected {
			w.disconnected = true
			w.full()
		}
		h.stats.handedOff(w.slot)
	} else {
		// No server with that key, or maxConnections reached: another
		// worker, and this one passed over for a moment (Node's own
		// primary retries at once, in a hot loop).
		h.stats.refused()
		h.requeueLocked(c)
		w.hold = time.Now().Add(holdFor)
		h.log.Debug("newconn refused; handing it to another worker", "id", w.id, "key", c.srv.key)
	}
	h.dispatchLocked(c.srv)
}

// takeBackLocked returns w's unanswered newconn to its queue when the
// worker never received it (a NACK, or a channel that failed before the
// handle went out), and closes it when the worker had it.
func (h *Handoff) takeBackLocked(w *Worker) {
	c := w.rr
	w.rr = nil
	if c.acked.Load() || c.srv.closed {
		unix.Close(c.fd)
		return
	}
	h.requeueLocked(c)
	h.dispatchLocked(c.srv)
}

// takeBackDeadLocked settles the unanswered newconn of a worker that has
// exited. Whether the worker had received it cannot be told from its
// channel: its acknowledgement may still be unread, or never read (a
// channel ended for a protocol error). The connection itself tells: a TCP
// connection nobody has read from or written to goes to another worker
// (the client is served), any other is closed (the client sees the end
// at once, rather than a worker waiting for a request already read).
func (h *Handoff) takeBackDeadLocked(w *Worker) {
	c := w.rr
	w.rr = nil
	if c.srv.closed || !untouched(c.fd) {
		unix.Close(c.fd)
		return
	}
	h.requeueLocked(c)
	h.dispatchLocked(c.srv)
}

// untouched reports whether the TCP connection fd has had nothing read from
// it and nothing written to it: every byte it received is still queued
// (tcpi_bytes_received equals SIOCINQ), and none was sent (tcpi_bytes_acked
// and SIOCOUTQ are 0). Any error, or a socket that is not TCP, is "touched".
func untouched(fd int) bool {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return false
	}
	inq, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return false
	}
	outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return false
	}
	return ti.Bytes_received == uint64(inq) && ti.Bytes_acked == 0 && outq == 0
}

// requeueLocked puts c's connection back at the head of its queue.
func (h *Handoff) requeueLocked(c *conn) {
	c.srv.queue = append([]int{c.fd}, c.srv.queue...)
	h.stats.queued(1)
}
