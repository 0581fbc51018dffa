package cluster

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// The round-robin hand-off (rr) is the one part of the supervisor that does
// not run on its loop. Through the loop, every connection crossed three
// goroutines (accept loop → supervisor loop → channel reader → supervisor
// loop), and those wake-ups cost more CPU than the hand-off itself. Now
// herd's poller (poller.go) accepts a connection and hands it on, and
// applies a worker's {ack, accepted} reply where it reads it, under one
// lock that guards only what the hot path touches:
//
//   - server: queue, order, next, waking, closed, acceptFD, acceptOn
//   - worker: rr, rrCount, rrHold, disconnected
//
// The loop takes the same lock when it changes those (a worker joins or
// leaves a server, is disconnected or exits; a server closes; a shutdown
// looks for connections still queued). Everything else stays the loop's.

// rrState is the hand-off's lock, and the dispatches due later.
type rrState struct {
	mu sync.Mutex
	// A dispatch that waits for a held or lagging worker is retried by
	// the poller (its epoll_wait times out then) rather than by a timer:
	// a timer wakes the runtime's poller thread, and fires on yet
	// another goroutine.
	due     time.Time // the earliest retry; zero if none
	waiting []*server // servers with a retry due
}

// retryAt has srv dispatched again at t. With s.rr.mu held.
func (r *rrState) retryAt(srv *server, t time.Time, p *poller) {
	if !srv.waking {
		srv.waking = true
		r.waiting = append(r.waiting, srv)
	}
	if r.due.IsZero() || t.Before(r.due) {
		r.due = t
		p.interrupt() // the poller may be asleep with a later timeout
	}
}

// retryTimeout is how long the poller may sleep before a retry is due:
// -1 for none, else milliseconds, rounded up.
func (s *Supervisor) retryTimeout(now time.Time) int {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	if s.rr.due.IsZero() {
		return -1
	}
	d := s.rr.due.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// retryDue dispatches the servers whose retry has come.
func (s *Supervisor) retryDue(now time.Time) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	if s.rr.due.IsZero() || now.Before(s.rr.due) {
		return
	}
	waiting := s.rr.waiting
	s.rr.waiting, s.rr.due = nil, time.Time{}
	for _, srv := range waiting {
		srv.waking = false
		if !srv.closed {
			s.dispatchLocked(srv) // may ask for another retry
		}
	}
}

// rrConn is the newconn a worker has not answered yet.
type rrConn struct {
	srv   *server
	fd    int
	seq   int64
	acked atomic.Bool // the transport ACK arrived: the worker has the fd (set by the channel's reader)
	sent  time.Time   // when herd sent it
}

// rrLag and rrWait keep the round-robin spread even when workers answer at
// different speeds: a connection waits (at most rrWait after that worker's
// last hand-off) for a busy worker that is rrLag or more connections behind
// the free one it would otherwise go to.
const (
	rrLag  = 8
	rrWait = time.Millisecond
)

// maxQueued bounds the connections herd takes from a socket's accept queue
// when it stops accepting, to hand them on before the workers stop.
const maxQueued = 4096

// rrHold is how long a worker that answered accepted:false is passed over.
const rrHold = 20 * time.Millisecond

// startAccepting registers srv's socket with herd's poller, once: herd
// accepts and hands each connection to the next free worker (rr). Called on
// the loop.
func (s *Supervisor) startAccepting(srv *server) {
	if srv.acceptFD >= 0 {
		return
	}
	// A duplicate of the non-blocking socket, so that closing herd's copy
	// of the listener and stopping the accepting are separate; it is never
	// wrapped in an os.File (whose Fd() would make it blocking).
	dup, err := unix.FcntlInt(uintptr(srv.l.FD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Error("cannot accept", "key", srv.key, "err", err)
		return
	}
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	srv.newconn = newconnPrefix(srv.key)
	tok, err := s.poll.add(pollItem{fd: dup, srv: srv})
	if err != nil {
		unix.Close(dup)
		s.log.Error("cannot accept", "key", srv.key, "err", err)
		return
	}
	srv.acceptFD, srv.acceptTok, srv.acceptOn = dup, tok, true
}

// rrStopAccepting closes srv's accepting socket: a connection that comes
// later waits in the listener's backlog for a worker's own accept (none),
// or is refused once every copy of the socket is closed.
func (s *Supervisor) rrStopAccepting(srv *server) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	if srv.acceptFD < 0 {
		return
	}
	// Connections the kernel completed are clients herd already let in:
	// they are taken now, to be handed on with the rest of the queue,
	// rather than reset when the socket closes.
	for len(srv.queue) < maxQueued {
		fd := s.accept1(srv)
		if fd < 0 {
			break
		}
		srv.queue = append(srv.queue, fd)
		s.handoffs.queued(1)
	}
	s.poll.remove(srv.acceptTok)
	unix.Close(srv.acceptFD)
	srv.acceptFD = -1
	s.dispatchLocked(srv)
}

