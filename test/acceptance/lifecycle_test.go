package acceptance

// docs/acceptance.md C7, C8 (SIGTTIN/SIGTTOU), D7 and D8: the cluster's
// lifecycle under real load on loopback. herd runs as PID 1 of a new PID
// namespace, binds HERD_LISTEN=127.0.0.1:0 itself and hands the socket to
// Python workers (testdata/life_server.py) under the default policy
// `none`; the load generator (loadgen_test.go) counts every request.
// Each test has its own herd, its own port and its own probe port, so they
// run in parallel.

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-sh/herd/health"
)

// SIGHUP rolling restart under continuous load (at least 20 s,
// 2 workers, every worker replaced twice): zero failed requests, every
// worker replaced, herd still running afterwards.
//
// Catalogue: C7.
func TestRollingRestartUnderLoadFailsNoRequest(t *testing.T) {
	t.Parallel()
	r := startLifeServers(t, 2, "HERD_HEALTH_ADDR=127.0.0.1:0")
	orig := logPids(t, r.logsBetween(0, -1, "worker listening"))
	if len(orig) != 2 {
		t.Fatalf("want 2 listening workers at start, got %v", orig)
	}

	const loadFor = 22 * time.Second
	load := startLoad(t, loadConfig{Addr: r.addr, Clients: 8, Duration: loadFor, Interval: 10 * time.Millisecond, Timeout: 10 * time.Second})
	t0 := time.Now()

	// Roll 1 at +5 s; one more SIGHUP while it runs must be ignored.
	r.sleepUntil(t0.Add(5 * time.Second))
	r.signal(syscall.SIGHUP)
	_, roll1 := r.waitLogAfter(0, hangGuard, "rolling restart")
	r.signal(syscall.SIGHUP)
	_, ignored := r.waitLogAfter(roll1, hangGuard, "rolling restart already under way; SIGHUP ignored")
	_, done1 := r.waitLogAfter(roll1, 30*time.Second, "rolling restart done")
	if ignored > done1 {
		t.Fatalf("the second SIGHUP was handled after roll 1 ended; cannot tell whether it was ignored")
	}

	// Roll 2 at +12 s, after roll 1 is done.
	r.sleepUntil(t0.Add(12 * time.Second))
	r.signal(syscall.SIGHUP)
	_, roll2 := r.waitLogAfter(done1, hangGuard, "rolling restart")
	_, done2 := r.waitLogAfter(roll2, 30*time.Second, "rolling restart done")

	res := load.Wait()
	t.Logf("load, 8 clients, new connection per request, %v with two rolling restarts: %s", loadFor, res)
	if res.Failures() != 0 {
		t.Errorf("%d failed requests during the rolling restarts, want 0:\n%s", res.Failures(), res.FailureSample(20, t0))
	}
	if res.OK == 0 {
		t.Fatalf("no successful request at all")
	}

	// Logs: 2 rolls, 4 graceful stops, originals then first replacements.
	if n := len(r.logsBetween(0, -1, "rolling restart")); n != 2 {
		t.Errorf("%d rolling restarts, want 2 (the SIGHUP during roll 1 must be ignored)", n)
	}
	first := logPids(t, r.logsBetween(roll1, done1, "worker started"))
	second := logPids(t, r.logsBetween(roll2, done2, "worker started"))
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("replacements started: roll 1 %v, roll 2 %v; want 2 each", first, second)
	}
	stop1 := r.logsBetween(roll1, done1, "worker stopping", "reason", "rolling restart")
	stop2 := r.logsBetween(roll2, done2, "worker stopping", "reason", "rolling restart")
	all := r.logsBetween(0, -1, "worker stopping", "reason", "rolling restart")
	if len(all) != 4 || len(stop1) != 2 || len(stop2) != 2 {
		t.Errorf("worker stopping (rolling restart): %d in all, %d in roll 1, %d in roll 2; want 4, 2, 2", len(all), len(stop1), len(stop2))
	}
	if got := logPids(t, stop1); !sameSet(got, orig) {
		t.Errorf("roll 1 stopped %v, want the original workers %v", got, orig)
	}
	if got := logPids(t, stop2); !sameSet(got, first) {
		t.Errorf("roll 2 stopped %v, want roll 1's replacements %v", got, first)
	}
	for _, l := range all {
		if l.str("signal") != "TERM" {
			t.Errorf("stop signal %q, want TERM: %s", l.str("signal"), l.raw)
		}
	}
	gone := append(append([]int(nil), orig...), first...)
	r.checkExitedCleanly(gone)
	if n := r.stderr.count("worker restart scheduled"); n != 0 {
		t.Errorf("%d crash restarts during the rolling restarts, want 0", n)
	}

	// Every one of the 6 workers served; the last 2 are the ones running.
	every := append(append([]int(nil), gone...), second...)
	for _, p := range pidStrings(every) {
		if res.ByWorker[p] == 0 {
			t.Errorf("worker %s never answered a request (answers by worker: %v)", p, res.ByWorker)
		}
	}
	if r.exited() {
		t.Fatalf("herd exited during the test")
	}
	st := r.status(t)
	if got := listeningPids(st); st.Snapshot.Desired != 2 || !sameSet(got, second) {
		t.Errorf("/status after the rolls: desired %d, listening %v; want 2, %v", st.Snapshot.Desired, got, second)
	}
	t.Logf("workers: original %v, roll 1 %v, roll 2 %v; stops %d", orig, first, second, len(all))

	r.signal(syscall.SIGTERM)
	if code := r.exitCode(40 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM %d, want 0", code)
	}
}

