package health

import (
	"runtime"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/herd-sh/herd/cluster"
)

// Metric names. Every one starts with herd_, counters end in _total and
// carry their unit before it; labels are from small fixed sets or worker
// slot indexes (0..N-1), never pids, so no scrape grows the series set.
const (
	metricBuildInfo      = "herd_build_info"
	metricWorkers        = "herd_workers"
	metricDesired        = "herd_workers_desired"
	metricStarts         = "herd_worker_starts_total"
	metricRestarts       = "herd_worker_restarts_total"
	metricExits          = "herd_worker_exits_total"
	metricCPUBudget      = "herd_cpu_budget_cpus"
	metricAccepted       = "herd_connections_accepted_total"
	metricHandedOff      = "herd_connections_handed_off_total"
	metricRefused        = "herd_connections_refused_total"
	metricHandoffQueue   = "herd_handoff_queue_connections"
	metricAcceptQueue    = "herd_listener_accept_queue_connections"
	metricAcceptQueueMax = "herd_listener_accept_queue_limit_connections"
	metricOrphans        = "herd_orphans_reaped_total"
	metricDraining       = "herd_draining"
	metricHeartbeat      = "herd_heartbeat_timestamp_seconds"
	metricWorkerMemory   = "herd_worker_memory_bytes"
	metricWorkingSet     = "herd_memory_working_set_bytes"
	metricMemoryLimit    = "herd_memory_limit_bytes"
	metricWatermark      = "herd_memory_watermark_bytes"
	metricRecycles       = "herd_worker_recycles_total"
)

// collector turns what the supervisor published, and the hand-off and
// reaper totals, into metrics at scrape time: nothing is kept in two
// places, and a scrape never waits for the supervisor.
type collector struct {
	snap func() *cluster.Snapshot
	opts Options

	buildInfo, workers, desired, starts, restarts, exits, cpu,
	accepted, handedOff, refused, handoffQueue, acceptQueue, acceptQueueMax,
	orphans, draining, heartbeat,
	workerMemory, workingSet, memoryLimit, watermark, recycles *prometheus.Desc
}

func newCollector(snap func() *cluster.Snapshot, opts Options) *collector {
	d := prometheus.NewDesc
	return &collector{
		snap: snap,
		opts: opts,
		buildInfo: d(metricBuildInfo, "herd's version and the Go version that built it; the value is always 1.",
			[]string{"version", "goversion"}, nil),
		workers: d(metricWorkers, "Workers in each state (starting, online, listening, draining, stopping); dead counts the slots without a worker process, waiting for a restart or finished.",
			[]string{"state"}, nil),
		desired: d(metricDesired, "Workers herd wants running: HERD_WORKERS, or the CPU budget's count, plus SIGTTIN and minus SIGTTOU.", nil, nil),
		starts:  d(metricStarts, "Worker processes started since herd started.", nil, nil),
		restarts: d(metricRestarts, "Restarts of workers after a failure (HERD_RESTART), rolling restarts and scaling not included.",
			nil, nil),
		exits: d(metricExits, "Worker exits by reason: success (exit status 0), failure (non-zero exit status), signal (killed by a signal) or oom (killed by the kernel's OOM killer).",
			[]string{"reason"}, nil),
		cpu: d(metricCPUBudget, "The CPU budget the worker count follows, in CPUs, after HERD_CPU_RESERVE; source says what decided it (affinity, cgroup-v1, cgroup-v2, request). Absent when HERD_WORKERS is a number.",
			[]string{"source"}, nil),
		accepted: d(metricAccepted, "Connections herd accepted itself to hand to a worker (HERD_SCHED_POLICY=rr).", nil, nil),
		handedOff: d(metricHandedOff, "Connections a worker of each slot took from herd (rr).",
			[]string{"slot"}, nil),
		refused:      d(metricRefused, "Connections a worker declined, which herd then handed to another (rr).", nil, nil),
		handoffQueue: d(metricHandoffQueue, "Accepted connections waiting in herd for a free worker (rr).", nil, nil),
		acceptQueue: d(metricAcceptQueue, "Connections waiting in the kernel's accept queue of each TCP listening socket herd holds (TCP_INFO tcpi_unacked); slot is set for SO_REUSEPORT sockets.",
			[]string{"listener", "slot"}, nil),
		acceptQueueMax: d(metricAcceptQueueMax, "Length of the accept queue of each TCP listening socket herd holds (TCP_INFO tcpi_sacked: the listen backlog).",
			[]string{"listener", "slot"}, nil),
		orphans:   d(metricOrphans, "Processes herd reaped that it had not started (orphans reparented to herd).", nil, nil),
		draining:  d(metricDraining, "1 from the stop signal on (readiness fails), else 0.", nil, nil),
		heartbeat: d(metricHeartbeat, "When the supervisor last published its state, in seconds since the Unix epoch; it republishes at least every second.", nil, nil),
		workerMemory: d(metricWorkerMemory, "Memory of each slot's worker processes (proportional set size of every process in their groups), at the last reading.",
			[]string{"slot"}, nil),
		workingSet: d(metricWorkingSet, "The container's working set: its cgroup's memory usage less inactive file pages, as the kubelet counts it.", nil, nil),
		memoryLimit: d(metricMemoryLimit, "The container's memory budget; source says where it came from (cgroup-v1, cgroup-v2, limit). Absent when no limit is known.",
			[]string{"source"}, nil),
		watermark: d(metricWatermark, "The working set at which herd replaces the largest worker (mark high, HERD_MEMORY_HIGH) or stops it at once (critical, HERD_MEMORY_CRITICAL). Absent when off.",
			[]string{"mark"}, nil),
		recycles: d(metricRecycles, "Workers replaced for their memory or their requests, by reason: max-memory, memory-watermark, memory-critical, max-requests.",
			[]string{"reason"}, nil),
	}
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.workers, c.desired, c.starts, c.restarts, c.exits, c.cpu,
		c.accepted, c.handedOff, c.refused, c.handoffQueue, c.acceptQueue, c.acceptQueueMax,
		c.orphans, c.draining, c.heartbeat, c.workerMemory, c.workingSet, c.memoryLimit, c.watermark, c.recycles} {
		ch <- d
	}
}

