package cluster

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"syscall"

	"github.com/herd-sh/herd/cluster/handoff"
	"github.com/herd-sh/herd/cluster/ipc"
	"github.com/herd-sh/herd/cluster/listen"
	"golang.org/x/sys/unix"
)

// server is one address workers listen on through the cluster protocol,
// under Node's key (address:port:addressType:fd:index). Workers that ask
// with the same key share it, as under Node's primary.
type server struct {
	key     string
	q       query
	l       *listen.Listener           // herd's socket (none, rr); nil under reuseport
	own     bool                       // bound for this key (not one of HERD_LISTEN's): closed when no worker is left
	perSlot map[*slot]*listen.Listener // reuseport: each slot's socket, when bound for this key
	udp     int                        // a UDP socket's fd, or -1
	data    json.RawMessage            // the first queryServer's data, echoed to every worker (TLS ticket keys)
	onPort  bool                       // reuseport: the worker's wildcard address was given HERD_LISTEN's sockets on its port
	workers map[*worker]bool
	// rr: the hand-off's record of the server, once it accepts on l.
	rr *handoff.Server
}

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
			s.replyError(w, ack, srv, err)
			return
		}
		s.servers[key] = srv
	}
	reply := map[string]any{"errno": 0, "key": key, "data": srv.data}
	switch {
	case srv.udp >= 0:
		s.sendHandle(w, ipc.TypeDgramNative, ipc.Reply(ack, s.nextSeq(), reply), srv.udp, srv)
	case s.cfg.Policy.handsOff():
		reply["errno"] = nil
		if srv.q.family != "-1" {
			reply["sockname"] = sockname(srv.l)
		}
		_ = w.ch.Send(json.RawMessage(ipc.Reply(ack, s.nextSeq(), reply)))
		srv.workers[w] = true
		s.joinHandoff(w, srv)
	default:
		l, err := s.socketFor(srv, w.slot)
		if err != nil {
			s.replyError(w, ack, srv, err)
			return
		}
		s.sendHandle(w, ipc.TypeNetNative, ipc.Reply(ack, s.nextSeq(), reply), l.FD, srv)
	}
}

// joinHandoff has the hand-off give w srv's connections (rr); the first
// worker to join starts herd's accepting on the socket.
func (s *Supervisor) joinHandoff(w *worker, srv *server) {
	if srv.rr == nil {
		rr, err := s.hand.Open(srv.key, srv.l.FD)
		if err != nil {
			s.log.Error("cannot accept", "key", srv.key, "err", err)
			return
		}
		srv.rr = rr
		s.chose(srv)
	}
	if w.hw != nil {
		s.hand.Join(srv.rr, w.hw)
	}
}

// chose records, under PolicyAuto, that herd hands out srv's connections:
// its workers asked for the address through the protocol. It is logged
// once, and shown in the Snapshot.
func (s *Supervisor) chose(srv *server) {
	if s.cfg.Policy != PolicyAuto {
		return
	}
	addr := srv.q.spec().String()
	if srv.l != nil {
		addr = srv.l.Spec.String()
	}
	if !s.handingOut {
		s.log.Info("policy auto: workers listen through Node's cluster protocol; herd hands out their connections (rr)",
			"address", addr, "key", srv.key)
	}
	s.handingOut = true
}

// sendHandle sends a shared socket; the worker joins srv once it has it.
func (s *Supervisor) sendHandle(w *worker, typ string, line []byte, fd int, srv *server) {
	if err := w.ch.SendHandle(typ, json.RawMessage(line), fd, nil); err != nil {
		s.log.Warn("cannot hand the socket to the worker", "id", w.id, "key", srv.key, "err", err)
		return
	}
	srv.workers[w] = true
}

// replyError answers w's queryServer for srv with err's errno (EINVAL if
// it has none), and says why. A bind the kernel refused the workers' user
// (EACCES, EPERM) is logged as a refusal; herd's failure to take that user
// is not.
func (s *Supervisor) replyError(w *worker, ack int64, srv *server, err error) {
	errno := unix.EINVAL
	var e unix.Errno
	if errors.As(err, &e) {
		errno = e
	}
	msg := "worker asked for an address herd cannot give it"
	args := []any{"id", w.id, "pid", w.pid, "address", srv.q.String(), "key", srv.key}
	if cred := s.workerCred(); cred != nil && (errno == unix.EACCES || errno == unix.EPERM) && !errors.Is(err, listen.ErrCredentials) {
		msg = "worker's listen refused: its user may not bind the address"
		args = append(args, "user", credString(cred))
	}
	s.log.Warn(msg, append(args, "err", err)...)
	_ = w.ch.Send(json.RawMessage(ipc.Reply(ack, s.nextSeq(), map[string]any{"errno": -int(errno), "key": srv.key, "data": srv.data})))
}

