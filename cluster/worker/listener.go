package worker

import (
	"net"
	"sync"
)

// rrBacklog bounds the connections herd handed over that Accept has not
// taken yet. Past it a newconn is answered accepted:false and herd gives the
// connection to another worker, as a full listen backlog would push it
// elsewhere. It is node's default backlog.
const rrBacklog = 511

// rrListener is a round-robin server (child.js rr): herd owns the listening
// socket and accepts; each connection arrives as a newconn handle, which the
// client puts in conns. Accept turns it into a net.Conn.
type rrListener struct {
	c          *client
	key        string
	indexesKey string
	index      int
	network    string
	addr       net.Addr

	conns chan int      // received connection fds, owned by the listener
	done  chan struct{} // closed by Close

	mu     sync.Mutex
	closed bool
}

func newRRListener(c *client, q query, r reply, indexesKey string, index int) *rrListener {
	return &rrListener{
		c: c, key: r.key, indexesKey: indexesKey, index: index,
		network: q.network, addr: r.rrAddr(q),
		conns: make(chan int, rrBacklog),
		done:  make(chan struct{}),
	}
}

// offer queues a connection fd for Accept; false (the caller keeps fd) if
// the listener is closed or its queue is full.
func (l *rrListener) offer(fd int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.conns <- fd:
		return true
	default:
		return false
	}
}

// Accept waits for the next connection herd hands to this worker.
func (l *rrListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	case fd := <-l.conns:
		conn, err := fileConn(fd)
		if err != nil {
			return nil, &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: err}
		}
		return conn, nil
	}
}

// Close stops the listener: Accept returns net.ErrClosed, connections not
// yet accepted are closed (their clients see a reset or EOF, as with a
// closed listening socket), later newconns are refused, and herd is told
// (close). Close is idempotent.
func (l *rrListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	for drained := false; !drained; {
		select {
		case fd := <-l.conns:
			closeFD(fd)
		default:
			drained = true
		}
	}
	l.mu.Unlock()
	l.c.release(l.key, l.indexesKey, l.index)
	return nil
}

// Addr is the address herd bound (the reply's sockname), or the socket path.
func (l *rrListener) Addr() net.Addr { return l.addr }

// sharedListener is a server on a socket herd sent (child.js shared): the
// kernel spreads connections over every process that accepts on it (none),
// or it is this worker's own SO_REUSEPORT socket (reuseport). Accept is the
// socket's own; Close also tells herd.
type sharedListener struct {
	net.Listener
	c          *client
	key        string
	indexesKey string
	index      int
	once       sync.Once
}

// Close closes this process's copy of the socket and tells herd (close).
// Later calls return nil.
func (l *sharedListener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.Listener.Close()
		l.c.release(l.key, l.indexesKey, l.index)
	})
	return err
}
