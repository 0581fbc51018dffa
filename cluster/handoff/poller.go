package handoff

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/herd-sh/herd/cluster/ipc"
	"golang.org/x/sys/unix"
)

// poller is the hand-off's epoll set: the workers' cluster channels and
// rr's accepting sockets, served by one goroutine that blocks in
// epoll_wait (see the package comment for why not Go's netpoller).
type poller struct {
	epfd int
	wake int // eventfd: written by stop and interrupt
	done chan struct{}

	stopping atomic.Bool
	asleep   atomic.Bool // run is in epoll_wait (or about to be)

	mu    sync.Mutex
	next  uint32
	items map[uint32]pollItem
}

// pollItem is what one registration serves.
type pollItem struct {
	fd  int
	w   *Worker // a worker's channel
	r   *ipc.Reader
	srv *Server // rr: a server's accepting socket
}

// yieldEvery is how often the poller's goroutine yields while it works
// (see run): under the runtime's 10 ms preemption period (forcePreemptNS,
// runtime/proc.go).
const yieldEvery = 5 * time.Millisecond

// wakeToken marks the eventfd; registrations count from 1.
const wakeToken = 0

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &poller{epfd: epfd, wake: wake, done: make(chan struct{}), items: map[uint32]pollItem{}}, nil
}

// add registers it (level-triggered: whatever is left unread is reported
// again) and returns its token.
func (p *poller) add(it pollItem) (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	if p.next == wakeToken {
		p.next++
	}
	tok := p.next
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, it.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tok)}); err != nil {
		return 0, err
	}
	p.items[tok] = it
	return tok, nil
}

// watch turns the reporting of fd (registered as tok) on or off.
func (p *poller) watch(fd int, tok uint32, on bool) error {
	var events uint32
	if on {
		events = unix.EPOLLIN
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: int32(tok)})
}

// remove unregisters tok, if it still is. Call it before the fd is closed.
func (p *poller) remove(tok uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	it, ok := p.items[tok]
	if !ok {
		return
	}
	delete(p.items, tok)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, it.fd, nil)
}

func (p *poller) lookup(tok uint32) (pollItem, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	it, ok := p.items[tok]
	return it, ok
}

// run serves events until stop.
func (p *poller) run(h *Handoff) {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	yielded := time.Now()
	for {
		// A goroutine that never passes through the scheduler looks to the
		// runtime's monitor like one running for too long: every 10 ms it
		// takes the P away from the system call, and resets its own
		// polling interval to 20 µs, which under load costs more CPU than
		// the connections. A yield every few milliseconds of work avoids
		// both; an idle poller does not yield (and costs nothing).
		now := time.Now()
		if now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = now
		}
		p.asleep.Store(true)
		n, err := unix.EpollWait(p.epfd, events, h.retryTimeout(now))
		p.asleep.Store(false)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			h.log.Error("poller: epoll_wait failed", "err", err)
			return
		}
		for {
			h.retryDue(time.Now())
			if !p.serve(h, events[:n]) {
				return
			}
			// Under load the next answers arrive while herd hands these
			// out: take them without going to sleep, which would cost a
			// context switch and, for the blocking system call, the P.
			if n = p.poll(events); n <= 0 {
				break
			}
		}
	}
}

// poll is epoll_wait that does not wait: the events ready now, without
// the blocking system call's hand-over of the P to the runtime.
func (p *poller) poll(events []unix.EpollEvent) int {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(r)
}

// serve handles what epoll_wait reported; false when the poller stops.
func (p *poller) serve(h *Handoff, events []unix.EpollEvent) bool {
	for _, ev := range events {
		tok := uint32(ev.Fd)
		if tok == wakeToken {
			var buf [8]byte
			_, _ = unix.Read(p.wake, buf[:])
			if p.stopping.Load() {
				return false
			}
			continue
		}
		it, ok := p.lookup(tok)
		switch {
		case !ok:
			// removed after epoll_wait returned it
		case it.r != nil:
			if err := it.r.ReadReady(); err != nil {
				p.remove(tok) // level-triggered: EOF would be reported forever
				h.channelEnded(it.w, err)
			}
		case it.srv != nil:
			h.acceptReady(it.srv)
		}
	}
	return true
}

// interrupt wakes run from epoll_wait, if it is there, so that it sleeps
// again with a new timeout.
func (p *poller) interrupt() {
	if p != nil && p.asleep.Load() {
		p.kick()
	}
}

func (p *poller) kick() {
	one := [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}

// stop ends run and closes the epoll set. Every registration must have
// been removed or its fd closed.
func (p *poller) stop() {
	p.stopping.Store(true)
	p.kick()
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wake)
}