// acceptReady hands on what srv's socket holds: the poller saw it readable,
// which it reports only while some worker is free (see dispatchLocked).
func (s *Supervisor) acceptReady(srv *server) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	s.dispatchLocked(srv)
}

// accept1 takes one connection from srv's socket: its fd, or -1 when none
// waits (or the socket is closed).
func (s *Supervisor) accept1(srv *server) int {
	for srv.acceptFD >= 0 {
		// accept4 with no address: unix.Accept4 would add a getsockopt
		// per connection to decode one.
		nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(srv.acceptFD), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			s.handoffs.accepted(1)
			return int(nfd)
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
		default:
			s.log.Debug("accept failed", "key", srv.key, "err", errno)
		}
		break
	}
	return -1
}

// dispatchLocked gives connections to free workers, round-robin: first
// those herd holds (taken back or refused), then new ones, accepted one at
// a time as a worker is free to take each. A worker is free when it has
// answered its last newconn and its channel has no handle awaiting ACK, so
// a stalled worker receives nothing. Called with s.rr.mu held.
//
// While no worker is free, new connections wait in the kernel's accept
// queue, not in herd: the poller stops watching the socket, and the answer
// that frees a worker (which wakes herd anyway) takes the next one. Under
// load that is one wake-up of herd per connection instead of two.
func (s *Supervisor) dispatchLocked(srv *server) {
	now := time.Now()
	var held time.Duration
	drained := false // the socket had nothing more, and a worker was free
	for {
		w, pick, wait := s.pickLocked(srv, now)
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
			s.handoffs.queued(-1)
		} else if fd = s.accept1(srv); fd < 0 {
			drained = true
			break
		}
		srv.next = (srv.next + pick + 1) % len(srv.order)
		if !s.handTo(w, srv, fd, now) {
			srv.queue = append([]int{fd}, srv.queue...)
			s.handoffs.queued(1)
			w.rrHold = now.Add(rrHold)
			continue
		}
		w.rrCount++
	}
	if len(srv.queue) == 0 {
		srv.queue = nil // let a burst's array go
	}
	s.watchAccept(srv, drained)
	if held > 0 {
		s.rr.retryAt(srv, now.Add(held), s.poll)
	}
}

// pickLocked chooses the worker for srv's next connection: of the free
// workers, the one that has been handed the fewest connections, in turn
// order on a tie (a worker that was busy when its turn came gets the next
// connection once it is free, so the spread stays even although workers
// answer at different speeds). It returns nil and how long to wait when the
// connection should wait: for a worker held back after refusing one, or
// for a busy worker rrLag connections behind whose newconn went out less
// than rrWait ago (it will be free in a moment; one whose newconn is older
// is stalled, and gets nothing until it answers).
func (s *Supervisor) pickLocked(srv *server, now time.Time) (w *worker, pick int, wait time.Duration) {
	n := len(srv.order)
	for i := 0; i < n; i++ {
		cand := srv.order[(srv.next+i)%n]
		if cand.rr != nil || cand.disconnected || cand.ch.Pending() {
			continue
		}
		if d := cand.rrHold.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if w == nil || cand.rrCount < w.rrCount {
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
func (s *Supervisor) watchAccept(srv *server, on bool) {
	if srv.acceptFD < 0 || on == srv.acceptOn {
		return
	}
	if err := s.poll.watch(srv.acceptFD, srv.acceptTok, on); err != nil {
		s.log.Warn("cannot change what herd's poller watches", "key", srv.key, "err", err)
		return
	}
	srv.acceptOn = on
}

// handTo sends fd to w as a newconn of srv.
func (s *Supervisor) handTo(w *worker, srv *server, fd int, now time.Time) bool {
	seq := s.nextSeq()
	c := &rrConn{srv: srv, fd: fd, seq: seq, sent: now}
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
			s.rr.mu.Lock()
			defer s.rr.mu.Unlock()
			if w.rr == c {
				s.takeBackLocked(w)
			}
		}()
	})
	if err != nil {
		return false
	}
	w.rr = c
	return true
}

// newconnPrefix is a newconn message for key up to its seq, as
// ipc.ClusterMessage encodes it: {"cmd":"NODE_CLUSTER","act":"newconn","key":…,"seq":
func newconnPrefix(key string) []byte {
	line := ipc.ClusterMessage(actNewconn, 0, map[string]any{"key": key})
	return line[:len(line)-len("0}")]
}

