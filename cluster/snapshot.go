package cluster

import "time"

// State is where a worker is in its life, as in Node's cluster module.
type State string

const (
	StateStarting  State = "starting"  // process being created
	StateOnline    State = "online"    // process running
	StateListening State = "listening" // serving
	StateStopping  State = "stopping"  // asked to stop, not yet gone
	StateDead      State = "dead"      // exited
)

// WorkerInfo is one worker in a Snapshot.
type WorkerInfo struct {
	ID, Index, Pid int
	State          State
	Started        time.Time
}

// Snapshot is the supervisor's state at one moment. It is never modified
// after it is published, so any goroutine may read it.
type Snapshot struct {
	Time     time.Time
	Desired  int
	Workers  []WorkerInfo
	Started  int // workers ever started
	Stopping bool
}

// Snapshot returns the state the supervisor published last.
func (s *Supervisor) Snapshot() *Snapshot { return s.snap.Load() }

func (s *Supervisor) publish() {
	snap := &Snapshot{Time: time.Now(), Desired: s.desired, Started: s.started, Stopping: s.stopping}
	s.eachWorker(func(w *worker) {
		snap.Workers = append(snap.Workers, WorkerInfo{ID: w.id, Index: w.slot.index, Pid: w.pid, State: w.state, Started: w.start})
	})
	s.snap.Store(snap)
}
