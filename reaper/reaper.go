package reaper

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Status is what wait4 reported for one child.
type Status struct {
	Pid    int
	Wait   unix.WaitStatus
	Rusage unix.Rusage
}

// Code is the exit code a shell would report for this status: the exit
// status itself, or 128+signal when the process was killed by a signal.
func (s Status) Code() int { return ExitCode(s.Wait) }

// ExitCode turns a wait status into a shell-style exit code.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Owner receives the status of a pid it registered. It runs on the reaper's
// goroutine, outside the lock, so it may call back into the Reaper, but it
// must not block for long: hand the status to a channel and return.
type Owner func(Status)

// Reaper owns wait4 for the whole process. The zero value is not usable; call
// New.
type Reaper struct {
	log *slog.Logger

	mu     sync.Mutex
	owners map[int]Owner

	orphans  atomic.Uint64
	children atomic.Bool // some child was alive at the end of the last drain
	kick     chan struct{}
}

// New returns a Reaper that logs orphans to log. Call Run to start draining.
func New(log *slog.Logger) *Reaper {
	r := &Reaper{log: log, owners: make(map[int]Owner), kick: make(chan struct{}, 1)}
	r.children.Store(true) // unknown until the first drain
	return r
}

// SafetyTick is how often the reaper drains even without a SIGCHLD.
const SafetyTick = time.Second

// Run drains exited children on every SIGCHLD and every SafetyTick until ctx
// is done. It registers for SIGCHLD itself; call it before the first Spawn.
func (r *Reaper) Run(ctx context.Context) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	defer signal.Stop(sigchld)
	tick := time.NewTicker(SafetyTick)
	defer tick.Stop()
	for {
		r.Drain()
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		case <-tick.C:
		case <-r.kick:
		}
	}
}

// Spawn calls start with the reaper's lock held and registers the pid it
// returns with owner before any status can be collected. start must create
// exactly one child and must not wait for it.
func (r *Reaper) Spawn(start func() (pid int, err error), owner Owner) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, err
	}
	r.owners[pid] = owner
	r.children.Store(true)
	return pid, nil
}

// Drain collects every exited child now, dispatches the statuses in the order
// the kernel returned them, and reports whether any child is still alive (or
// not yet collected). It is safe to call from any goroutine.
func (r *Reaper) Drain() (childrenLeft bool) {
	var done []func()
	r.mu.Lock()
	for {
		var st Status
		pid, err := unix.Wait4(-1, &st.Wait, unix.WNOHANG, &st.Rusage)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			break
		}
		if err != nil {
			r.log.Error("reaper: wait4", "err", err)
			childrenLeft = true
			break
		}
		if pid == 0 {
			childrenLeft = true
			break
		}
		st.Pid = pid
		if owner, ok := r.owners[pid]; ok {
			delete(r.owners, pid)
			done = append(done, func() { owner(st) })
			continue
		}
		r.orphans.Add(1)
		r.log.Debug("orphan reaped", "pid", pid, "code", st.Code())
	}
	r.children.Store(childrenLeft)
	r.mu.Unlock()
	for _, f := range done {
		f()
	}
	return childrenLeft
}

// ChildrenLeft reports whether any child was alive, or exited but not yet
// collected, at the end of the last drain. Once it is false, only a new Spawn
// can make it true again: a process with no children has no descendants whose
// orphans could be reparented to it.
func (r *Reaper) ChildrenLeft() bool { return r.children.Load() }

// Kick asks Run to drain soon, without waiting for a signal or the tick.
func (r *Reaper) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Orphans is the number of processes reaped that no owner had registered.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }
