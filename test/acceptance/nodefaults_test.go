package acceptance

// Faults as users meet them, with real Node apps under herd as PID 1: a
// worker that serves and then crashes, a worker that leaves on its own, a
// stop that must reach the app's own SIGTERM handler, a worker that breaks
// the cluster protocol while clients wait, and an app that listens on the
// port HERD_LISTEN names.

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A worker that listened and served, then crashed, is replaced at once:
// the textbook server that throws after answering one request in five,
// with 2 workers, answers at least 995 of 1,000 requests sent one after
// another, each on a new connection. (Before, a few such exits put both
// slots in a restart delay of up to 16 s and nothing served.)
func TestServedWorkerCrashRestartsAtOnce(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{workers: 2, policy: "rr", script: "node_crashy.js", args: []string{strconv.Itoa(port)}})
	r.waitListening(2)
	const total = 1000
	var ok int
	var failed []response
	deadline := time.Now().Add(3 * time.Minute) // a hang guard, not a measure
	sent := 0
	for ; sent < total && time.Now().Before(deadline); sent++ {
		res := request("tcp", addr, "/", 5*time.Second)
		if res.ok() {
			ok++
		} else {
			failed = append(failed, res)
			if len(failed) > 50 {
				break
			}
		}
	}
	exits := len(r.logs("worker exited"))
	var delays []string
	for _, l := range r.logs("worker restart scheduled") {
		delays = append(delays, l.str("delay"))
	}
	t.Logf("%d of %d answered, %d failed; %d worker exits; restart delays %v", ok, sent, len(failed), exits, delays)
	if ok < 995 || sent < total {
		t.Errorf("%d of %d requests answered (%d sent); want at least 995 of %d; failures e.g. %v",
			ok, total, sent, total, failed[:min(5, len(failed))])
	}
	if exits < total/5/2 {
		t.Errorf("only %d worker exits: the app did not crash as it should", exits)
	}
	for _, d := range delays {
		if d != "0s" {
			t.Errorf("a worker that served was restarted after %s; want at once", d)
			break
		}
	}
	// The last request may have been a fifth: let its crash and restart
	// settle, so that no worker dies of its own during the shutdown (that
	// would be a failure, and herd's exit code).
	var settled time.Time
	for {
		if r.stderr.count("worker listening") != r.stderr.count("worker started") {
			settled = time.Time{}
		} else if settled.IsZero() {
			settled = time.Now()
		} else if time.Since(settled) > 300*time.Millisecond {
			break
		}
		if time.Now().After(deadline.Add(hangGuard)) {
			t.Fatal("the workers did not settle after the requests")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := r.terminate(); code != 0 {
		t.Errorf("herd exited %d after SIGTERM, want 0", code)
	}
}

// A worker that listened and then leaves on its own without saying so
// (exit 0, or process.disconnect(), which makes Node's cluster code exit 0)
// is replaced, with a warning; one that said it was leaving
// (cluster.worker.disconnect()) has finished, as Node's primary counts it.
func TestUnaskedExitAfterListeningIsReplaced(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{workers: 2, policy: "rr", script: "node_lifecycle.js", args: []string{strconv.Itoa(port)}})
	r.waitListening(2)
	listened := 2
	for _, path := range []string{"/exit?code=0", "/pdisconnect"} {
		res := request("tcp", addr, path, 5*time.Second)
		if !res.ok() {
			t.Fatalf("%s: %v", path, res)
		}
		pid, _ := strconv.Atoi(res.body)
		ex := r.waitLog("worker exited", "pid", pid)
		if ex.str("code") != "0" {
			t.Errorf("%s: %s, want exit 0", path, ex.raw)
		}
		warn, _, err := r.stderr.find(0, hangGuard, func(l logLine) bool {
			p, _ := l.num("pid")
			return l.is("worker left without being asked to stop; replacing it") && p == pid
		})
		if err != nil {
			t.Errorf("%s: no warning that worker %d left unasked: %v", path, pid, err)
		} else if warn.str("level") != "WARN" {
			t.Errorf("%s: %s, want level WARN", path, warn.raw)
		}
		listened++
		if err := r.stderr.waitCount("worker listening", listened, hangGuard); err != nil {
			t.Fatalf("%s: worker %d was not replaced: %v", path, pid, err)
		}
	}
	// Said it was leaving: not replaced, and herd keeps serving with the
	// other worker.
	res := request("tcp", addr, "/leave", 5*time.Second)
	if !res.ok() {
		t.Fatalf("/leave: %v", res)
	}
	pid, _ := strconv.Atoi(res.body)
	if ex := r.waitLog("worker exited", "pid", pid); ex.str("code") != "0" {
		t.Errorf("/leave: %s, want exit 0", ex.raw)
	}
	starts := r.stderr.count("worker started")
	for i := 0; i < 10; i++ {
		if res := request("tcp", addr, "/", 5*time.Second); !res.ok() || res.body == strconv.Itoa(pid) {
			t.Errorf("after /leave: %v", res)
		}
	}
	if n := r.stderr.count("worker started"); n != starts {
		t.Errorf("a worker that said it was leaving was replaced (%d starts, then %d)", starts, n)
	}
	if code := r.terminate(); code != 0 {
		t.Errorf("herd exited %d after SIGTERM, want 0", code)
	}
}

