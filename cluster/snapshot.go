package cluster

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/herd-sh/herd/cluster/handoff"
	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/cluster/memory"
	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
	"golang.org/x/sys/unix"
)

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

// States lists every State in the order of a worker's life.
var States = []State{StateStarting, StateOnline, StateListening, StateDraining, StateStopping, StateDead}

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
	// Memory is its process group's memory at the last reading (PSS,
	// bytes); 0 before the first.
	Memory int64 `json:"memory,omitempty"`
}

// MemoryInfo is the container's memory as herd last read it.
type MemoryInfo struct {
	// Limit is the memory budget, 0 when none is known; Source says where
	// it came from (cgroup-v1, cgroup-v2, limit, none).
	Limit  int64  `json:"limit"`
	Source string `json:"source"`
	// WorkingSet is the limiting cgroup's usage less inactive file pages.
	WorkingSet int64 `json:"working_set"`
	// High and Critical are the watermarks, 0 when off.
	High     int64 `json:"high"`
	Critical int64 `json:"critical"`
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
	// LastExit is how the slot's last worker to exit ended; nil while none
	// has.
	LastExit *Exit `json:"last_exit,omitempty"`
}

// Exit is how one worker ended, as wait4 reported it.
type Exit struct {
	Time time.Time `json:"time"`
	ID   int       `json:"id"`
	Pid  int       `json:"pid"`
	// Code is the exit status, or 128+N when signal N killed the worker
	// (the shell's rule, which herd's own exit code follows).
	Code int `json:"code"`
	// Signal names the signal that killed the worker ("SIGKILL"); empty
	// when it exited on its own.
	Signal string `json:"signal,omitempty"`
	// OOM is set when the kernel's OOM killer ended it.
	OOM bool `json:"oom,omitempty"`
	// Memory is its size at the last reading before it ended, bytes.
	Memory int64 `json:"memory,omitempty"`
}

// String is "exit 3" or "signal SIGKILL".
func (e *Exit) String() string {
	if e.OOM {
		return "killed by the OOM killer at " + memory.Bytes(e.Memory)
	}
	if e.Signal != "" {
		return "signal " + e.Signal
	}
	return fmt.Sprintf("exit %d", e.Code)
}

// Exit reasons: the labels of ExitCounts, from a fixed set.
const (
	ExitSuccess = "success" // exit status 0
	ExitFailure = "failure" // a non-zero exit status
	ExitSignal  = "signal"  // killed by a signal
	ExitOOM     = "oom"     // killed by the kernel's OOM killer
)

// ExitCounts counts worker exits by reason since herd started.
type ExitCounts struct {
	Success uint64 `json:"success"`
	Failure uint64 `json:"failure"`
	Signal  uint64 `json:"signal"`
	OOM     uint64 `json:"oom"`
}

// Total is the number of exits of every reason.
func (c ExitCounts) Total() uint64 { return c.Success + c.Failure + c.Signal + c.OOM }

// CPUInfo is the CPU budget the worker count follows (cluster/cpus).
type CPUInfo struct {
	// CPUs is the budget after the reserve, in CPUs (1.5 for a quota of
	// 150 ms every 100 ms).
	CPUs float64 `json:"cpus"`
	// Available is the budget before the reserve.
	Available float64 `json:"available"`
	// Source is what decided it: affinity, cgroup-v1, cgroup-v2 or request.
	Source string `json:"source"`
	// Workers is the worker count the budget gives.
	Workers int `json:"workers"`
}