// Collect reads the snapshot once and the totals once.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.buildInfo, 1, c.opts.Version, runtime.Version())
	if c.opts.Orphans != nil {
		counter(c.orphans, float64(c.opts.Orphans()))
	}
	s := c.snap()
	var slots []int
	if s != nil {
		for state, n := range workersByState(s) {
			gauge(c.workers, float64(n), string(state))
		}
		gauge(c.desired, float64(s.Desired))
		counter(c.starts, float64(s.Started))
		counter(c.restarts, float64(s.Restarts))
		counter(c.exits, float64(s.Exits.Success), cluster.ExitSuccess)
		counter(c.exits, float64(s.Exits.Failure), cluster.ExitFailure)
		counter(c.exits, float64(s.Exits.Signal), cluster.ExitSignal)
		counter(c.exits, float64(s.Exits.OOM), cluster.ExitOOM)
		c.collectMemory(s, gauge, counter)
		if s.CPU != nil {
			gauge(c.cpu, s.CPU.CPUs, s.CPU.Source)
		}
		for _, l := range s.Listeners {
			slot := ""
			if l.Slot >= 0 {
				slot = strconv.Itoa(l.Slot)
			}
			gauge(c.acceptQueue, float64(l.Queue), l.Address, slot)
			gauge(c.acceptQueueMax, float64(l.Limit), l.Address, slot)
		}
		gauge(c.draining, boolValue(s.Draining))
		gauge(c.heartbeat, float64(s.Time.UnixNano())/1e9)
		for _, sl := range s.Slots {
			slots = append(slots, sl.Index)
		}
	}
	if c.opts.Handoffs != nil {
		h := c.opts.Handoffs()
		counter(c.accepted, float64(h.Accepted))
		counter(c.refused, float64(h.Refused))
		gauge(c.handoffQueue, float64(h.Queued))
		// Every current slot, even at 0, so that a rate over a new slot
		// starts from its first connection; and any slot scaled away
		// since, whose total stays.
		for _, i := range slots {
			counter(c.handedOff, float64(h.HandedOff[i]), strconv.Itoa(i))
		}
		for i, n := range h.HandedOff {
			if !slices.Contains(slots, i) {
				counter(c.handedOff, float64(n), strconv.Itoa(i))
			}
		}
	}
}

// collectMemory sends the memory metrics of s.
func (c *collector) collectMemory(s *cluster.Snapshot, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	bySlot := map[int]int64{}
	for _, w := range s.Workers {
		bySlot[w.Index] += w.Memory
	}
	for _, sl := range s.Slots {
		gauge(c.workerMemory, float64(bySlot[sl.Index]), strconv.Itoa(sl.Index))
	}
	m := s.Memory
	gauge(c.workingSet, float64(m.WorkingSet))
	if m.Limit > 0 {
		gauge(c.memoryLimit, float64(m.Limit), m.Source)
	}
	if m.High > 0 {
		gauge(c.watermark, float64(m.High), "high")
	}
	if m.Critical > 0 {
		gauge(c.watermark, float64(m.Critical), "critical")
	}
	for _, r := range cluster.RecycleReasons {
		counter(c.recycles, float64(s.Recycles[r]), r)
	}
}

// workersByState counts the workers in each state, every state present.
// A worker process is never dead (its exit removes it), so dead counts the
// slots that have no worker process.
func workersByState(s *cluster.Snapshot) map[cluster.State]int {
	n := make(map[cluster.State]int, len(cluster.States))
	for _, st := range cluster.States {
		n[st] = 0
	}
	has := make(map[int]bool, len(s.Workers))
	for _, w := range s.Workers {
		n[w.State]++
		has[w.Index] = true
	}
	for _, sl := range s.Slots {
		if !has[sl.Index] {
			n[cluster.StateDead]++
		}
	}
	return n
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry is /metrics' own registry (never the global one): herd's
// collector plus the process and Go runtime collectors.
func newRegistry(snap func() *cluster.Snapshot, opts Options) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(snap, opts),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}
