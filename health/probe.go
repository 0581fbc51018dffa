package health

import (
	"fmt"
	"strings"
	"time"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/handoff"
)

// Defaults used for Options fields left zero (or negative).
const (
	DefaultReadyMin      = 1
	DefaultLivenessGrace = 30 * time.Second
	DefaultStaleAfter    = 5 * time.Second
)

// Options are the probe rules' settings. A zero or negative field takes its
// default.
type Options struct {
	// ReadyMin (HERD_READY_MIN, default 1) is how many workers must be
	// listening for /readyz.
	ReadyMin int
	// LivenessGrace (HERD_LIVENESS_GRACE, default 30 s): after start-up,
	// /livez fails once no worker has been listening for longer than this.
	// Before the first snapshot, it is also how long /livez waits for one.
	LivenessGrace time.Duration
	// StaleAfter (default 5 s) is the age at which the supervisor's
	// heartbeat, Snapshot.Time, counts as stuck. The supervisor republishes
	// at least every cluster.Heartbeat.
	StaleAfter time.Duration
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time

	// Version is herd's version, for /status and herd_build_info.
	Version string
	// Handoffs, when set, returns the rr hand-off totals
	// (cluster.Supervisor.Handoffs) for /status and /metrics. It is called
	// once per request and must return at once.
	Handoffs func() handoff.Stats
	// Orphans, when set, returns how many orphans herd has reaped
	// (reaper.Reaper.Orphans) for /metrics.
	Orphans func() uint64
}

