package cluster

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
	"github.com/herd-sh/herd/cluster/listen"
	"golang.org/x/sys/unix"
)

// The cluster layer of Node's protocol (docs/protocol.md §4.2, §5): what herd,
// in the role of Node's cluster primary, does with each message a worker
// sends on its channel. Wire values are named as on the wire.
const (
	actOnline                = "online"
	actQueryServer           = "queryServer"
	actListening             = "listening"
	actClose                 = "close"
	actExitedAfterDisconnect = "exitedAfterDisconnect"
	actNewconn               = "newconn"
	actDisconnect            = "disconnect"
)

// ipcEvent is one message, or the end, of a worker's channel.
type ipcEvent struct {
	w   *worker
	m   ipc.Message
	err error // set when the channel ended: io.EOF, or a *ipc.ProtocolError
}

// onlineWarnAfter is how long a worker under rr may stay silent on its
// channel before herd explains that rr needs the cluster protocol.
const onlineWarnAfter = 5 * time.Second

// openChannel makes w's channel; child is the worker's end, for its fds.
func (s *Supervisor) openChannel(w *worker) (child int, err error) {
	ch, child, err := ipc.Pair(ipc.WithoutPoller())
	if err != nil {
		return -1, err
	}
	w.ch = ch
	return child, nil
}

// watchChannel has the hand-off read w's channel: the answers to rr's
// newconns are applied where they are read, everything else comes to the
// loop, in order.
func (s *Supervisor) watchChannel(w *worker) error {
	hw, err := s.hand.Attach(w.ch, w.id, w.slot.index, func(m ipc.Message) {
		select {
		case s.ipcEvents <- ipcEvent{w: w, m: m}:
		case <-s.done:
		}
	}, func(err error) {
		if err == nil {
			err = errors.New("channel closed")
		}
		select {
		case s.ipcEvents <- ipcEvent{w: w, err: err}:
		case <-s.done:
		}
	})
	w.hw = hw
	return err
}

// detachChannel takes w's channel from the hand-off and closes it. exited
// says w's process has gone (see handoff.Handoff.Detach).
func (s *Supervisor) detachChannel(w *worker, exited bool) {
	if w.hw != nil {
		s.hand.Detach(w.hw, exited)
	}
	_ = w.ch.Close()
}

// nextSeq numbers herd's cluster messages, one counter for every worker as
// Node's primary does, shared with the hand-off's newconns.
func (s *Supervisor) nextSeq() int64 { return s.hand.NextSeq() }

// channelEvent applies one event of a worker's channel.
func (s *Supervisor) channelEvent(ev ipcEvent) {
	w := ev.w
	if s.workers[w.pid] != w {
		return // the worker has gone; its last words do not matter
	}
	if ev.err != nil {
		var pe *ipc.ProtocolError
		if errors.As(ev.err, &pe) {
			s.log.Error("worker protocol error: ending the worker", "id", w.id, "pid", w.pid, "err", ev.err)
			s.signalGroup(w.pid, unix.SIGKILL)
		}
		s.dropFromServers(w)
		return
	}
	m := ev.m
	if m.Cmd != ipc.CmdCluster {
		if !m.Internal() || m.Cmd == ipc.CmdHandle {
			s.log.Debug("worker message", "id", w.id, "pid", w.pid, "message", clip(m.Raw))
		}
		return
	}
	switch m.Act {
	case actOnline:
		if !w.online {
			w.online = true
			s.log.Debug("worker online", "id", w.id, "pid", w.pid)
		}
	case actQueryServer:
		w.online = true
		s.queryServer(w, m)
	case actListening:
		w.serverUp = true
		if s.cfg.Ready != ReadyNotify {
			s.listening(w)
		}
	case actClose:
		key := wireString(m.Fields["key"])
		if srv := s.servers[key]; srv != nil {
			s.leaveServer(w, srv, true)
		}
	case actExitedAfterDisconnect:
		// The worker leaves on purpose (cluster.worker.disconnect() or
		// .kill()): its exit is no accident, as Node's primary counts it.
		w.leaving = true
		if m.Seq != nil {
			_ = w.ch.Send(json.RawMessage(ipc.Reply(*m.Seq, s.nextSeq(), nil)))
		}
		s.dropFromServers(w)
	default:
		s.log.Debug("worker cluster message ignored", "id", w.id, "act", m.Act)
	}
}

// disconnect asks a protocol worker to stop gracefully: it closes its
// servers, lets its connections finish, and exits when nothing is left.
func (s *Supervisor) disconnect(w *worker) {
	s.handDisconnect(w)
	s.dropFromServers(w)
	if err := w.ch.Send(json.RawMessage(ipc.ClusterMessage(actDisconnect, s.nextSeq(), nil))); err != nil {
		s.signalGroup(w.pid, s.cfg.StopSignal)
	}
}