// ListenerInfo is the accept queue of one TCP listening socket herd holds,
// from getsockopt(TCP_INFO): for a socket in LISTEN state Linux reports
// the connections waiting to be accepted in tcpi_unacked and the backlog
// in tcpi_sacked.
type ListenerInfo struct {
	// Address is the bound address ("127.0.0.1:8080", "[::]:8080").
	Address string `json:"address"`
	// Slot is the worker slot owning the socket under PolicyReuseport, -1
	// for a socket every worker shares.
	Slot int `json:"slot"`
	// Queue counts the connections waiting in the accept queue.
	Queue int `json:"queue"`
	// Limit is the accept queue's length (listen(2)'s backlog, capped by
	// net.core.somaxconn).
	Limit int `json:"limit"`
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
	// Exits counts worker exits by reason.
	Exits ExitCounts `json:"exits"`
	// Recycles counts workers replaced for their memory or requests, by
	// reason (RecycleReasons).
	Recycles map[string]uint64 `json:"recycles"`
	// Memory is the container's memory.
	Memory MemoryInfo `json:"memory"`
	// StartedUp is set once every worker of the first cohort has been
	// listening at least once.
	StartedUp bool `json:"started_up"`
	// LastListening is the last moment some worker was listening; zero if
	// none ever was.
	LastListening time.Time `json:"last_listening,omitzero"`
	// Draining is set from the stop signal on: herd no longer wants traffic.
	Draining bool `json:"draining"`
	// Policy is HERD_SCHED_POLICY.
	Policy Policy `json:"policy"`
	// HandingOut is set when herd accepts and hands out connections
	// itself: always under rr, under auto once a worker asked for an
	// address through Node's cluster protocol.
	HandingOut bool `json:"handing_out"`
	// CPU is the CPU budget; nil when HERD_WORKERS set the count by hand.
	CPU *CPUInfo `json:"cpu"`
	// Listeners are the accept queues of herd's TCP listening sockets
	// (HERD_LISTEN's, or each slot's under PolicyReuseport), read at most
	// every queueEvery, so up to about a Heartbeat old; sockets herd has
	// closed (from the stop on) are left out.
	Listeners []ListenerInfo `json:"listeners"`
}

// Heartbeat is the longest the supervisor goes without publishing.
const Heartbeat = time.Second

// queueEvery is how often the supervisor reads its listeners' accept
// queues while it publishes: one getsockopt per socket, kept off the
// publish that follows every event.
const queueEvery = 200 * time.Millisecond

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

// Summary describes the workers' lives in a few lines for a person: what
// was started and restarted, how the workers ended, and each slot's last
// exit (at most maxSlots of them). herd's termination message carries it.
func (s *Snapshot) Summary(maxSlots int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "workers: %d desired, %d started, %d restarts after failure; exits: %d with code 0, %d non-zero, %d by signal",
		s.Desired, s.Started, s.Restarts, s.Exits.Success, s.Exits.Failure, s.Exits.Signal)
	if s.Exits.OOM > 0 {
		fmt.Fprintf(&b, ", %d by the OOM killer", s.Exits.OOM)
	}
	b.WriteString("\n")
	b.WriteString(s.memorySummary())
	var last []string
	shown := 0
	for _, sl := range s.Slots {
		if sl.LastExit == nil {
			continue
		}
		if shown == maxSlots {
			last = append(last, "...")
			break
		}
		shown++
		e := sl.LastExit
		last = append(last, fmt.Sprintf("slot %d worker %d (pid %d) %s", sl.Index, e.ID, e.Pid, e))
	}
	if len(last) > 0 {
		b.WriteString("last exits: " + strings.Join(last, "; ") + "\n")
	}
	return b.String()
}

// Snapshot returns the state the supervisor published last.
func (s *Supervisor) Snapshot() *Snapshot { return s.snap.Load() }