func (o Options) withDefaults() Options {
	if o.ReadyMin <= 0 {
		o.ReadyMin = DefaultReadyMin
	}
	if o.LivenessGrace <= 0 {
		o.LivenessGrace = DefaultLivenessGrace
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Check is one condition of a probe, as ?verbose lists it:
// "[+]heartbeat ok" or "[-]listening failed: <Reason>".
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Excluded is set when the request asked to skip the check
	// (?exclude=name): it then passes.
	Excluded bool `json:"excluded,omitempty"`
	// Reason says why the check failed; empty when it passed.
	Reason string `json:"reason,omitempty"`
}

// Check names.
const (
	checkHeartbeat = "heartbeat" // the supervisor loop is turning
	checkStarted   = "started"   // the first cohort has all listened once
	checkShutdown  = "shutdown"  // herd is not draining
	checkListening = "listening" // enough workers are listening
)

// noSnapshot is the reason of every check that needs a snapshot before the
// supervisor has published one.
const noSnapshot = "herd is starting: the supervisor has not published its state yet"

// startup is /startupz: pass once the first cohort has all been listening.
func startup(s *cluster.Snapshot) (bool, []Check) {
	return result(startedCheck(s))
}

// ready is /readyz: the supervisor is turning, herd has started up, is not
// draining, and at least ReadyMin workers are listening.
func ready(s *cluster.Snapshot, o Options, now time.Time) (bool, []Check) {
	if s == nil {
		return result(
			fail(checkHeartbeat, noSnapshot),
			fail(checkStarted, noSnapshot),
			pass(checkShutdown),
			fail(checkListening, noSnapshot),
		)
	}
	return result(
		heartbeatCheck(s, o, now),
		startedCheck(s),
		shutdownCheck(s),
		readyListeningCheck(s, o),
	)
}

// live is /livez: the supervisor is turning and, once herd has started up
// and unless it is draining, some worker has been listening within
// LivenessGrace. Before the first snapshot, live passes for LivenessGrace
// after created (when the handler was made).
func live(s *cluster.Snapshot, o Options, now, created time.Time) (bool, []Check) {
	if s == nil {
		hb := pass(checkHeartbeat)
		if wait := now.Sub(created); wait > o.LivenessGrace {
			hb = fail(checkHeartbeat, fmt.Sprintf("supervisor stuck: no state published %s after start (HERD_LIVENESS_GRACE=%s)",
				age(wait), o.LivenessGrace))
		}
		return result(hb, pass(checkListening))
	}
	return result(heartbeatCheck(s, o, now), liveListeningCheck(s, o, now))
}

func heartbeatCheck(s *cluster.Snapshot, o Options, now time.Time) Check {
	if s.Time.IsZero() {
		return fail(checkHeartbeat, "supervisor stuck: its state carries no heartbeat time")
	}
	if d := now.Sub(s.Time); d >= o.StaleAfter {
		return fail(checkHeartbeat, fmt.Sprintf("supervisor stuck: last heartbeat %s ago (limit %s)", age(d), o.StaleAfter))
	}
	return pass(checkHeartbeat)
}

func startedCheck(s *cluster.Snapshot) Check {
	if s == nil {
		return fail(checkStarted, noSnapshot)
	}
	if s.StartedUp {
		return pass(checkStarted)
	}
	return fail(checkStarted, withNotes(cohortProgress(s), s))
}

// cohortProgress says how far start-up is. The snapshot does not say which
// workers made up the first cohort, so this counts the slots whose current
// worker is or has been listening, out of Desired.
func cohortProgress(s *cluster.Snapshot) string {
	want := s.Desired
	if want <= 0 {
		want = len(s.Slots)
	}
	if want <= 0 {
		return "no worker of the first cohort has started yet"
	}
	listened := make(map[int]bool)
	for _, w := range s.Workers {
		if w.State == cluster.StateListening || !w.Listening.IsZero() {
			listened[w.Index] = true
		}
	}
	return fmt.Sprintf("%d of %d workers of the first cohort have listened", min(len(listened), want), want)
}

func shutdownCheck(s *cluster.Snapshot) Check {
	if s.Draining {
		return fail(checkShutdown, "draining: herd received a stop signal (SIGTERM or SIGINT)")
	}
	return pass(checkShutdown)
}

func readyListeningCheck(s *cluster.Snapshot, o Options) Check {
	n := s.Listening()
	if n >= o.ReadyMin {
		return pass(checkListening)
	}
	msg := fmt.Sprintf("%d %s listening, %d needed", n, plural(n, "worker", "workers"), o.ReadyMin)
	if s.Desired < o.ReadyMin {
		msg += fmt.Sprintf(" (HERD_READY_MIN=%d, but only %d desired)", o.ReadyMin, s.Desired)
	}
	return fail(checkListening, withNotes(msg, s))
}

func liveListeningCheck(s *cluster.Snapshot, o Options, now time.Time) Check {
	// A draining herd stays live: its workers stop listening on purpose.
	// Before start-up, /startupz is the judge.
	if s.Draining || !s.StartedUp || s.Listening() > 0 {
		return pass(checkListening)
	}
	last := lastListening(s)
	if last.IsZero() {
		return fail(checkListening, withNotes(fmt.Sprintf("no worker has been listening since start-up (HERD_LIVENESS_GRACE=%s)", o.LivenessGrace), s))
	}
	d := now.Sub(last)
	if d <= o.LivenessGrace {
		return pass(checkListening)
	}
	return fail(checkListening, withNotes(fmt.Sprintf("no worker has been listening for %s (HERD_LIVENESS_GRACE=%s)", age(d), o.LivenessGrace), s))
}

// lastListening is the last moment some worker is known to have been
// listening: Snapshot.LastListening, or later when a worker's own
// Listening time is later (each is a moment it was listening).
func lastListening(s *cluster.Snapshot) time.Time {
	last := s.LastListening
	for _, w := range s.Workers {
		if w.Listening.After(last) {
			last = w.Listening
		}
	}
	return last
}

// withNotes appends what the slots say about restarts: crash loops first,
// then slots whose restarts are being spaced out.
func withNotes(msg string, s *cluster.Snapshot) string {
	var loop, failing []string
	for _, sl := range s.Slots {
		switch {
		case sl.CrashLoop:
			loop = append(loop, fmt.Sprint(sl.Index))
		case sl.Failing:
			failing = append(failing, fmt.Sprint(sl.Index))
		}
	}
	if len(loop) > 0 {
		msg += fmt.Sprintf("; %s %s in a crash loop", plural(len(loop), "slot", "slots"), strings.Join(loop, ", "))
	}
	if len(failing) > 0 {
		msg += fmt.Sprintf("; %s %s failing, restarts delayed", plural(len(failing), "slot", "slots"), strings.Join(failing, ", "))
	}
	return msg
}

func result(checks ...Check) (bool, []Check) {
	for _, c := range checks {
		if !c.OK {
			return false, checks
		}
	}
	return true, checks
}

func pass(name string) Check         { return Check{Name: name, OK: true} }
func fail(name, reason string) Check { return Check{Name: name, Reason: reason} }
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// age rounds a duration for a person to read: whole seconds from 10 s up,
// tenths of a second from 1 s, milliseconds below.
func age(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