// herd stops Node workers in steps: disconnect (servers stop accepting,
// in-flight requests finish), then the stop signal to a worker still
// there after HERD_DISCONNECT_GRACE, then SIGKILL at the timeout. An app
// holding 4 long requests whose SIGTERM handler answers them and exits thus
// gets to run its handler: herd exits 0 inside the timeout and every client
// has the handler's answer.
func TestNodeSIGTERMHandlerRunsOnShutdown(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const timeout = 8 * time.Second
	r := startNode(t, nodeOpts{workers: 2, policy: "rr", env: []string{"HERD_SHUTDOWN_TIMEOUT=" + timeout.String()},
		script: "node_lifecycle.js", args: []string{strconv.Itoa(port), "sigterm"}})
	r.waitListening(2)
	results := make(chan response, 4)
	for i := 0; i < 4; i++ {
		go func() { results <- request("tcp", addr, "/hold", 30*time.Second) }()
	}
	for deadline := time.Now().Add(hangGuard); len(appEvents(r, "held")) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the app holds %d requests, want 4", len(appEvents(r, "held")))
		}
	}
	stopped := time.Now()
	r.signal(unix.SIGTERM)
	code := r.exitCode(30 * time.Second)
	took := time.Since(stopped)
	for i := 0; i < 4; i++ {
		res := <-results
		if !res.ok() || !strings.HasPrefix(res.body, "handler ") {
			t.Errorf("held request: %v, want the SIGTERM handler's answer", res)
		}
	}
	if code != 0 || took >= timeout {
		t.Errorf("herd exited %d after %v; want 0 within the %v timeout", code, took.Round(time.Millisecond), timeout)
	}
	if n := len(appEvents(r, "sigterm")); n != 2 {
		t.Errorf("%d SIGTERM handlers ran, want 2", n)
	}
	t.Logf("herd exited %d %v after SIGTERM", code, took.Round(time.Millisecond))
}

// A ws server whose SIGTERM handler closes its clients with 1001: every
// client gets that close frame, and herd exits 0 inside the timeout.
func TestWebSocketServerClosesClientsOnShutdown(t *testing.T) {
	t.Parallel()
	requireNpm(t)
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const timeout = 8 * time.Second
	r := startNode(t, nodeOpts{workers: 2, policy: "rr", env: []string{"HERD_SHUTDOWN_TIMEOUT=" + timeout.String()},
		script: "npm/node_ws.js", args: []string{strconv.Itoa(port)}})
	r.waitListening(2)
	var conns []*wsConn
	for deadline := time.Now().Add(hangGuard); len(conns) < 4; {
		c, err := wsDial(addr)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("websocket: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		defer c.Close()
		conns = append(conns, c)
	}
	stopped := time.Now()
	r.signal(unix.SIGTERM)
	var wg sync.WaitGroup
	codes := make([]string, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = c.waitClose(30 * time.Second)
		}()
	}
	wg.Wait()
	code := r.exitCode(30 * time.Second)
	took := time.Since(stopped)
	for i, c := range codes {
		if c != "1001" {
			t.Errorf("client %d: %s, want a close frame with 1001", i, c)
		}
	}
	if code != 0 || took >= timeout {
		t.Errorf("herd exited %d after %v; want 0 within the %v timeout", code, took.Round(time.Millisecond), timeout)
	}
}

// An Express app with no signal handler: every request in flight when
// SIGTERM comes is finished, and herd exits 0.
func TestExpressWithoutHandlerFinishesInFlight(t *testing.T) {
	t.Parallel()
	requireNpm(t)
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{workers: 2, policy: "rr", env: []string{"HERD_SHUTDOWN_TIMEOUT=10s"},
		script: "npm/node_express.js", args: []string{strconv.Itoa(port)}})
	r.waitListening(2)
	results := make(chan response, 6)
	for i := 0; i < 6; i++ {
		go func() { results <- request("tcp", addr, "/slow?ms=2000", 30*time.Second) }()
	}
	time.Sleep(500 * time.Millisecond) // let all six reach a worker
	r.signal(unix.SIGTERM)
	code := r.exitCode(30 * time.Second)
	for i := 0; i < 6; i++ {
		if res := <-results; !res.ok() {
			t.Errorf("in-flight request: %v", res)
		}
	}
	if code != 0 {
		t.Errorf("herd exited %d, want 0", code)
	}
}

