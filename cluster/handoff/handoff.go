package handoff

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
)

// Handoff is the hot path of one supervisor. Create it with New, Start it
// before the first Attach, Stop it last.
type Handoff struct {
	log   *slog.Logger
	poll  *poller // nil until Start
	seq   atomic.Int64
	stats stats

	// mu guards every field of every Server and of every Worker but
	// Worker.taken and the fields set once in Attach, and the retry
	// schedule below.
	mu sync.Mutex
	// A dispatch that waits for a held or lagging worker is retried by the
	// poller (its epoll_wait times out then) rather than by a timer: a
	// timer wakes the runtime's poller thread, and fires on yet another
	// goroutine.
	due     time.Time        // the earliest retry; zero if none
	waiting []*Server        // servers with a retry due
	servers map[*Server]bool // open, not yet closed
}

// New returns a hand-off that logs to log. It holds no resource until
// Start.
func New(log *slog.Logger) *Handoff {
	return &Handoff{log: log, servers: map[*Server]bool{}}
}

// Start creates the epoll set and starts the poller's goroutine.
func (h *Handoff) Start() error {
	p, err := newPoller()
	if err != nil {
		return err
	}
	h.poll = p
	go p.run(h)
	return nil
}

// Stop ends the poller and closes the epoll set. Every worker must have
// been detached and every server closed.
func (h *Handoff) Stop() {
	if h.poll != nil {
		h.poll.stop()
	}
}

// NextSeq numbers herd's cluster messages: one counter for every message
// herd sends to any worker, as Node's primary keeps, shared by the
// hand-off's newconns and the supervisor's replies.
func (h *Handoff) NextSeq() int64 { return h.seq.Add(1) - 1 }

// Stats returns the totals so far.
func (h *Handoff) Stats() Stats { return h.stats.snapshot() }

// Worker is the hand-off's record of one worker with a channel.
type Worker struct {
	ch    *ipc.Channel
	id    int // herd's worker id, for the logs
	slot  int
	tok   uint32 // its channel's poller token, 0 once detached
	ended func(error)

	taken atomic.Uint64 // connections it took (answered accepted: true)

	// Under Handoff.mu.
	limit        uint64    // connections it may take in all, 0 for no limit
	full         func()    // called once the limit is reached
	disconnected bool      // gets no more connections
	rr           *conn     // its unanswered newconn
	count        int       // connections handed to it (fairness)
	hold         time.Time // passed over until then (it refused one)
}

// Served reports whether the worker has taken a connection herd handed it.
func (w *Worker) Served() bool { return w.taken.Load() > 0 }

// Taken is how many connections the worker has taken from herd.
func (w *Worker) Taken() uint64 { return w.taken.Load() }

// Attach has the poller read ch, the channel of worker id of slot: the
// replies to newconns are applied there, every other message goes to
// deliver, in order, on the poller's goroutine (deliver must not block for
// long). When the channel ends (EOF, or a *ipc.ProtocolError) the worker
// gets no more connections and ended is called once, also on the poller.
func (h *Handoff) Attach(ch *ipc.Channel, id, slot int, deliver func(ipc.Message), ended func(error)) (*Worker, error) {
	if h.poll == nil {
		return nil, errors.New("handoff: not started")
	}
	w := &Worker{ch: ch, id: id, slot: slot, ended: ended}
	r, err := ch.NewReader(func(m ipc.Message) {
		if isNewconnReply(m) {
			h.newconnReply(w, m) // the hot path of rr: here, not on the supervisor
			return
		}
		deliver(m)
	})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.tok, err = h.poll.add(pollItem{fd: ch.FD(), w: w, r: r}); err != nil {
		return nil, err
	}
	return w, nil
}

// channelEnded runs on the poller when w's channel ends.
func (h *Handoff) channelEnded(w *Worker, err error) {
	h.Disconnect(w)
	w.ended(err)
}

// Disconnect gives w no more connections (herd asked it to stop, or its
// channel ended). An unanswered newconn stays with w until its reply, or
// its exit, settles it.
func (h *Handoff) Disconnect(w *Worker) {
	h.mu.Lock()
	w.disconnected = true
	h.mu.Unlock()
}

// Limit lets w take at most n connections in all: once it has, it gets no
// more and full is called, on the poller (full must not block).
func (h *Handoff) Limit(w *Worker, n uint64, full func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.limit, w.full = n, full
}

// Detach takes w's channel out of the poller; the caller closes the
// channel afterwards. With exited set, w's process has gone, and with it
// every socket it held: its unanswered connection goes to another worker
// if w had neither read from it nor written to it, and is closed otherwise
// (see untouched). w must have left every server.
func (h *Handoff) Detach(w *Worker, exited bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.disconnected = true
	if w.tok != 0 {
		h.poll.remove(w.tok)
		w.tok = 0
	}
	if exited && w.rr != nil {
		h.takeBackDeadLocked(w)
	}
}

// Busy reports whether some connection still waits in herd: queued, or
// sent to a worker of a server that has not answered.
func (h *Handoff) Busy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for srv := range h.servers {
		if len(srv.queue) > 0 {
			return true
		}
		for _, w := range srv.order {
			if w.rr != nil {
				return true
			}
		}
	}
	return false
}