// workerCred is the user herd binds on-demand addresses as (listen.BindAs): the
// workers' own, nil when they run as herd's user or as root.
func (s *Supervisor) workerCred() *syscall.Credential {
	if c := s.cfg.Credential; c != nil && c.Uid != 0 {
		return c
	}
	return nil
}

// openServer finds or binds srv's socket: one of HERD_LISTEN's when the
// address matches, else a new one, as Node's primary binds on demand.
//
// herd binds on demand with the workers' rights (listen.BindAs): a worker gets
// only what it could bind itself, and the errno it would get otherwise.
func (s *Supervisor) openServer(srv *server, w *worker) error {
	q := srv.q
	if q.family == "udp4" || q.family == "udp6" {
		fd, err := listen.BindUDP(s.workerCred(), q.family, q.address, q.port)
		srv.udp = fd
		return err
	}
	if q.fd >= 0 {
		// listen({fd: N}): N is the worker's own fd; herd can give it the
		// socket it passed there (LISTEN_FDS), nothing else.
		socks := s.sockets(w.slot)
		if s.cfg.Policy.handsOff() {
			socks = s.cfg.Listeners
		}
		i := q.fd - 3
		if i < 0 || i >= len(socks) {
			return unix.EINVAL
		}
		if s.cfg.Policy == PolicyReuseport {
			srv.perSlot = map[*slot]*listen.Listener{w.slot: socks[i]}
			srv.q = query{family: "fd", fd: q.fd}
			return nil
		}
		srv.l = socks[i]
		return nil
	}
	if s.cfg.Policy == PolicyReuseport {
		srv.perSlot = map[*slot]*listen.Listener{}
		return nil // per slot, in socketFor
	}
	for _, l := range s.cfg.Listeners {
		if q.matches(l) {
			srv.l = l
			return nil
		}
	}
	for _, l := range s.cfg.Listeners {
		if q.onPort(l) {
			s.logOnPort(srv, w, l)
			srv.l = l
			return nil
		}
	}
	l, err := q.spec().BindAs(s.workerCred(), s.cfg.Backlog, false)
	if err != nil {
		return err
	}
	srv.l, srv.own = l, true
	s.log.Info("listening", "address", l.Spec.String(), "bound", l.Addr.String(), "for", srv.key)
	return nil
}

// logOnPort says, once per server, that a worker asking for every address
// of a port gets HERD_LISTEN's socket on that port (w may be nil).
func (s *Supervisor) logOnPort(srv *server, w *worker, l *listen.Listener) {
	args := []any{"port", srv.q.port, "listen", l.Spec.String(), "key", srv.key}
	if w != nil {
		args = append(args, "id", w.id)
	}
	s.log.Info("worker listens on every address of a port HERD_LISTEN binds on one; it gets HERD_LISTEN's socket", args...)
}

// socketFor is the socket a worker of sl gets for srv. Under reuseport an
// address not in HERD_LISTEN is bound for each slot, as the workers' user
// (listen.BindAs) like every on-demand bind: the sockets of one SO_REUSEPORT group
// must belong to one user, and all of these do (HERD_LISTEN's belong to
// herd's).
func (s *Supervisor) socketFor(srv *server, sl *slot) (*listen.Listener, error) {
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
	for _, l := range sl.sockets {
		if srv.q.onPort(l) {
			if !srv.onPort {
				srv.onPort = true
				s.logOnPort(srv, nil, l)
			}
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
	l, err := sp.BindAs(s.workerCred(), s.cfg.Backlog, true)
	if err != nil {
		return nil, err
	}
	srv.perSlot[sl] = l
	return l, nil
}

func sockname(l *listen.Listener) map[string]any {
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

// credString writes cred as uid:gid, for logs.
func credString(cred *syscall.Credential) string {
	return strconv.FormatUint(uint64(cred.Uid), 10) + ":" + strconv.FormatUint(uint64(cred.Gid), 10)
}

// leaveServer removes w from srv. With closed set (the worker closed its
// server) a socket herd bound for srv alone is closed once no worker is
// left; a worker that died or was disconnected leaves the socket open, so
// connections wait for its replacement as they do on HERD_LISTEN's.
func (s *Supervisor) leaveServer(w *worker, srv *server, closed bool) {
	delete(srv.workers, w)
	if srv.rr != nil && w.hw != nil {
		s.hand.Leave(srv.rr, w.hw)
	}
	if !closed || len(srv.workers) > 0 {
		return
	}
	s.closeServer(srv)
}

// stopAccepting closes herd's accept loop and the sockets herd bound for
// srv alone; a connection that comes later is refused. What is queued in
// herd is still handed on.
func (s *Supervisor) stopAccepting(srv *server) {
	if srv.rr != nil {
		s.hand.Drain(srv.rr)
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
	if srv.rr != nil {
		s.hand.Close(srv.rr)
	}
	if srv.udp >= 0 {
		unix.Close(srv.udp)
	}
	delete(s.servers, srv.key)
}

func slicesContains(ls []*listen.Listener, l *listen.Listener) bool {
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
