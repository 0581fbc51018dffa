package health

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/herd-sh/herd/cluster"
)

// Status is the JSON body of /status: a summary for people first, then
// the probe results, then the snapshot it was all computed from.
type Status struct {
	// Version is herd's version (Options.Version).
	Version string `json:"version"`
	// Policy is HERD_SCHED_POLICY; HandingOut says whether herd accepts and
	// hands out connections itself (rr; auto once a worker asked through
	// Node's cluster protocol) rather than the workers accepting.
	Policy     cluster.Policy `json:"policy"`
	HandingOut bool           `json:"handing_out"`
	// CPU is the CPU budget and its source; null when HERD_WORKERS is a
	// number.
	CPU *cluster.CPUInfo `json:"cpu"`
	// Desired is how many workers herd wants; Actual, how many worker
	// processes run now (more than Desired during a rolling restart);
	// Listening, how many of them listen.
	Desired   int `json:"desired"`
	Actual    int `json:"actual"`
	Listening int `json:"listening"`
	// Started, Ready and Live are the results of /startupz, /readyz and
	// /livez at the time of the request.
	Started bool `json:"started"`
	Ready   bool `json:"ready"`
	Live    bool `json:"live"`
	// Reasons holds, for each failing probe ("started", "ready", "live"),
	// its failed checks' reasons joined by "; ".
	Reasons map[string]string `json:"reasons,omitempty"`
	// Workers has one entry per worker process, and one per slot that has
	// none (state dead: waiting for a restart, or finished), by slot.
	Workers []WorkerStatus `json:"workers"`
	// Connections are the rr hand-off totals; null when not known.
	Connections *Connections `json:"connections"`
	// Memory is the container's memory budget, working set and
	// watermarks; Recycles, the workers replaced for memory or requests.
	Memory   cluster.MemoryInfo `json:"memory"`
	Recycles map[string]uint64  `json:"recycles"`
	// Checks holds every check of each probe, under the keys of Reasons.
	Checks map[string][]Check `json:"checks"`
	// Snapshot is the supervisor's state the results were computed from;
	// null before the first publish.
	Snapshot *cluster.Snapshot `json:"snapshot"`
}

// WorkerStatus is one worker (or one empty slot) in /status.
type WorkerStatus struct {
	// Slot is the worker's stable index, 0..N-1 (HERD_WORKER_INDEX).
	Slot int `json:"slot"`
	// ID (HERD_WORKER_ID) and Pid are 0 for a slot without a worker.
	ID      int           `json:"id"`
	Pid     int           `json:"pid"`
	State   cluster.State `json:"state"`
	Started time.Time     `json:"started,omitzero"`
	// Listening is when the worker last became listening.
	Listening time.Time `json:"listening,omitzero"`
	// Restarts counts the slot's restarts after failures.
	Restarts int `json:"restarts"`
	// LastExit is how the slot's previous worker ended; null if none has.
	LastExit *cluster.Exit `json:"last_exit"`
	// HandedOff counts the connections herd handed to this slot's workers
	// (rr), since herd started.
	HandedOff uint64 `json:"handed_off"`
	// Status is the last STATUS= line the worker sent over sd_notify.
	Status string `json:"status"`
	// Memory is the worker's memory at the last reading (PSS of its
	// process group, bytes).
	Memory int64 `json:"memory"`
	// NextStart is when the slot's pending restart is due.
	NextStart time.Time `json:"next_start,omitzero"`
}

// Connections are the round-robin hand-off's totals since herd started.
type Connections struct {
	// Accepted counts connections herd accepted itself.
	Accepted uint64 `json:"accepted"`
	// HandedOff counts those a worker took; Refused, the hand-offs a
	// worker declined (the connection went to another).
	HandedOff uint64 `json:"handed_off"`
	Refused   uint64 `json:"refused"`
	// Queued is how many wait in herd for a free worker now.
	Queued int `json:"queued"`
}

// newStatus builds the body of /status from what the probes judged.
func (h *handler) newStatus(s *cluster.Snapshot, now time.Time) Status {
	st := Status{Version: h.opts.Version, Snapshot: s, Checks: make(map[string][]Check, 3), Workers: []WorkerStatus{}}
	var checks []Check
	st.Started, checks = startup(s)
	st.note("started", st.Started, checks)
	st.Ready, checks = ready(s, h.opts, now)
	st.note("ready", st.Ready, checks)
	st.Live, checks = live(s, h.opts, now, h.created)
	st.note("live", st.Live, checks)
	var handed map[int]uint64
	if h.opts.Handoffs != nil {
		t := h.opts.Handoffs()
		handed = t.HandedOff
		st.Connections = &Connections{Accepted: t.Accepted, Refused: t.Refused, Queued: t.Queued}
		for _, n := range t.HandedOff {
			st.Connections.HandedOff += n
		}
	}
	if s == nil {
		return st
	}
	st.Policy, st.CPU, st.Desired, st.Actual, st.Listening = s.Policy, s.CPU, s.Desired, len(s.Workers), s.Listening()
	st.HandingOut = s.HandingOut
	st.Memory, st.Recycles = s.Memory, s.Recycles
	st.Workers = workerRows(s, handed)
	return st
}

// workerRows joins each worker with its slot and hand-off total, adds a
// dead row for each slot without a worker, and orders them by slot, then
// by worker id (a replacement after the worker it replaces).
func workerRows(s *cluster.Snapshot, handed map[int]uint64) []WorkerStatus {
	slots := make(map[int]cluster.SlotInfo, len(s.Slots))
	for _, sl := range s.Slots {
		slots[sl.Index] = sl
	}
	rows := make([]WorkerStatus, 0, len(s.Workers)+1)
	has := make(map[int]bool, len(s.Workers))
	for _, w := range s.Workers {
		sl := slots[w.Index]
		has[w.Index] = true
		rows = append(rows, WorkerStatus{Slot: w.Index, ID: w.ID, Pid: w.Pid, State: w.State, Started: w.Started,
			Listening: w.Listening, Restarts: sl.Restarts, LastExit: sl.LastExit, HandedOff: handed[w.Index],
			Status: w.Status, Memory: w.Memory, NextStart: sl.NextStart})
	}
	for _, sl := range s.Slots {
		if !has[sl.Index] {
			rows = append(rows, WorkerStatus{Slot: sl.Index, State: cluster.StateDead, Restarts: sl.Restarts,
				LastExit: sl.LastExit, HandedOff: handed[sl.Index], NextStart: sl.NextStart})
		}
	}
	slices.SortStableFunc(rows, func(a, b WorkerStatus) int {
		return cmp.Or(cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.ID, b.ID))
	})
	return rows
}

func (st *Status) note(probe string, ok bool, checks []Check) {
	st.Checks[probe] = checks
	if !ok {
		if st.Reasons == nil {
			st.Reasons = make(map[string]string, 3)
		}
		st.Reasons[probe] = strings.Join(reasons(checks), "; ")
	}
}

func (h *handler) writeStatus(w http.ResponseWriter, r *http.Request, s *cluster.Snapshot, now time.Time) {
	st := h.newStatus(s, now)
	code := http.StatusOK
	if s == nil {
		code = http.StatusServiceUnavailable
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		writeText(w, r, http.StatusInternalServerError, "status: "+err.Error()+"\n")
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, r, code, body)
}
