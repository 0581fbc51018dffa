package cluster

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// server is one address workers listen on through the cluster protocol,
// under Node's key (address:port:addressType:fd:index). Workers that ask
// with the same key share it, as under Node's primary.
type server struct {
	key     string
	q       query
	l       *Listener           // herd's socket (none, rr); nil under reuseport
	own     bool                // bound for this key (not one of HERD_LISTEN's): closed when no worker is left
	perSlot map[*slot]*Listener // reuseport: each slot's socket, when bound for this key
	udp     int                 // a UDP socket's fd, or -1
	data    json.RawMessage     // the first queryServer's data, echoed to every worker (TLS ticket keys)
	workers map[*worker]bool

	// rr: connections accepted by herd and waiting for a free worker
	queue  []int
	order  []*worker // round-robin order
	next   int
	accept *os.File // the accept loop's duplicate of l.FD
	waking bool     // a dispatch is scheduled for when a held worker is free
}

type connEvent struct {
	srv *server
	fd  int
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
	rrLag  = 2
	rrWait = 20 * time.Millisecond
)

// lagging returns how long to wait for a busy worker of srv that is behind
// w, or 0 to hand the connection to w now.
func (s *Supervisor) lagging(srv *server, w *worker, now time.Time) time.Duration {
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

// maxQueued bounds the connections herd holds for one server while no
// worker is free.
const maxQueued = 4096

// rrHold is how long a worker that answered accepted:false is passed over.
const rrHold = 20 * time.Millisecond

// queryServer answers a worker's listen(): with the socket (none,
// reuseport, UDP always), with nothing but the address (rr: herd accepts),
// or with a negative errno.
func (s *Supervisor) queryServer(w *worker, m ipc.Message) {
	if m.Seq == nil {
		return
	}
	ack := *m.Seq
	key := ipc.ServerKey(m)
	q := parseQuery(m)
	srv := s.servers[key]
	if srv == nil {
		srv = &server{key: key, q: q, udp: -1, data: m.Fields["data"], workers: map[*worker]bool{}}
		if len(srv.data) == 0 {
			srv.data = json.RawMessage("null")
		}
		if err := s.openServer(srv, w); err != nil {
			s.replyError(w, ack, key, srv.data, err)
			return
		}
		s.servers[key] = srv
	}
	reply := map[string]any{"errno": 0, "key": key, "data": srv.data}
	switch {
	case srv.udp >= 0:
		s.sendHandle(w, ipc.TypeDgramNative, ipc.Reply(ack, s.nextSeq(), reply), srv.udp, srv)
	case s.cfg.Policy == PolicyRR:
		reply["errno"] = nil
		if srv.q.family != "-1" {
			reply["sockname"] = sockname(srv.l)
		}
		_ = w.ch.Send(json.RawMessage(ipc.Reply(ack, s.nextSeq(), reply)))
		// A newcomer starts level with the others rather than at zero,
		// so it does not take every connection until it has caught up.
		w.rrCount = -1
		for _, o := range srv.order {
			if w.rrCount < 0 || o.rrCount < w.rrCount {
				w.rrCount = o.rrCount
			}
		}
		w.rrCount = max(w.rrCount, 0)
		srv.workers[w] = true
		srv.order = append(srv.order, w)
		s.startAccepting(srv)
		s.dispatch(srv) // connections queued while no worker was there
	default:
		l, err := s.socketFor(srv, w.slot)
		if err != nil {
			s.replyError(w, ack, key, srv.data, err)
			return
		}
		s.sendHandle(w, ipc.TypeNetNative, ipc.Reply(ack, s.nextSeq(), reply), l.FD, srv)
	}
}

// sendHandle sends a shared socket; the worker joins srv once it has it.
func (s *Supervisor) sendHandle(w *worker, typ string, line []byte, fd int, srv *server) {
	if err := w.ch.SendHandle(typ, json.RawMessage(line), fd, nil); err != nil {
		s.log.Warn("cannot hand the socket to the worker", "id", w.id, "key", srv.key, "err", err)
		return
	}
	srv.workers[w] = true
}

func (s *Supervisor) replyError(w *worker, ack int64, key string, data json.RawMessage, err error) {
	errno := unix.EINVAL
	var e unix.Errno
	if errors.As(err, &e) {
		errno = e
	}
	s.log.Warn("worker asked for an address herd cannot give it", "id", w.id, "key", key, "err", err)
	_ = w.ch.Send(json.RawMessage(ipc.Reply(ack, s.nextSeq(), map[string]any{"errno": -int(errno), "key": key, "data": data})))
}

// openServer finds or binds srv's socket: one of HERD_LISTEN's when the
// address matches, else a new one, as Node's primary binds on demand.
func (s *Supervisor) openServer(srv *server, w *worker) error {
	q := srv.q
	if q.family == "udp4" || q.family == "udp6" {
		fd, err := bindUDP(q)
		srv.udp = fd
		return err
	}
	if q.fd >= 0 {
		// listen({fd: N}): N is the worker's own fd; herd can give it the
		// socket it passed there (LISTEN_FDS), nothing else.
		socks := s.sockets(w.slot)
		if s.cfg.Policy == PolicyRR {
			socks = s.cfg.Listeners
		}
		i := q.fd - 3
		if i < 0 || i >= len(socks) {
			return unix.EINVAL
		}
		if s.cfg.Policy == PolicyReuseport {
			srv.perSlot = map[*slot]*Listener{w.slot: socks[i]}
			srv.q = query{family: "fd", fd: q.fd}
			return nil
		}
		srv.l = socks[i]
		return nil
	}
	if s.cfg.Policy == PolicyReuseport {
		srv.perSlot = map[*slot]*Listener{}
		return nil // per slot, in socketFor
	}
	for _, l := range s.cfg.Listeners {
		if q.matches(l) {
			srv.l = l
			return nil
		}
	}
	l, err := q.spec().Bind(s.cfg.Backlog, false)
	if err != nil {
		return err
	}
	srv.l, srv.own = l, true
	s.log.Info("listening", "address", l.Spec.String(), "bound", l.Addr.String(), "for", srv.key)
	return nil
}

// socketFor is the socket a worker of sl gets for srv.
func (s *Supervisor) socketFor(srv *server, sl *slot) (*Listener, error) {
	if srv.perSlot == nil {
		return srv.l, nil
	}
	if srv.q.family == "fd" {
		i := srv.q.fd - 3
		if i < 0 || i >= len(sl.sockets) {
			return nil, unix.EINVAL
		}
		return sl.sockets[i], nil
	}
	if l := srv.perSlot[sl]; l != nil {
		return l, nil
	}
	for _, l := range sl.sockets {
		if srv.q.matches(l) {
			return l, nil
		}
	}
	sp := srv.q.spec()
	for _, l := range srv.perSlot { // port 0: every slot joins the first one's port
		if sp.Network != "unix" {
			host, _, _ := net.SplitHostPort(sp.Address)
			sp.Address = net.JoinHostPort(host, strconv.Itoa(l.Port()))
		}
		break
	}
	l, err := sp.Bind(s.cfg.Backlog, true)
	if err != nil {
		return nil, err
	}
	srv.perSlot[sl] = l
	return l, nil
}

func sockname(l *Listener) map[string]any {
	a, ok := l.Addr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	family := "IPv4"
	if a.IP.To4() == nil {
		family = "IPv6"
	}
	return map[string]any{"address": a.IP.String(), "family": family, "port": a.Port}
}

// bindUDP binds the UDP socket a dgram.Socket asks for; Node's primary
// shares UDP sockets whatever the policy.
func bindUDP(q query) (int, error) {
	domain := unix.AF_INET
	if q.family == "udp6" {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	ip := net.ParseIP(q.address)
	var sa unix.Sockaddr
	if domain == unix.AF_INET {
		a := &unix.SockaddrInet4{Port: q.port}
		if ip4 := ip.To4(); ip4 != nil {
			copy(a.Addr[:], ip4)
		}
		sa = a
	} else {
		a := &unix.SockaddrInet6{Port: q.port}
		if ip != nil {
			copy(a.Addr[:], ip.To16())
		}
		sa = a
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// leaveServer removes w from srv. With closed set (the worker closed its
// server) a socket herd bound for srv alone is closed once no worker is
// left; a worker that died or was disconnected leaves the socket open, so
// connections wait for its replacement as they do on HERD_LISTEN's.
func (s *Supervisor) leaveServer(w *worker, srv *server, closed bool) {
	delete(srv.workers, w)
	for i, o := range srv.order {
		if o == w {
			srv.order = append(srv.order[:i], srv.order[i+1:]...)
			break
		}
	}
	// An unanswered newconn stays with w until its ACK, reply or exit
	// tells whether w has the connection.
	if !closed || len(srv.workers) > 0 {
		return
	}
	s.closeServer(srv)
}

// stopAccepting closes herd's accept loop and the sockets herd bound for
// srv alone; a connection that comes later is refused. What is queued in
// herd is still handed on.
func (s *Supervisor) stopAccepting(srv *server) {
	if srv.accept != nil {
		_ = srv.accept.Close()
		srv.accept = nil
	}
	if srv.own && srv.l != nil {
		_ = srv.l.Close()
	}
	for sl, l := range srv.perSlot {
		if !slicesContains(sl.sockets, l) {
			_ = l.Close()
		}
	}
}

func (s *Supervisor) closeServer(srv *server) {
	s.stopAccepting(srv)
	for _, fd := range srv.queue {
		unix.Close(fd) // nobody will serve them: the client sees a reset
	}
	srv.queue = nil
	if srv.udp >= 0 {
		unix.Close(srv.udp)
	}
	delete(s.servers, srv.key)
}

func slicesContains(ls []*Listener, l *Listener) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// dropFromServers removes w from every server (it stops or has stopped).
func (s *Supervisor) dropFromServers(w *worker) {
	for _, srv := range s.servers {
		if srv.workers[w] {
			s.leaveServer(w, srv, false)
		}
	}
}

// closeServers closes every socket herd bound for the protocol.
func (s *Supervisor) closeServers() {
	for _, srv := range s.servers {
		s.closeServer(srv)
	}
}

// startAccepting runs srv's accept loop, once: herd accepts and hands each
// connection to the next free worker (rr).
func (s *Supervisor) startAccepting(srv *server) {
	if srv.accept != nil {
		return
	}
	dup, err := unix.FcntlInt(uintptr(srv.l.FD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.log.Error("cannot accept", "key", srv.key, "err", err)
		return
	}
	// The duplicate shares the non-blocking open file description, so
	// os.NewFile registers it with the netpoller; Fd() is never called.
	f := os.NewFile(uintptr(dup), "accept "+srv.key)
	srv.accept = f
	rc, err := f.SyscallConn()
	if err != nil {
		s.log.Error("cannot accept", "key", srv.key, "err", err)
		return
	}
	go func() {
		for {
			var conns []int
			err := rc.Read(func(fd uintptr) bool {
				for len(conns) < 64 {
					// accept4 with no address: unix.Accept4 would add a
					// getsockopt per connection to decode one.
					nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, fd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
					if errno != 0 {
						return errno != unix.EAGAIN || len(conns) > 0
					}
					conns = append(conns, int(nfd))
				}
				return true
			})
			s.handoffs.accepted(len(conns))
			for _, c := range conns {
				select {
				case s.conns <- connEvent{srv, c}:
				case <-s.done:
					unix.Close(c)
				}
			}
			if err != nil {
				return // closed
			}
		}
	}()
}

// accepted queues a connection herd accepted and hands it on.
func (s *Supervisor) accepted(c connEvent) {
	if s.servers[c.srv.key] != c.srv || s.stop.active && len(c.srv.order) == 0 {
		unix.Close(c.fd)
		return
	}
	c.srv.queue = append(c.srv.queue, c.fd)
	if len(c.srv.queue) > maxQueued {
		// No worker takes connections (all gone, crash-looping): refuse
		// the oldest rather than hold an unbounded number of fds.
		unix.Close(c.srv.queue[0])
		c.srv.queue = c.srv.queue[1:]
	}
	s.dispatch(c.srv)
}

// dispatch gives queued connections to free workers, round-robin: a worker
// is free when it has answered its last newconn and its channel has no
// handle awaiting ACK, so a stalled worker receives nothing.
func (s *Supervisor) dispatch(srv *server) {
	now := time.Now()
	var held time.Duration
	for len(srv.queue) > 0 {
		// Of the free workers, the one that has been handed the fewest
		// connections, in turn order on a tie: a worker that was busy when
		// its turn came gets the next connection once it is free, so the
		// spread stays even although workers answer at different speeds.
		n := len(srv.order)
		var w *worker
		pick := 0
		for i := 0; i < n; i++ {
			cand := srv.order[(srv.next+i)%n]
			if cand.rr != nil || cand.disconnected || cand.ch.Pending() {
				continue
			}
			if wait := cand.rrHold.Sub(now); wait > 0 {
				if held == 0 || wait < held {
					held = wait
				}
				continue
			}
			if w == nil || cand.rrCount < w.rrCount {
				w, pick = cand, i
			}
		}
		if w == nil {
			break
		}
		// A busy worker further behind than rrLag, with a connection sent
		// less than rrWait ago, will be free in a moment: the connection
		// waits for it. One whose connection is older is stalled, and
		// gets nothing until it answers.
		if lag := s.lagging(srv, w, now); lag > 0 {
			if held == 0 || lag < held {
				held = lag
			}
			break
		}
		srv.next = (srv.next + pick + 1) % n
		w.rrCount++
		fd := srv.queue[0]
		srv.queue = srv.queue[1:]
		seq := s.nextSeq()
		c := &rrConn{srv: srv, fd: fd, seq: seq, sent: now}
		w.rr = c
		line := ipc.ClusterMessage(actNewconn, seq, map[string]any{"key": srv.key})
		err := w.ch.SendAccepted(ipc.TypeNetNative, json.RawMessage(line), fd, func(acked bool) {
			if acked {
				// Noted where it happens: the {accepted} reply right
				// behind it is what the loop acts on.
				c.acked.Store(true)
				return
			}
			select {
			case s.handleAcks <- handleAck{w, seq, acked}:
			case <-s.done:
			}
		})
		if err != nil {
			w.rr = nil
			srv.queue = append([]int{fd}, srv.queue...)
			w.rrHold = now.Add(rrHold)
		}
	}
	if len(srv.queue) > 0 && held > 0 && !srv.waking {
		srv.waking = true
		s.later(held, func() { srv.waking = false; s.dispatch(srv) })
	}
}

// handleAcked notes the transport's answer to a newconn handle: a NACK (or
// a channel gone before the ACK) means the worker never had the fd.
func (s *Supervisor) handleAcked(a handleAck) {
	w := a.w
	if w.rr == nil || w.rr.seq != a.seq {
		return
	}
	s.takeBack(w)
}

// newconnReply applies a worker's {ack, accepted} to its newconn.
func (s *Supervisor) newconnReply(w *worker, m ipc.Message) {
	if w.rr == nil || w.rr.seq != *m.Ack {
		return
	}
	var accepted bool
	_ = json.Unmarshal(m.Fields["accepted"], &accepted)
	c := w.rr
	w.rr = nil
	if accepted {
		unix.Close(c.fd)
		s.handoffs.handedOff(w.slot.index)
	} else {
		s.handoffs.refused()
		// No server with that key, or maxConnections reached: another
		// worker, and this one passed over for a moment (Node's own
		// primary retries at once, in a hot loop).
		c.srv.queue = append([]int{c.fd}, c.srv.queue...)
		w.rrHold = time.Now().Add(rrHold)
		s.log.Debug("newconn refused; handing it to another worker", "id", w.id, "key", c.srv.key)
	}
	s.dispatch(c.srv)
}

// takeBack returns w's unanswered newconn to its queue when the worker
// never received it, and drops it when it did (it died with it).
func (s *Supervisor) takeBack(w *worker) {
	c := w.rr
	w.rr = nil
	if c.acked.Load() || s.servers[c.srv.key] != c.srv {
		unix.Close(c.fd)
		return
	}
	c.srv.queue = append([]int{c.fd}, c.srv.queue...)
	s.dispatch(c.srv)
}
