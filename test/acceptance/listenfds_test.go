package acceptance

// End-to-end acceptance tests for herd owning the port (docs/acceptance.md C3,
// C4, C5, C6, C10): real servers in Python 3 and Node.js that take
// their listening socket from herd (LISTEN_FDS, fd 3), real requests on
// loopback, counted outcomes.
//
//	testdata/listen_server.py  Python standard-library HTTP server: socket
//	                           activation, sd_notify READY=1 and WATCHDOG=1,
//	                           /crash/I and /stall/S for the failure cases.
//	testdata/listen_fd3.js     Node http.createServer().listen({fd: 3}).
//
// Every herd here listens on 127.0.0.1 with port 0 (or a port a test holds),
// so the tests run in parallel in the shared network namespace. Time limits
// are hang guards, never speed requirements.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-sh/herd/health"
)

// ---------------------------------------------------------------------------
// C4: a Python standard-library server that reads LISTEN_FDS

// TestPythonServerTakesListenFDs: a Python 3 server written against the
// systemd socket-activation convention only (it checks LISTEN_PID == its own
// pid, takes fd 3, says READY=1) serves under none and reuseport with 2
// workers: each worker got one socket on the same port with LISTEN_FDNAMES
// and PORT, every one of N requests on its own connection is answered 200,
// both workers answer at least once, and /readyz passes.
//
// Catalogue: C4.
func TestPythonServerTakesListenFDs(t *testing.T) {
	t.Parallel()
	py := python3(t, false)
	server := testdataPath(t, "listen_server.py")
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			r := start(t, spec{
				env: []string{"HERD_WORKERS=2", "HERD_LISTEN=127.0.0.1:0", "HERD_SCHED_POLICY=" + policy,
					"HERD_HEALTH_ADDR=127.0.0.1:0"},
				args: cmdArgs(py, server),
			})
			probes := probeURL(t, r)
			ws, _ := waitServers(t, r, "listen_server", 0, 2)
			if err := r.stderr.waitCount("worker listening", 2, hangGuard); err != nil {
				t.Fatalf("the workers did not both say READY=1 (worker listening: %d): %v", r.stderr.count("worker listening"), err)
			}
			port := samePort(t, ws)
			if policy == "none" {
				// Port 0 resolved once, by herd, before any worker.
				if _, bound, _ := net.SplitHostPort(r.waitLog("listening").str("bound")); bound != port {
					t.Errorf("herd logged bound port %s, workers got %s", bound, port)
				}
			}
			workerPids := map[string]bool{}
			for _, w := range ws {
				workerPids[w["pid"]] = true
				if !strings.HasPrefix(w["fdnames"], "tcp-") {
					t.Errorf("LISTEN_FDNAMES=%q, want the default tcp-<port>", w["fdnames"])
				}
			}
			if len(workerPids) != 2 {
				t.Fatalf("worker pids %v, want 2 distinct", workerPids)
			}
			c := client(10 * time.Second)
			waitCode(t, c, probes+"/readyz?verbose", http.StatusOK)

			url := "http://127.0.0.1:" + port + "/"
			tl := newTally()
			sent := 0
			// The kernel may favour one worker under none: more rounds,
			// up to 1,000 requests, until both have answered.
			for round := 0; round < 5; round++ {
				burst(c, url, 200, 4, tl)
				sent += 200
				tl.mu.Lock()
				both := len(tl.pids) >= 2
				tl.mu.Unlock()
				if both {
					break
				}
			}
			tl.expectAll(t, policy, sent, workerPids)
			if len(tl.pids) < 2 {
				t.Errorf("responses came from %d worker(s), want both: %v", len(tl.pids), tl)
			}
			if n := r.stderr.count("worker exited"); n != 0 {
				t.Errorf("%d workers exited while serving", n)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// C3: Node listen({fd: 3})

// TestNodeServerListensOnFD3: an ordinary Node server that listens on fd 3
// (http.createServer().listen({fd: 3})), HERD_READY_SIGNAL=started, 2
// workers, under none and reuseport: LISTEN_PID is the worker's own pid,
// every request is answered 200 by a worker, and under reuseport (the
// kernel hashes new connections over the two slots' sockets) both answer.
//
// Catalogue: C3.
func TestNodeServerListensOnFD3(t *testing.T) {
	t.Parallel()
	node := requireTool(t, "node")
	server := testdataPath(t, "listen_fd3.js")
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			r := start(t, spec{
				env: []string{"HERD_WORKERS=2", "HERD_LISTEN=127.0.0.1:0", "HERD_SCHED_POLICY=" + policy,
					"HERD_READY_SIGNAL=started", "HERD_HEALTH_ADDR=127.0.0.1:0"},
				args: cmdArgs(node, server),
			})
			probes := probeURL(t, r)
			ws, _ := waitServers(t, r, "listen_fd3", 0, 2)
			workerPids := map[string]bool{}
			for _, w := range ws {
				workerPids[w["pid"]] = true
				if w["listen_pid_ok"] != "true" || w["listen_fds"] != "1" {
					t.Errorf("worker %v: want LISTEN_PID == its pid and LISTEN_FDS=1", w)
				}
			}
			port := ws[0]["env_port"]
			for _, w := range ws {
				if w["env_port"] != port || port == "" {
					t.Fatalf("workers have PORT %q and %q, want one port", port, w["env_port"])
				}
			}
			c := client(10 * time.Second)
			waitCode(t, c, probes+"/readyz?verbose", http.StatusOK) // HERD_READY_SIGNAL=started
			const n = 200
			tl := newTally()
			burst(c, "http://127.0.0.1:"+port+"/", n, 4, tl)
			tl.expectAll(t, policy, n, workerPids)
			if policy == "reuseport" && len(tl.pids) < 2 {
				t.Errorf("under reuseport %d new connections reached %d worker(s), want both: %v", n, len(tl.pids), tl)
			}
			if n := r.stderr.count("worker exited"); n != 0 {
				t.Errorf("%d workers exited while serving", n)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// C5: a worker crashes after responding

// TestCrashedWorkerReplacedWithoutFailedRequest: 2 Python workers under
// open-loop load (a new connection every 5 ms). The worker of slot 0 answers
// /crash/0 and exits 1, twice. herd cannot see connections under none or
// reuseport, so a worker proves it serves by listening for a second: the
// first crash comes after that, and the slot restarts at once; the second
// comes as soon as the replacement listens, and the restart waits
// HERD_BACKOFF_MIN (a worker that dies as soon as it listens is still
// failing to start). Each time the crash response arrives (no handed-off
// connection is lost), a new worker starts in slot 0 and listens, the worker
// of slot 1 answers requests while slot 0 has none, and not one request of
// the whole run fails.
//
// Catalogue: C5.
func TestCrashedWorkerReplacedWithoutFailedRequest(t *testing.T) {
	t.Parallel()
	py := python3(t, false)
	server := testdataPath(t, "listen_server.py")
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			const backoffMin = 200 * time.Millisecond
			r := start(t, spec{
				env: []string{"HERD_WORKERS=2", "HERD_LISTEN=127.0.0.1:0", "HERD_SCHED_POLICY=" + policy,
					"HERD_BACKOFF_MIN=" + backoffMin.String()},
				args: cmdArgs(py, server),
			})
			ws, _ := waitServers(t, r, "listen_server", 0, 2)
			if err := r.stderr.waitCount("worker listening", 2, hangGuard); err != nil {
				t.Fatalf("the workers did not both say READY=1: %v", err)
			}
			listened := time.Now()
			port := samePort(t, ws)
			other := ""
			for _, w := range ws {
				if w["index"] == "1" {
					other = w["pid"]
				}
			}
			base := "http://127.0.0.1:" + port
			c := client(10 * time.Second)
			load, stop := openLoop(c, base+"/", 5*time.Millisecond, 200)
			defer stop()
			deadline := time.Now().Add(hangGuard)
			for ok, _ := load.counts(); ok < 20; ok, _ = load.counts() {
				if time.Now().After(deadline) {
					t.Fatalf("load does not get through before any crash: %v", load)
				}
				time.Sleep(10 * time.Millisecond)
			}

			var delays []time.Duration
			from := 0
			// The first worker has listened for a second (the serving proof).
			time.Sleep(time.Until(listened.Add(1100 * time.Millisecond)))
			for crash := 1; crash <= 2; crash++ {
				victim := crashWorker(t, c, base, 0)
				crashed := time.Now()
				_, i := r.waitLogAfter(from, hangGuard, "worker exited", "index", 0, "pid", victim, "code", 1)
				sched, i := r.waitLogAfter(i, hangGuard, "worker restart scheduled", "index", 0)
				delays = append(delays, logDelay(t, sched))
				started, i := r.waitLogAfter(i, hangGuard, "worker started", "index", 0)
				_, i = r.waitLogAfter(i, hangGuard, "worker listening", "index", 0, "pid", started.str("pid"))
				back := time.Now()
				from = i
				gap := load.servedBetween(crashed, back)
				t.Logf("crash %d: pid %s exited, restart delay %s, pid %s listening %v later; served meanwhile: %v",
					crash, victim, sched.str("delay"), started.str("pid"), back.Sub(crashed).Round(time.Millisecond), gap)
				if gap[other] == 0 {
					t.Errorf("crash %d: the worker of slot 1 (pid %s) answered nothing while slot 0 had no worker (%v)",
						crash, other, gap)
				}
			}
			// Some more load on the replacement, then the count.
			time.Sleep(300 * time.Millisecond)
			stop()
			ok, failed := load.counts()
			t.Logf("load: %v", load)
			if failed != 0 || ok < 50 {
				t.Errorf("load during two crashes: %d ok, %d failed (want 0 failed, at least 50 ok): %v", ok, failed, load)
			}
			if delays[0] != 0 {
				t.Errorf("first restart delay %v, want 0: the worker had listened for a second", delays[0])
			}
			if delays[1] != backoffMin {
				t.Errorf("second restart delay of slot 0 %v, want HERD_BACKOFF_MIN %v: the replacement crashed as it listened", delays[1], backoffMin)
			}
			for _, l := range r.logs("worker exited") {
				if l.str("index") != "0" {
					t.Errorf("a worker of another slot exited: %s", l.raw)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// C6: crash loop

// TestCrashLoopBacksOffToCap: one Python worker says READY=1 and serves; it
// has been listening for longer than HERD_LIVENESS_GRACE (2 s) when it
// crashes on /crash/0, and every later start of the slot exits 1 at once,
// before READY=1 (a marker file). Then:
//   - the first restart is at once (the worker had served), then the delays
//     are 50ms, 100ms, 200ms, 400ms, 400ms, ...: doubling from
//     HERD_BACKOFF_MIN, never decreasing, ending at HERD_BACKOFF_MAX, and the
//     crash-loop warning names the capped delay;
//   - /readyz fails during the loop and /status shows the slot in a crash
//     loop;
//   - /livez keeps passing until no worker has been listening for the grace
//     (counted from the crash, not from when the worker became listening),
//     then fails.
//
// The notify-based readiness makes the liveness rule testable: under
// HERD_READY_SIGNAL=started every restart counts as a worker listening, so
// a crash loop of such workers never fails /livez.
//
// Catalogue: C6.
func TestCrashLoopBacksOffToCap(t *testing.T) {
	t.Parallel()
	py := python3(t, false)
	server := testdataPath(t, "listen_server.py")
	const grace = 2 * time.Second
	marker := filepath.Join(t.TempDir(), "started-once")
	r := start(t, spec{
		env: []string{"HERD_WORKERS=1", "HERD_LISTEN=127.0.0.1:0", "HERD_HEALTH_ADDR=127.0.0.1:0",
			"HERD_BACKOFF_MIN=50ms", "HERD_BACKOFF_MAX=400ms", "HERD_LIVENESS_GRACE=" + grace.String()},
		args: cmdArgs(py, server, "--once-marker", marker),
	})
	probes := probeURL(t, r)
	ws, _ := waitServers(t, r, "listen_server", 0, 1)
	r.waitLog("worker listening", "index", 0)
	listenedAt := time.Now()
	c := client(10 * time.Second)
	for _, p := range []string{"/startupz", "/readyz", "/livez"} {
		waitCode(t, c, probes+p+"?verbose", http.StatusOK)
	}
	// Let the worker listen longer than the grace before it crashes.
	time.Sleep(time.Until(listenedAt.Add(grace + 500*time.Millisecond)))
	base := "http://127.0.0.1:" + ws[0]["port"]
	if victim := crashWorker(t, c, base, 0); victim != ws[0]["pid"] {
		t.Fatalf("crashed pid %s, want %s", victim, ws[0]["pid"])
	}
	crashed := time.Now() // the worker listened until its exit, after this

	// Poll /livez until it fails (hang guard: grace + 10 s).
	var live503 time.Time
	var liveBody string
	for deadline := crashed.Add(grace + 10*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body, err := get(c, probes+"/livez?verbose")
		if err != nil {
			t.Fatalf("/livez: %v", err)
		}
		if code == http.StatusServiceUnavailable {
			live503, liveBody = time.Now(), body
			break
		}
		if code != http.StatusOK {
			t.Fatalf("/livez = %d %q", code, body)
		}
	}
	switch {
	case live503.IsZero():
		t.Errorf("/livez still passes %v after the crash (HERD_LIVENESS_GRACE=%v)", time.Since(crashed).Round(time.Millisecond), grace)
	case live503.Sub(crashed) < grace:
		t.Errorf("/livez failed %v after the only worker crashed, before HERD_LIVENESS_GRACE=%v since a worker was last listening "+
			"(it had been listening since %v before the crash):\n%s",
			live503.Sub(crashed).Round(time.Millisecond), grace, crashed.Sub(listenedAt).Round(time.Millisecond), liveBody)
	default:
		t.Logf("/livez failed %v after the crash", live503.Sub(crashed).Round(time.Millisecond))
	}

	// The backoff: wait for two restarts at the cap.
	deadline := time.Now().Add(hangGuard)
	var delays []time.Duration
	for {
		delays = delays[:0]
		for _, l := range r.logs("worker restart scheduled") {
			delays = append(delays, logDelay(t, l))
		}
		if n := len(delays); n >= 6 && delays[n-1] == 400*time.Millisecond && delays[n-2] == 400*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two restarts at the 400ms cap: delays %v", delays)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("restart delays: %v", delays)
	if delays[0] != 0 {
		t.Errorf("first restart delay %v, want 0: the worker had served", delays[0])
	}
	if delays[1] != 50*time.Millisecond {
		t.Errorf("second restart delay %v, want HERD_BACKOFF_MIN 50ms", delays[1])
	}
	for i := 2; i < len(delays); i++ {
		want := min(2*delays[i-1], 400*time.Millisecond)
		if delays[i] != want {
			t.Errorf("restart delay %d is %v after %v, want %v (doubling up to 400ms): %v", i+1, delays[i], delays[i-1], want, delays)
		}
	}
	loops := r.logs("worker crash loop: restart delay at its cap")
	if len(loops) == 0 {
		t.Errorf("no crash-loop warning")
	} else if loops[0].str("delay") != "400ms" || loops[0].str("index") != "0" {
		t.Errorf("crash-loop warning %s, want index 0 delay 400ms", loops[0].raw)
	}
	for _, l := range r.logs("worker listening") {
		if l.str("pid") != ws[0]["pid"] {
			t.Errorf("a crash-looping worker said it listens: %s", l.raw)
		}
	}

	// Readiness fails throughout the loop (sampled over a second: workers
	// start and exit, none says READY=1); /status shows the loop.
	ready := map[int]int{}
	for i := 0; i < 10; i++ {
		ready[getCode(t, c, probes+"/readyz")]++
		time.Sleep(100 * time.Millisecond)
	}
	if ready[http.StatusServiceUnavailable] != 10 {
		t.Errorf("/readyz in the crash loop, 10 samples: %v; want only 503", ready)
	}
	if code := getCode(t, c, probes+"/livez"); code != http.StatusServiceUnavailable {
		t.Errorf("/livez = %d in the crash loop %v after the crash, want 503", code, time.Since(crashed).Round(time.Millisecond))
	}
	var st health.Status
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		_, body, err = get(c, probes+"/status")
		st = health.Status{}
		if err == nil {
			err = json.Unmarshal([]byte(body), &st)
		}
		if err != nil {
			t.Fatalf("/status: %v\n%s", err, body)
		}
		if len(st.Snapshot.Slots) == 1 && st.Snapshot.Slots[0].CrashLoop && st.Snapshot.Slots[0].Restarts >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/status: want slot 0 crash_loop true with at least 5 restarts; got %+v\n%s", st.Snapshot.Slots, body)
			break
		}
	}
}

// ---------------------------------------------------------------------------
// C10: bind errors

// TestBindErrorStopsHerdBeforeWorkers: herd binds before anything starts, so
// a port that is taken (the test holds it) or privileged (herd runs as uid
// 65534 and asks for port 80) ends herd with exit code 1 and exactly one
// ERROR record, "cannot listen", naming the address and the reason, under
// both policies; no worker starts (the worker would print a line). An
// address that does not parse is a configuration error: exit 2 and one line
// naming HERD_LISTEN.
//
// Catalogue: C10.
func TestBindErrorStopsHerdBeforeWorkers(t *testing.T) {
	t.Parallel()
	const workerSays = "WORKER-RAN"
	worker := cmdArgs("sh", "-c", "echo "+workerSays)
	check := func(t *testing.T, r *herdRun, code int, addr, reason string) {
		t.Helper()
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		errs := r.errorLogs()
		if len(errs) != 1 {
			t.Errorf("%d ERROR records, want exactly 1:\n%s", len(errs), r.stderr.text())
		} else {
			l := errs[0]
			if l.msg() != "cannot listen" || !strings.Contains(l.raw, addr) || !strings.Contains(l.raw, reason) {
				t.Errorf("error record %s\nwant msg \"cannot listen\" naming %s and %q", l.raw, addr, reason)
			}
		}
		if n := r.stderr.count("worker started"); n != 0 {
			t.Errorf("%d workers started", n)
		}
		if strings.Contains(r.stdout.text(), workerSays) {
			t.Errorf("a worker ran:\n%s", r.stdout.text())
		}
	}
	for _, policy := range []string{"none", "reuseport"} {
		t.Run("in-use/"+policy, func(t *testing.T) {
			t.Parallel()
			held, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			addr := held.Addr().String()
			r, code := runHerd(t, spec{
				env:  []string{"HERD_WORKERS=2", "HERD_LISTEN=" + addr, "HERD_SCHED_POLICY=" + policy},
				args: worker,
			})
			check(t, r, code, addr, "address already in use")
		})
		t.Run("privileged/"+policy, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
			if err != nil {
				missing(t, "net.ipv4.ip_unprivileged_port_start: %v", err)
			}
			if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n <= 80 {
				missing(t, "port 80 is unprivileged here (ip_unprivileged_port_start=%d)", n)
			}
			r, code := runHerd(t, spec{
				nobody: true, dir: "/",
				env:  []string{"HERD_WORKERS=2", "HERD_LISTEN=127.0.0.1:80", "HERD_SCHED_POLICY=" + policy},
				args: worker,
			})
			check(t, r, code, "127.0.0.1:80", "permission denied")
		})
	}
	for _, bad := range []string{"localhost:80", ":99999", "127.0.0.1", "udp://:53"} {
		t.Run("invalid/"+bad, func(t *testing.T) {
			t.Parallel()
			r, code := runHerd(t, spec{env: []string{"HERD_WORKERS=1", "HERD_LISTEN=" + bad}, args: worker})
			if code != 2 {
				t.Errorf("HERD_LISTEN=%s: exit code %d, want 2", bad, code)
			}
			var lines []string
			for _, l := range r.stderr.snapshot() {
				if strings.TrimSpace(l.raw) != "" {
					lines = append(lines, l.raw)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "HERD_LISTEN") || !strings.Contains(lines[0], bad) {
				t.Errorf("stderr: want one line naming HERD_LISTEN and %q, got:\n%s", bad, strings.Join(lines, "\n"))
			}
			if strings.Contains(r.stdout.text(), workerSays) || r.stderr.count("worker started") != 0 {
				t.Errorf("a worker ran")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// reuseport: the slot's socket outlives its worker

// TestReuseportCrashKeepsQueue: reuseport, one worker, so every connection
// lands on that slot's socket. The worker answers /stall/2, then accepts
// nothing for 2 s and exits 1. Meanwhile K clients connect (the kernel
// completes the handshakes and queues them) and send a request. herd
// restarts the slot on the same socket and the replacement answers every
// queued connection: K responses from the new pid, no reset, no refusal.
// Negative control: the same server owning its own socket (not under herd)
// dies the same way and every queued connection fails, so the test can
// tell the difference.
func TestReuseportCrashKeepsQueue(t *testing.T) {
	t.Parallel()
	py := python3(t, false)
	server := testdataPath(t, "listen_server.py")
	const k = 16

	t.Run("herd", func(t *testing.T) {
		t.Parallel()
		r := start(t, spec{
			env: []string{"HERD_WORKERS=1", "HERD_LISTEN=127.0.0.1:0", "HERD_SCHED_POLICY=reuseport",
				"HERD_BACKOFF_MIN=50ms"},
			args: cmdArgs(py, server),
		})
		ws, _ := waitServers(t, r, "listen_server", 0, 1)
		r.waitLog("worker listening", "index", 0)
		addr := net.JoinHostPort("127.0.0.1", samePort(t, ws))

		stalled := stallWorker(t, addr, 2)
		collect := queueRequests(t, addr, k)
		if r.stderr.count("worker exited") != 0 {
			t.Fatalf("precondition: the worker exited before the %d connections were queued (the machine is too slow for a 2 s stall)", k)
		}
		_, i := r.waitLogAfter(0, hangGuard, "worker exited", "index", 0, "pid", stalled, "code", 1)
		r.waitLogAfter(i, hangGuard, "worker started", "index", 0)
		tl := collect()
		ok, failed := tl.counts()
		t.Logf("%d queued connections across the crash: %v", k, tl)
		if ok != k || failed != 0 {
			t.Errorf("queued connections: %d answered, %d failed; want all %d answered: %v", ok, failed, k, tl)
		}
		if tl.pids[stalled] != 0 {
			t.Errorf("the stalled worker answered %d queued connections: the test did not queue them", tl.pids[stalled])
		}
	})

	t.Run("negative-control", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(py, server, "--bind", "127.0.0.1:0", "--no-ready")
		cmd.Env = cleanEnv()
		out := newLineBuf()
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); out.close() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		l, _, err := out.find(0, hangGuard, func(l logLine) bool { _, ok := serverFields(l.raw, "listen_server"); return ok })
		if err != nil {
			t.Fatalf("the server did not start: %v\n%s", err, out.text())
		}
		m, _ := serverFields(l.raw, "listen_server")
		addr := net.JoinHostPort("127.0.0.1", m["port"])
		stallWorker(t, addr, 2)
		collect := queueRequests(t, addr, k)
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("the server ended with %v, want exit 1", err)
			}
			done <- err
		case <-time.After(hangGuard):
			t.Fatal("hang guard: the stalled server did not exit")
		}
		tl := collect()
		ok2, failed := tl.counts()
		t.Logf("negative control: %d queued connections when the socket's owner died: %v", k, tl)
		if ok2 != 0 || failed != k {
			t.Errorf("negative control: %d answered, %d failed; want all %d to fail (the queue dies with its socket)", ok2, failed, k)
		}
	})
}

// ---------------------------------------------------------------------------
// Watchdog

// TestWatchdogKillsSilentWorker: HERD_WATCHDOG_TIMEOUT=500ms. Workers see
// WATCHDOG_USEC=500000. A worker that sends WATCHDOG=1 every 100 ms for 1 s
// and then stops is SIGKILLed after being silent for at least the timeout
// (and within a generous bound), its slot is restarted, and the replacement
// runs; a worker that keeps beating is never killed in 2.5 s.
func TestWatchdogKillsSilentWorker(t *testing.T) {
	t.Parallel()
	py := python3(t, false)
	server := testdataPath(t, "listen_server.py")
	env := []string{"HERD_WORKERS=1", "HERD_LISTEN=127.0.0.1:0", "HERD_WATCHDOG_TIMEOUT=500ms", "HERD_BACKOFF_MIN=100ms"}

	t.Run("stops-beating", func(t *testing.T) {
		t.Parallel()
		r := start(t, spec{env: env, args: cmdArgs(py, server, "--beat-for", "1")})
		ws, next := waitServers(t, r, "listen_server", 0, 1)
		if ws[0]["watchdog_usec"] != "500000" {
			t.Errorf("WATCHDOG_USEC=%q, want 500000", ws[0]["watchdog_usec"])
		}
		pid := ws[0]["pid"]
		if _, _, err := r.stdout.find(0, hangGuard, func(l logLine) bool { return l.raw == "listen_server pid="+pid+" beats stopped" }); err != nil {
			t.Fatalf("the worker never stopped beating: %v", err)
		}
		wd, i := r.waitLogAfter(0, hangGuard, "worker watchdog timeout: no WATCHDOG=1; killing it", "pid", pid)
		ex, i := r.waitLogAfter(i, hangGuard, "worker exited", "pid", pid)
		r.waitLogAfter(i, hangGuard, "worker restart scheduled", "index", 0)
		r.waitLogAfter(i, hangGuard, "worker started", "index", 0)
		waitServers(t, r, "listen_server", next, 1) // the replacement runs
		silent, err := time.ParseDuration(wd.str("silent"))
		if err != nil || silent < 500*time.Millisecond || silent > 5*time.Second {
			t.Errorf("killed after %q of silence (%v), want between the 500ms timeout and 5s", wd.str("silent"), err)
		}
		if ex.str("status") != "signal KILL" {
			t.Errorf("the silent worker ended with %q, want signal KILL", ex.str("status"))
		}
		if up, err := time.ParseDuration(ex.str("uptime")); err != nil || up < 1500*time.Millisecond {
			t.Errorf("killed after an uptime of %q: before 1 s of beats + 500ms of silence", ex.str("uptime"))
		}
		for _, l := range r.logs("worker watchdog timeout: no WATCHDOG=1; killing it") {
			if l.str("pid") == pid && l.raw != wd.raw {
				t.Errorf("the worker was reported silent twice: %s", l.raw)
			}
		}
	})

	t.Run("keeps-beating", func(t *testing.T) {
		t.Parallel()
		r := start(t, spec{env: env, args: cmdArgs(py, server, "--beat-for", "-1")})
		ws, _ := waitServers(t, r, "listen_server", 0, 1)
		if ws[0]["watchdog_usec"] != "500000" {
			t.Errorf("WATCHDOG_USEC=%q, want 500000", ws[0]["watchdog_usec"])
		}
		r.waitLog("worker listening", "index", 0)
		time.Sleep(2500 * time.Millisecond)
		if n := r.stderr.count("worker watchdog timeout: no WATCHDOG=1; killing it"); n != 0 {
			t.Errorf("a beating worker was killed by the watchdog %d times", n)
		}
		if n := r.stderr.count("worker exited"); n != 0 || r.stderr.count("worker started") != 1 {
			t.Errorf("%d worker exits, %d starts; want 0 and 1", n, r.stderr.count("worker started"))
		}
	})
}

// ---------------------------------------------------------------------------
// Privilege drop

// TestWorkersRunAsHerdUID: herd runs as root and binds 127.0.0.1:<port> (and
// 127.0.0.1:80 when it is free); HERD_UID/HERD_GID make the workers run as
// 65534 with no supplementary groups. The worker reports uid and gid 65534
// in its start line and in responses on every socket, and says READY=1
// through NOTIFY_SOCKET as that user.
func TestWorkersRunAsHerdUID(t *testing.T) {
	t.Parallel()
	py := python3(t, true)
	server := testdataPath(t, "listen_server.py")
	if os.Geteuid() != 0 {
		missing(t, "root (euid %d)", os.Geteuid())
	}
	listen := "127.0.0.1:0"
	with80 := false
	if l, err := net.Listen("tcp4", "127.0.0.1:80"); err == nil {
		l.Close()
		listen += ",127.0.0.1:80"
		with80 = true
	} else {
		t.Logf("port 80 not tested: %v", err)
	}
	cases := [][]string{{"HERD_UID=65534", "HERD_GID=65534"}}
	if u, err := user.Lookup("nobody"); err == nil && u.Uid == "65534" && u.Gid == "65534" {
		cases = append(cases, []string{"HERD_UID=nobody"}) // the user's primary group
	}
	for _, ids := range cases {
		// One after the other: both may bind port 80.
		t.Run(strings.Join(ids, ","), func(t *testing.T) {
			r := start(t, spec{
				dir:  "/", // a working directory uid 65534 may enter
				env:  append([]string{"HERD_WORKERS=1", "HERD_LISTEN=" + listen}, ids...),
				args: cmdArgs(py, server),
			})
			ws, _ := waitServers(t, r, "listen_server", 0, 1)
			r.waitLog("worker listening", "index", 0)
			w := ws[0]
			if w["uid"] != "65534" || w["gid"] != "65534" || w["groups"] != "" {
				t.Errorf("worker uid=%s gid=%s groups=%q, want 65534, 65534 and none", w["uid"], w["gid"], w["groups"])
			}
			ports := strings.Split(w["port"], ",")
			if want := strings.Count(listen, ",") + 1; len(ports) != want || w["listen_fds"] != strconv.Itoa(want) {
				t.Fatalf("worker got ports %v (LISTEN_FDS=%s), want %d sockets", ports, w["listen_fds"], want)
			}
			if with80 && ports[1] != "80" {
				t.Errorf("second socket on port %s, want 80", ports[1])
			}
			c := client(10 * time.Second)
			for _, p := range ports {
				code, body, err := get(c, "http://127.0.0.1:"+p+"/")
				if err != nil || code != http.StatusOK || !strings.Contains(body, " uid=65534 gid=65534") {
					t.Errorf("port %s: code %d body %q err %v; want 200 from uid/gid 65534", p, code, body, err)
				}
			}
			// herd itself stays root (it could bind port 80 and keeps the sockets).
			if st, err := statusField(r.herdPID(), "Uid"); err != nil || strings.Fields(st)[0] != "0" {
				t.Errorf("herd's Uid: %q (%v), want 0", st, err)
			}
		})
	}

	// A command the workers' user may not execute (it lies in a directory
	// only root may enter) cannot start: herd says so and exits 126 (A4),
	// with sockets to hand over (through the launcher) as without.
	for _, listen := range []bool{false, true} {
		t.Run(fmt.Sprintf("not-executable-as-65534/listen=%v", listen), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir() // under a 0700 directory of root's
			prog := filepath.Join(dir, "worker.sh")
			if err := os.WriteFile(prog, []byte("#!/bin/sh\necho WORKER-RAN\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if othersMayRun(prog) {
				t.Fatalf("%s is reachable by others: the case needs a directory only root may enter", prog)
			}
			env := []string{"HERD_WORKERS=1", "HERD_UID=65534", "HERD_GID=65534"}
			if listen {
				env = append(env, "HERD_LISTEN=127.0.0.1:0")
			}
			r := start(t, spec{dir: "/", env: env, args: cmdArgs(prog)})
			code := r.exitCode(10 * time.Second)
			if code != 126 {
				t.Errorf("exit code %d, want 126 (not executable)", code)
			}
			if n := r.stderr.count("worker restart scheduled"); n != 0 {
				t.Errorf("a command that cannot be executed was restarted %d times", n)
			}
			if n := r.stderr.count("cannot start command"); n != 1 {
				t.Errorf("%d \"cannot start command\" records, want 1", n)
			}
		})
	}
}