// speaksProtocol reports whether w is stopped with disconnect.
func (w *worker) speaksProtocol() bool { return w.ch != nil && w.online }

func clip(b []byte) string {
	if len(b) > 256 {
		return string(b[:256]) + "..."
	}
	return string(b)
}

// wireString and wireInt read a field as ipc decodes it.
func wireString(raw json.RawMessage) string { return ipc.FieldString(raw) }

func wireInt(raw json.RawMessage) (int, bool) {
	n, ok := ipc.FieldInt(raw)
	return int(n), ok
}

// query is the address a queryServer asks for.
type query struct {
	address  string // "" for null (every address)
	port     int
	family   string // "4", "6", "-1" (unix), "udp4", "udp6"
	fd       int    // the worker's own fd number, -1 if absent
	ipv6Only bool
	mode     uint32 // unix: readableAll/writableAll
}

func parseQuery(m ipc.Message) query {
	q := query{fd: -1}
	q.address = wireString(m.Fields["address"])
	q.port, _ = wireInt(m.Fields["port"])
	if n, ok := wireInt(m.Fields["addressType"]); ok {
		q.family = strconv.Itoa(n)
	} else {
		q.family = wireString(m.Fields["addressType"])
	}
	if n, ok := wireInt(m.Fields["fd"]); ok {
		q.fd = n
	}
	if n, ok := wireInt(m.Fields["flags"]); ok && q.family != "udp4" && q.family != "udp6" {
		q.ipv6Only = n&1 != 0
	}
	var all bool
	if json.Unmarshal(m.Fields["readableAll"], &all) == nil && all {
		q.mode |= 0o444
	}
	if json.Unmarshal(m.Fields["writableAll"], &all) == nil && all {
		q.mode |= 0o222
	}
	return q
}

// spec is the address as one of herd's listen.Specs.
func (q query) spec() listen.Spec {
	sp := listen.Spec{UID: -1, GID: -1}
	if q.family == "-1" {
		sp.Network, sp.Address = "unix", q.address
		sp.Mode = 0
		if q.mode != 0 {
			sp.Mode = 0o600 | os.FileMode(q.mode)
		}
		sp.Name = "unix"
		return sp
	}
	sp.Network = "tcp"
	switch {
	case q.ipv6Only || (q.family == "6" && q.address != "" && q.address != "::"):
		sp.Network = "tcp6"
	case q.family == "4" && q.address != "":
		sp.Network = "tcp4"
	}
	sp.Address = net.JoinHostPort(q.address, strconv.Itoa(q.port))
	sp.Name = sp.Network + "-" + strconv.Itoa(q.port)
	return sp
}

// String names the address in logs: as in HERD_LISTEN ("tcp4://127.0.0.1:81",
// "unix:///run/app.sock"), "udp4://host:port", or "fd 3".
func (q query) String() string {
	switch {
	case q.family == "udp4" || q.family == "udp6":
		return q.family + "://" + net.JoinHostPort(q.address, strconv.Itoa(q.port))
	case q.fd >= 0 || q.family == "fd":
		return "fd " + strconv.Itoa(q.fd)
	}
	return q.spec().String()
}

// matches reports whether herd's listener l is the socket q asks for.
func (q query) matches(l *listen.Listener) bool {
	if q.family == "-1" {
		return l.Spec.Network == "unix" && l.Spec.Address == q.address
	}
	if l.Spec.Network == "unix" || q.port == 0 || l.Port() != q.port {
		return false
	}
	host, _, err := net.SplitHostPort(l.Spec.Address)
	if err != nil {
		return false
	}
	if anyHost(q.address) {
		return anyHost(host)
	}
	a, b := net.ParseIP(q.address), net.ParseIP(host)
	return a != nil && b != nil && a.Equal(b)
}

func anyHost(h string) bool { return h == "" || h == "::" || h == "0.0.0.0" }

// onPort reports whether herd's listener l is a TCP socket on the port q
// asks for on every address (listen(port) with no host, or a wildcard
// host): HERD_LISTEN may bind that port on one address only, and the port
// is then herd's; the worker gets that socket rather than an error.
func (q query) onPort(l *listen.Listener) bool {
	if q.family != "4" && q.family != "6" {
		return false
	}
	return anyHost(q.address) && q.port > 0 && l.Spec.Network != "unix" && l.Port() == q.port
}

// handDisconnect has the hand-off give w no more connections.
func (s *Supervisor) handDisconnect(w *worker) {
	if w.hw != nil {
		s.hand.Disconnect(w.hw)
	}
}