// lagging returns how long to wait for a busy worker of srv that is behind
// w, or 0 to hand the connection to w now.
func lagging(srv *server, w *worker, now time.Time) time.Duration {
	var wait time.Duration
	for _, o := range srv.order {
		if o == w || o.rr == nil || o.disconnected || w.rrCount-o.rrCount < rrLag {
			continue
		}
		if left := rrWait - now.Sub(o.rr.sent); left > 0 && (wait == 0 || left < wait) {
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
func (s *Supervisor) newconnReply(w *worker, m ipc.Message) {
	accepted := bytes.Equal(bytes.TrimSpace(m.Fields["accepted"]), []byte("true"))
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	c := w.rr
	if c == nil || c.seq != *m.Ack {
		return // a reply to a newconn taken back already, or to another message
	}
	w.rr = nil
	if accepted {
		unix.Close(c.fd)
		w.served.Store(true)
		s.handoffs.handedOff(w.slot.index)
	} else {
		// No server with that key, or maxConnections reached: another
		// worker, and this one passed over for a moment (Node's own
		// primary retries at once, in a hot loop).
		s.handoffs.refused()
		s.requeueLocked(c)
		w.rrHold = time.Now().Add(rrHold)
		s.log.Debug("newconn refused; handing it to another worker", "id", w.id, "key", c.srv.key)
	}
	s.dispatchLocked(c.srv)
}

// takeBackLocked returns w's unanswered newconn to its queue when the
// worker never received it (a NACK, or a channel that failed before the
// handle went out), and closes it when the worker had it.
func (s *Supervisor) takeBackLocked(w *worker) {
	c := w.rr
	w.rr = nil
	if c.acked.Load() || c.srv.closed {
		unix.Close(c.fd)
		return
	}
	s.requeueLocked(c)
	s.dispatchLocked(c.srv)
}

// takeBackDeadLocked settles the unanswered newconn of a worker that has
// exited. Whether the worker had received it cannot be told from its
// channel: its acknowledgement may still be unread, or never read (a
// channel ended for a protocol error). The connection itself tells: a TCP
// connection nobody has read from or written to goes to another worker
// (the client is served), any other is closed (the client sees the end
// at once, rather than a worker waiting for a request already read).
func (s *Supervisor) takeBackDeadLocked(w *worker) {
	c := w.rr
	w.rr = nil
	if c.srv.closed || !untouched(c.fd) {
		unix.Close(c.fd)
		return
	}
	s.requeueLocked(c)
	s.dispatchLocked(c.srv)
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
func (s *Supervisor) requeueLocked(c *rrConn) {
	c.srv.queue = append([]int{c.fd}, c.srv.queue...)
	s.handoffs.queued(1)
}

// takeBack is takeBackDeadLocked for the loop (the worker exited).
func (s *Supervisor) takeBack(w *worker) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	if w.rr != nil {
		s.takeBackDeadLocked(w)
	}
}

// rrJoin adds w to srv's round-robin order (the loop, on queryServer).
func (s *Supervisor) rrJoin(w *worker, srv *server) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	// A newcomer starts level with the others rather than at zero, so it
	// does not take every connection until it has caught up.
	w.rrCount = -1
	for _, o := range srv.order {
		if w.rrCount < 0 || o.rrCount < w.rrCount {
			w.rrCount = o.rrCount
		}
	}
	w.rrCount = max(w.rrCount, 0)
	srv.order = append(srv.order, w)
	s.dispatchLocked(srv) // connections queued while no worker was there
}

// rrLeave removes w from srv's round-robin order. An unanswered newconn
// stays with w until its ACK, reply or exit tells whether w has the
// connection.
func (s *Supervisor) rrLeave(w *worker, srv *server) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	for i, o := range srv.order {
		if o == w {
			srv.order = append(srv.order[:i], srv.order[i+1:]...)
			if srv.next > i {
				srv.next--
			}
			break
		}
	}
	if len(srv.order) > 0 {
		srv.next %= len(srv.order)
	} else {
		srv.next = 0
	}
}

// rrDisconnect marks w as getting no more connections.
func (s *Supervisor) rrDisconnect(w *worker) {
	s.rr.mu.Lock()
	w.disconnected = true
	s.rr.mu.Unlock()
}

// rrClose closes the connections queued for srv, which is going away: the
// clients see a reset.
func (s *Supervisor) rrClose(srv *server) {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	srv.closed = true
	for _, fd := range srv.queue {
		unix.Close(fd)
	}
	s.handoffs.queued(-len(srv.queue))
	srv.queue = nil
}

// rrBusy reports whether some connection still waits in herd, queued or
// sent and unanswered.
func (s *Supervisor) rrBusy() bool {
	s.rr.mu.Lock()
	defer s.rr.mu.Unlock()
	for _, srv := range s.servers {
		if len(srv.queue) > 0 {
			return true
		}
		for w := range srv.workers {
			if w.rr != nil {
				return true
			}
		}
	}
	return false
}