// A worker that breaks the cluster protocol is ended; every connection
// herd accepted is then answered by a worker or closed, never left open:
// 50 times, under load, a worker writes garbage on its channel, and no
// client waits more than 1 s past the death of a worker.
func TestProtocolErrorLeavesNoClientHanging(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{workers: 3, policy: "rr", cfg: map[string]any{"servers": []any{httpServer(port)}}})
	waitAppReady(t, r, 3)
	loop := startClientLoop(addr, "/", 6, 0)
	defer loop.Stop()
	var garbage []response
	const rounds = 50
	for i := 0; i < rounds; i++ {
		exits := r.stderr.count("worker exited")
		listening := r.stderr.count("worker listening")
		garbage = append(garbage, request("tcp", addr, "/garbage", 20*time.Second))
		err := r.stderr.waitCount("worker exited", exits+1, hangGuard)
		if err == nil {
			err = r.stderr.waitCount("worker listening", listening+1, hangGuard)
		}
		if err != nil {
			t.Fatalf("round %d: the garbage-writing worker was not replaced: %v", i, err)
		}
	}
	results := append(loop.Stop(), garbage...)
	var deaths []time.Time
	for _, l := range r.logs("worker exited") {
		deaths = append(deaths, logTime(t, l))
	}
	sort.Slice(deaths, func(i, j int) bool { return deaths[i].Before(deaths[j]) })
	if len(deaths) < rounds {
		t.Fatalf("%d worker exits, want %d", len(deaths), rounds)
	}
	// A request may wait for a worker that dies, but not for more than 1 s
	// after the last death it lived through.
	var late []string
	ok := 0
	for _, res := range results {
		if res.ok() {
			ok++
		}
		from := res.start
		for _, d := range deaths {
			if d.After(from) && d.Before(res.end) {
				from = d
			}
		}
		if w := res.end.Sub(from); w > time.Second {
			late = append(late, fmt.Sprintf("%v after %v", res, w.Round(time.Millisecond)))
		}
	}
	t.Logf("%d requests, %d answered, %d worker deaths", len(results), ok, len(deaths))
	if len(late) > 0 {
		t.Errorf("%d clients waited more than 1 s past a worker's death, e.g. %v", len(late), late[:min(5, len(late))])
	}
	if ok < len(results)/2 {
		t.Errorf("only %d of %d requests answered", ok, len(results))
	}
}

// HERD_LISTEN=127.0.0.1:P with an app that calls listen(P), no host: the
// app gets herd's socket on that port (with one log line saying so) rather
// than herd binding every address of P, which the socket already holds.
func TestListenPortOnlyGetsHerdListenSocket(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			r := startNode(t, nodeOpts{workers: 2, policy: policy, env: []string{"HERD_LISTEN=" + addr},
				script: "node_lifecycle.js", args: []string{strconv.Itoa(port)}})
			r.waitListening(2)
			seen := map[string]bool{}
			for i := 0; i < 40 && len(seen) < 2; i++ {
				res := request("tcp", addr, "/", 5*time.Second)
				if !res.ok() {
					t.Fatalf("request %d: %v", i, res)
				}
				seen[res.body] = true
			}
			if len(seen) < 2 && policy == "rr" {
				t.Errorf("answers came from %v, want both workers", seen)
			}
			if l := r.logs("worker listens on every address of a port HERD_LISTEN binds on one; it gets HERD_LISTEN's socket"); len(l) != 1 {
				t.Errorf("%d log lines about the port, want 1", len(l))
			}
			if n := r.stderr.count("worker exited"); n != 0 {
				t.Errorf("%d workers exited", n)
			}
			if code := r.terminate(); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// SIGTERM while Node workers start: a worker that has said online but not
// yet listened finishes its listen() before herd sends disconnect (Node's
// disconnect in the middle of listen() can leave the worker up), so herd
// exits 0 at once rather than after the disconnect grace. Ten times, the
// signal right after the first worker says online.
func TestSIGTERMWhileNodeWorkersStart(t *testing.T) {
	t.Parallel()
	for i := range 10 {
		port := freePort(t)
		r := startNode(t, nodeOpts{workers: 2, policy: "default", env: []string{"HERD_SHUTDOWN_TIMEOUT=20s"},
			script: "node_lifecycle.js", args: []string{strconv.Itoa(port)}})
		r.waitLog("worker online")
		stopped := time.Now()
		r.signal(unix.SIGTERM)
		code := r.exitCode(40 * time.Second)
		if took := time.Since(stopped); code != 0 || took > 5*time.Second {
			t.Fatalf("round %d: herd exited %d %v after SIGTERM; want 0, before the 10 s disconnect grace", i, code, took.Round(time.Millisecond))
		}
	}
}