func (s *Supervisor) publish() {
	snap := &Snapshot{
		Time:       time.Now(),
		Desired:    s.desired(),
		Started:    s.started,
		Restarts:   s.restarts,
		Exits:      s.exitCounts,
		StartedUp:  s.startedUp,
		Draining:   s.stop.draining,
		Policy:     s.cfg.Policy,
		HandingOut: s.cfg.Policy == PolicyRR || s.handingOut,
		Workers:    make([]WorkerInfo, 0, len(s.workers)),
		Slots:      make([]SlotInfo, 0, len(s.slots)),
	}
	if b := s.budget; b != nil {
		snap.CPU = &CPUInfo{CPUs: b.Budget.Float(), Available: b.Available.Float(), Source: b.Source, Workers: b.Workers}
	}
	s.eachWorker(func(w *worker) {
		if w.state == StateListening {
			s.lastListening = snap.Time
		}
		snap.Workers = append(snap.Workers, WorkerInfo{ID: w.id, Index: w.slot.index, Pid: w.pid, State: w.state,
			Started: w.start, Listening: w.listening, Status: w.status, Memory: w.memory})
	})
	snap.LastListening = s.lastListening
	snap.Recycles = maps.Clone(s.recycles)
	m := s.cfg.Memory
	snap.Memory = MemoryInfo{Limit: m.Limit, Source: m.Source, WorkingSet: s.workingSet, High: m.High, Critical: m.Critical}
	for _, sl := range s.slots {
		info := SlotInfo{Index: sl.index, Restarts: sl.restarts, Failing: sl.unstable > 0, CrashLoop: sl.capped, LastExit: sl.lastExit}
		if sl.timer != nil {
			info.NextStart = sl.due
		}
		snap.Slots = append(snap.Slots, info)
	}
	if d := snap.Time.Sub(s.queuesRead); d >= queueEvery || d < 0 {
		s.queues, s.queuesRead = s.readQueues(), snap.Time
	}
	snap.Listeners = s.queues
	s.snap.Store(snap)
}

// noteExit records how w ended, for the Snapshot. The loop calls it for
// every worker exit, whatever follows.
func (s *Supervisor) noteExit(w *worker, st reaper.Status, oom bool) {
	e := &Exit{Time: time.Now(), ID: w.id, Pid: w.pid, Code: st.Code(), Memory: w.memory}
	switch {
	case oom:
		e.Signal, e.OOM = "SIGKILL", true
		s.exitCounts.OOM++
	case st.Wait.Signaled():
		e.Signal = "SIG" + initproc.SignalName(st.Wait.Signal())
		s.exitCounts.Signal++
	case e.Code == 0:
		s.exitCounts.Success++
	default:
		s.exitCounts.Failure++
	}
	w.slot.lastExit = e
}

// tcpListen is TCP_LISTEN, tcpi_state of a listening socket (Linux's
// include/net/tcp_states.h).
const tcpListen = 10

// readQueues reads the accept queue of every open TCP socket herd listens
// on. It runs on the loop, which alone opens and closes those sockets, so
// an fd it reads is never one closed and reused meanwhile. It returns a
// new slice: a published one is never modified.
func (s *Supervisor) readQueues() []ListenerInfo {
	var out []ListenerInfo
	add := func(l *listen.Listener, slot int) {
		if l.FD < 0 || l.Spec.Network == "unix" {
			return
		}
		ti, err := unix.GetsockoptTCPInfo(l.FD, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil || ti.State != tcpListen {
			return
		}
		addr := l.Spec.Address
		if l.Addr != nil {
			addr = l.Addr.String()
		}
		out = append(out, ListenerInfo{Address: addr, Slot: slot, Queue: int(ti.Unacked), Limit: int(ti.Sacked)})
	}
	for _, l := range s.cfg.Listeners {
		add(l, -1)
	}
	for _, sl := range s.slots {
		for _, l := range sl.sockets {
			add(l, sl.index)
		}
	}
	return out
}

// Handoffs returns the hand-off's totals so far (rr); any goroutine may
// call it.
func (s *Supervisor) Handoffs() handoff.Stats { return s.hand.Stats() }

// memorySummary is the Summary's memory line: the limit, the working set,
// and the recycles by reason; empty when herd knew no limit and recycled
// nothing.
func (s *Snapshot) memorySummary() string {
	var recycled []string
	for _, r := range RecycleReasons {
		if n := s.Recycles[r]; n > 0 {
			recycled = append(recycled, fmt.Sprintf("%d %s", n, r))
		}
	}
	if s.Memory.Limit == 0 && len(recycled) == 0 {
		return ""
	}
	line := "memory: "
	if s.Memory.Limit > 0 {
		line += fmt.Sprintf("limit %s (%s), working set %s at exit", memory.Bytes(s.Memory.Limit), s.Memory.Source, memory.Bytes(s.Memory.WorkingSet))
	} else {
		line += "no limit"
	}
	if len(recycled) > 0 {
		line += "; recycled: " + strings.Join(recycled, ", ")
	}
	return line + "\n"
}
