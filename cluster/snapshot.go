package cluster

import "time"

// State is where a worker is in its life, as in Node's cluster module.
type State string

const (
	StateStarting  State = "starting"  // process being created
	StateOnline    State = "online"    // process running, not yet serving
	StateListening State = "listening" // serving
	StateDraining  State = "draining"  // said it is stopping (sd_notify STOPPING=1)
	StateStopping  State = "stopping"  // asked to stop, not yet gone
	StateDead      State = "dead"      // exited
)

// WorkerInfo is one worker in a Snapshot.
type WorkerInfo struct {
	ID      int       `json:"id"`
	Index   int       `json:"index"`
	Pid     int       `json:"pid"`
	State   State     `json:"state"`
	Started time.Time `json:"started"`
	// Listening is when the worker last became listening; zero if never.
	Listening time.Time `json:"listening,omitzero"`
	// Status is the last STATUS= the worker sent over sd_notify.
	Status string `json:"status,omitempty"`
}

// SlotInfo is one worker slot: a place for one worker, kept across its
// restarts.
type SlotInfo struct {
	Index int `json:"index"`
	// Restarts counts restarts of this slot after failures.
	Restarts int `json:"restarts"`
	// Failing is set while the slot's worker keeps failing faster than the
	// stable uptime: its restarts are being spaced out.
	Failing bool `json:"failing"`
	// CrashLoop is set once the restart delay has reached its cap.
	CrashLoop bool `json:"crash_loop"`
	// NextStart is when a restart waiting out its delay is due; zero if none.
	NextStart time.Time `json:"next_start,omitzero"`
}

// Snapshot is the supervisor's state at one moment. It is never modified
// after it is published, so any goroutine may read it.
type Snapshot struct {
	// Time is when the loop published it; the loop republishes at least
	// every Heartbeat, so an old Time means the loop is stuck.
	Time    time.Time    `json:"time"`
	Desired int          `json:"desired"`
	Workers []WorkerInfo `json:"workers"`
	Slots   []SlotInfo   `json:"slots"`
	// Started counts workers ever started; Restarts, restarts after failure.
	Started  int `json:"started"`
	Restarts int `json:"restarts"`
	// StartedUp is set once every worker of the first cohort has been
	// listening at least once.
	StartedUp bool `json:"started_up"`
	// LastListening is the last moment some worker was listening; zero if
	// none ever was.
	LastListening time.Time `json:"last_listening,omitzero"`
	// Draining is set from the stop signal on: herd no longer wants traffic.
	Draining bool `json:"draining"`
}

// Heartbeat is the longest the supervisor goes without publishing.
const Heartbeat = time.Second

// Listening counts the workers that are listening now.
func (s *Snapshot) Listening() int {
	n := 0
	for _, w := range s.Workers {
		if w.State == StateListening {
			n++
		}
	}
	return n
}

// Snapshot returns the state the supervisor published last.
func (s *Supervisor) Snapshot() *Snapshot { return s.snap.Load() }

func (s *Supervisor) publish() {
	snap := &Snapshot{
		Time:      time.Now(),
		Desired:   s.desired(),
		Started:   s.started,
		Restarts:  s.restarts,
		StartedUp: s.startedUp,
		Draining:  s.stop.draining,
		Workers:   make([]WorkerInfo, 0, len(s.workers)),
		Slots:     make([]SlotInfo, 0, len(s.slots)),
	}
	s.eachWorker(func(w *worker) {
		if w.state == StateListening {
			s.lastListening = snap.Time
		}
		snap.Workers = append(snap.Workers, WorkerInfo{ID: w.id, Index: w.slot.index, Pid: w.pid, State: w.state,
			Started: w.start, Listening: w.listening, Status: w.status})
	})
	snap.LastListening = s.lastListening
	for _, sl := range s.slots {
		info := SlotInfo{Index: sl.index, Restarts: sl.restarts, Failing: sl.unstable > 0, CrashLoop: sl.capped}
		if sl.timer != nil {
			info.NextStart = sl.due
		}
		snap.Slots = append(snap.Slots, info)
	}
	s.snap.Store(snap)
}