// One worker more, one less, never fewer than 1;
// a removed worker stops gracefully (its in-flight requests complete) and
// is not restarted.
//
// Catalogue: C8.
func TestTTINAndTTOUAddAndRemoveWorker(t *testing.T) {
	t.Parallel()
	r := startLifeServers(t, 1, "HERD_HEALTH_ADDR=127.0.0.1:0")

	r.signal(syscall.SIGTTIN)
	r.waitLogAfter(0, hangGuard, "workers resized", "from", 1, "to", 2, "reason", "SIGTTIN")
	r.waitLogAfter(0, hangGuard, "worker listening", "index", 1)
	r.signal(syscall.SIGTTIN)
	r.waitLogAfter(0, hangGuard, "workers resized", "from", 2, "to", 3, "reason", "SIGTTIN")
	r.waitLogAfter(0, hangGuard, "worker listening", "index", 2)
	st := r.waitStatus(t, "3 listening workers", func(st health.Status) bool {
		return st.Snapshot.Desired == 3 && len(listeningPids(st)) == 3
	})
	three := listeningPids(st)
	var idx2 int
	for _, w := range st.Snapshot.Workers {
		if w.Index == 2 {
			idx2 = w.Pid
		}
	}

	// Requests until all three have answered (at most 10 s, 3000 requests).
	load := startLoad(t, loadConfig{Addr: r.addr, Path: "/?delay=20", Clients: 6, Duration: 10 * time.Second, Count: 3000})
	for {
		_, _, workers := load.Progress()
		if workers >= 3 {
			break
		}
		select {
		case <-load.Done():
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	res := load.Stop()
	t.Logf("3 workers: %s", res)
	if res.Failures() != 0 {
		t.Errorf("%d failed requests with 3 workers:\n%s", res.Failures(), res.FailureSample(10, res.Start))
	}
	if got := res.Workers(); len(got) != 3 || !sameSet(atoiAll(t, got), three) {
		t.Errorf("answers came from %v, want the 3 workers %v", got, three)
	}

	// SIGTTOU under load of slow requests: index 2 stops gracefully.
	mark := len(r.stderr.snapshot())
	slow := startLoad(t, loadConfig{Addr: r.addr, Path: "/?delay=300", Clients: 6, Duration: 2500 * time.Millisecond})
	time.Sleep(700 * time.Millisecond)
	r.signal(syscall.SIGTTOU)
	r.waitLogAfter(mark, hangGuard, "workers resized", "from", 3, "to", 2, "reason", "SIGTTOU")
	stop, _ := r.waitLogAfter(mark, hangGuard, "worker stopping", "index", 2)
	if pid, _ := stop.num("pid"); pid != idx2 || stop.str("reason") != "SIGTTOU" || stop.str("signal") != "TERM" {
		t.Errorf("stopping line %s; want pid %d, reason SIGTTOU, signal TERM", stop.raw, idx2)
	}
	r.checkExitedCleanly([]int{idx2})
	sres := slow.Wait()
	t.Logf("slow requests (300 ms) across SIGTTOU: %s", sres)
	if sres.Failures() != 0 {
		t.Errorf("%d failed requests across SIGTTOU:\n%s", sres.Failures(), sres.FailureSample(10, sres.Start))
	}
	if sres.ByWorker[strconv.Itoa(idx2)] == 0 {
		t.Logf("note: the removed worker %d answered none of the slow requests", idx2)
	}
	// Not restarted: well past the restart backoff, 2 workers and no new
	// start in slot 2.
	time.Sleep(1500 * time.Millisecond)
	st = r.waitStatus(t, "2 workers", func(st health.Status) bool {
		return st.Snapshot.Desired == 2 && len(st.Snapshot.Workers) == 2
	})
	if n := len(r.logsBetween(mark, -1, "worker started", "index", 2)); n != 0 {
		t.Errorf("slot 2 was started again %d times after SIGTTOU", n)
	}
	if n := r.stderr.count("worker restart scheduled"); n != 0 {
		t.Errorf("%d restarts scheduled, want 0", n)
	}

	// 2 → 1, then SIGTTOU at 1 changes nothing.
	r.signal(syscall.SIGTTOU)
	r.waitLogAfter(mark, hangGuard, "workers resized", "from", 2, "to", 1, "reason", "SIGTTOU")
	stop1, _ := r.waitLogAfter(mark, hangGuard, "worker stopping", "index", 1)
	pid1, _ := stop1.num("pid")
	r.checkExitedCleanly([]int{pid1})
	r.waitStatus(t, "1 worker", func(st health.Status) bool {
		return st.Snapshot.Desired == 1 && len(st.Snapshot.Workers) == 1
	})
	mark = len(r.stderr.snapshot())
	r.signal(syscall.SIGTTOU)
	// Different pending signals are delivered lowest number first; give
	// herd time to take SIGTTOU (22) before SIGTTIN (21) follows.
	time.Sleep(500 * time.Millisecond)
	st = r.status(t)
	if st.Snapshot.Desired != 1 || len(listeningPids(st)) != 1 {
		t.Errorf("after SIGTTOU at 1 worker: desired %d, listening %v; want 1 listening worker", st.Snapshot.Desired, listeningPids(st))
	}
	// SIGTTIN now resizes from 1: the SIGTTOU before it changed nothing.
	r.signal(syscall.SIGTTIN)
	r.waitLogAfter(mark, hangGuard, "workers resized", "reason", "SIGTTIN")
	if got := r.logsBetween(mark, -1, "workers resized"); len(got) != 1 || got[0].str("from") != "1" || got[0].str("to") != "2" {
		t.Errorf("after SIGTTOU at 1 worker and SIGTTIN: resized lines %v; want one, from 1 to 2", rawLines(got))
	}
	for _, l := range r.logsBetween(0, -1, "workers resized") {
		if to, _ := l.num("to"); to < 1 {
			t.Errorf("resized below 1 worker: %s", l.raw)
		}
	}
	if n := len(r.logsBetween(0, -1, "workers resized", "reason", "SIGTTOU")); n != 2 {
		t.Errorf("%d SIGTTOU resizes, want 2 (3→2, 2→1)", n)
	}
	r.waitLogAfter(mark, hangGuard, "worker listening", "index", 1)

	r.signal(syscall.SIGTERM)
	if code := r.exitCode(40 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM %d, want 0", code)
	}
}

// inFlightMargin: requests that start this long after the test sent
// SIGTERM still count as accepted before the listeners closed (herd has
// not even signalled the workers that soon).
const inFlightMargin = 2 * time.Millisecond

// Under steady load, SIGTERM: every request accepted before the
// listeners closed completes with 200, and herd exits 0 once the workers
// have drained. Two loads run together: slow requests (300 ms), so that
// many are in flight when the workers get the stop signal, and a paced
// stream of quick ones, so that requests keep arriving up to the moment the
// workers stop accepting.
//
// Catalogue: D7.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	r := startLifeServers(t, 2)
	slow := startLoad(t, loadConfig{Addr: r.addr, Path: "/?delay=300", Clients: 8, Interval: 20 * time.Millisecond, Duration: 20 * time.Second})
	fast := startLoad(t, loadConfig{Addr: r.addr, Path: "/", Clients: 4, Interval: 5 * time.Millisecond, Duration: 20 * time.Second})
	time.Sleep(2 * time.Second)
	if ok, _, _ := slow.Progress(); ok == 0 {
		t.Fatalf("no slow request answered before SIGTERM")
	}
	sigAt := time.Now()
	r.signal(syscall.SIGTERM)
	code := r.exitCode(40 * time.Second)
	exitAt := time.Now()
	time.Sleep(100 * time.Millisecond) // a few requests after herd is gone
	res := mergeLoads(slow.Stop(), fast.Stop())

	cut := sigAt.Add(inFlightMargin)
	before := res.StartedBefore(cut)
	inflight := before.Filter(func(rec loadRecord) bool { return rec.End.After(sigAt) })
	after := res.StartedFrom(cut)
	whileStopping := after.Filter(func(rec loadRecord) bool { return rec.Start.Before(exitAt) })
	afterExit := after.Filter(func(rec loadRecord) bool { return !rec.Start.Before(exitAt) })
	t.Logf("started before SIGTERM+%v: %s", inFlightMargin, before)
	t.Logf("  of which still in flight at SIGTERM: %s", inflight)
	t.Logf("started after that, while herd was stopping (it exited %.0f ms after SIGTERM): %s", ms(exitAt.Sub(sigAt)), whileStopping)
	t.Logf("started after herd exited: %s", afterExit)
	if before.Failures() != 0 {
		t.Errorf("%d requests started before SIGTERM failed, want 0:\n%s", before.Failures(), before.FailureSample(20, sigAt))
	}
	if inflight.OK == 0 {
		t.Errorf("no request was in flight at SIGTERM: the test exercised nothing")
	}
	if whileStopping.Failures() > 0 {
		t.Logf("failures of requests started after SIGTERM (allowed; times from SIGTERM):\n%s", whileStopping.FailureSample(10, sigAt))
	}
	// herd closes its copy of the shared socket when the stop begins, so a
	// request that comes after the workers stopped accepting is refused
	// (safe to retry), not queued and then reset. Only a connection that
	// lands in the microseconds between a worker's last accept and its
	// close can still be reset; before herd closed its copy, every client's
	// next request was (12 of 12).
	if n := whileStopping.Failed[loadReset] + whileStopping.Failed[loadClosed]; n > 2 {
		t.Errorf("%d requests started after SIGTERM connected and were then reset instead of refused: "+
			"a listening socket stayed open after the workers stopped accepting", n)
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0 (every worker drained and exited 0)", code)
	}
	r.checkExitedCleanly(logPids(t, r.logsBetween(0, -1, "worker started")))
}

// HERD_SHUTDOWN_DELAY=3s: /readyz answers 503 from the first request
// after herd logs that it is draining, while the service keeps answering
// every request for the delay; then the workers stop and herd exits 0.
//
// Catalogue: D8.
func TestReadinessFailsDuringShutdownDelay(t *testing.T) {
	t.Parallel()
	const delay = 3 * time.Second
	r := startLifeServers(t, 2, "HERD_HEALTH_ADDR=127.0.0.1:0", "HERD_SHUTDOWN_DELAY=3s")
	r.waitStatus(t, "ready", func(st health.Status) bool { return st.Ready })
	if code, body, err := r.get("/readyz"); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/readyz before SIGTERM: %d %q %v; want 200 ok", code, body, err)
	}
	load := startLoad(t, loadConfig{Addr: r.addr, Clients: 4, Interval: 5 * time.Millisecond, Duration: 20 * time.Second})
	time.Sleep(time.Second)

	mark := len(r.stderr.snapshot())
	sigAt := time.Now()
	r.signal(syscall.SIGTERM)
	drainLine, drainIdx := r.waitLogAfter(mark, 10*time.Second,
		"draining: readiness fails now, workers stop after the shutdown delay")
	code, body, err := r.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("first /readyz after the draining line: %d %q %v; want 503 naming draining", code, body, err)
	}
	if st := r.status(t); !st.Snapshot.Draining || len(listeningPids(st)) != 2 {
		t.Errorf("/status during the delay: draining %v, listening %v; want draining with both workers still listening",
			st.Snapshot.Draining, listeningPids(st))
	}
	if drainLine.str("delay") != "3s" {
		t.Errorf("draining line %s; want delay 3s", drainLine.raw)
	}

	// Poll through the delay until herd says it stops the workers.
	polls, not503 := 1, 0
	var shutdownLine logLine
	shutdownIdx := -1
	for shutdownIdx < 0 {
		if l, i, ok := r.stderr.first(drainIdx, func(l logLine) bool { return l.is("shutdown") }); ok {
			shutdownLine, shutdownIdx = l, i
			break
		}
		if time.Since(sigAt) > delay+20*time.Second {
			t.Fatalf("no shutdown line within %v of SIGTERM", delay+20*time.Second)
		}
		code, body, err := r.get("/readyz")
		if err != nil || code != http.StatusServiceUnavailable {
			if _, _, ok := r.stderr.first(drainIdx, func(l logLine) bool { return l.is("shutdown") }); ok {
				continue // the delay ended meanwhile
			}
			not503++
			t.Errorf("/readyz during the shutdown delay (%.0f ms after SIGTERM): %d %q %v; want 503",
				ms(time.Since(sigAt)), code, body, err)
		}
		polls++
		time.Sleep(100 * time.Millisecond)
	}
	drainAt, shutAt := logTime(t, drainLine), logTime(t, shutdownLine)
	if got := shutAt.Sub(drainAt); got < delay-10*time.Millisecond {
		t.Errorf("workers asked to stop %v after the draining line, want the delay %v", got, delay)
	}
	if n := len(r.logsBetween(drainIdx, shutdownIdx, "worker stopping")) + len(r.logsBetween(drainIdx, shutdownIdx, "worker exited")); n != 0 {
		t.Errorf("%d workers stopped or exited during the shutdown delay", n)
	}

	exit := r.exitCode(40 * time.Second)
	res := load.Stop()
	during := res.Filter(func(rec loadRecord) bool { return !rec.Start.Before(sigAt) && rec.Start.Before(shutAt) })
	t.Logf("/readyz polls during the delay: %d, all 503: %v", polls, not503 == 0)
	t.Logf("requests started during the shutdown delay (%.0f ms): %s", ms(shutAt.Sub(sigAt)), during)
	t.Logf("all requests: %s", res)
	if n := res.StartedBefore(shutAt).Failures(); n != 0 {
		t.Errorf("%d requests started before the workers were asked to stop failed, want 0:\n%s", n, res.StartedBefore(shutAt).FailureSample(20, sigAt))
	}
	if during.OK < 100 {
		t.Errorf("only %d requests answered during the %v delay, want at least 100", during.OK, delay)
	}
	if exit != 0 {
		t.Errorf("exit code %d, want 0", exit)
	}
	r.checkExitedCleanly(logPids(t, r.logsBetween(0, -1, "worker started")))
}
