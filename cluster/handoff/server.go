package handoff

import (
	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// Server is one address the hand-off accepts on for the rr policy, under
// Node's server key; its workers are those that joined it.
type Server struct {
	key     string
	newconn []byte // the newconn message up to its seq

	// Under Handoff.mu.
	acceptFD  int    // herd's accepting duplicate of the socket, or -1
	acceptTok uint32 // its poller token
	acceptOn  bool   // the poller watches it (only while a worker is free)
	// Connections herd holds (taken back from a worker that died with them
	// untouched, refused by one, or taken from the socket as herd stopped
	// accepting); new ones wait in the kernel's accept queue.
	queue  []int
	order  []*Worker // round-robin order
	next   int
	waking bool // a dispatch is scheduled for when a held worker is free
	closed bool // nothing more is queued
}

// maxQueued bounds the connections herd takes from a socket's accept queue
// when it stops accepting, to hand them on before the workers stop.
const maxQueued = 4096

// actNewconn is the cluster message that hands a worker a connection.
const actNewconn = "newconn"

// Open starts accepting on fd, a listening socket, for the server key:
// the poller accepts on a duplicate of fd (so that closing the listener
// and stopping the accepting are separate) while some worker is free.
func (h *Handoff) Open(key string, fd int) (*Server, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	srv := &Server{key: key, newconn: newconnPrefix(key), acceptFD: -1}
	h.mu.Lock()
	defer h.mu.Unlock()
	tok, err := h.poll.add(pollItem{fd: dup, srv: srv})
	if err != nil {
		unix.Close(dup)
		return nil, err
	}
	srv.acceptFD, srv.acceptTok, srv.acceptOn = dup, tok, true
	h.servers[srv] = true
	return srv, nil
}

// Join adds w to srv's round-robin order.
func (h *Handoff) Join(srv *Server, w *Worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// A newcomer starts level with the others rather than at zero, so it
	// does not take every connection until it has caught up.
	w.count = -1
	for _, o := range srv.order {
		if w.count < 0 || o.count < w.count {
			w.count = o.count
		}
	}
	w.count = max(w.count, 0)
	srv.order = append(srv.order, w)
	h.dispatchLocked(srv) // connections queued while no worker was there
}

// Leave removes w from srv's round-robin order. An unanswered newconn
// stays with w until its reply, or its exit, settles it.
func (h *Handoff) Leave(srv *Server, w *Worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
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

// Drain stops accepting on srv: the connections the kernel had completed
// (clients herd already let in) are taken now and handed on with the rest
// of the queue, rather than reset when the socket closes; a connection
// that comes later waits for a worker's own accept, or is refused once
// every copy of the socket is closed.
func (h *Handoff) Drain(srv *Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if srv.acceptFD < 0 {
		return
	}
	for len(srv.queue) < maxQueued {
		fd := h.accept1(srv)
		if fd < 0 {
			break
		}
		srv.queue = append(srv.queue, fd)
		h.stats.queued(1)
	}
	h.poll.remove(srv.acceptTok)
	unix.Close(srv.acceptFD)
	srv.acceptFD = -1
	h.dispatchLocked(srv)
}

// Close drains srv and closes the connections still queued for it, which
// is going away: their clients see a reset.
func (h *Handoff) Close(srv *Server) {
	h.Drain(srv)
	h.mu.Lock()
	defer h.mu.Unlock()
	srv.closed = true
	for _, fd := range srv.queue {
		unix.Close(fd)
	}
	h.stats.queued(-len(srv.queue))
	srv.queue = nil
	delete(h.servers, srv)
}

// newconnPrefix is a newconn message for key up to its seq, as
// ipc.ClusterMessage encodes it: {"cmd":"NODE_CLUSTER","act":"newconn","key":…,"seq":
func newconnPrefix(key string) []byte {
	line := ipc.ClusterMessage(actNewconn, 0, map[string]any{"key": key})
	return line[:len(line)-len("0}")]
}
