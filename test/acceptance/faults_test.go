package acceptance

// Faults as users meet them, with real Node apps under herd as PID 1: a
// worker that serves and then crashes, a worker that leaves on its own, a
// stop that must reach the app's own SIGTERM handler, a worker that breaks
// the cluster protocol while clients wait, and an app that listens on the
// port HERD_LISTEN names.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// npmPath is testdata/npm/name, an app that needs the packages test.sh
// installs there (npm ci): missing packages fail the test under CI=true.
func npmPath(t *testing.T, name string) string {
	t.Helper()
	for _, pkg := range []string{"ws", "express"} {
		if _, err := os.Stat(filepath.Join("testdata", "npm", "node_modules", pkg)); err != nil {
			missing(t, "npm package %s in testdata/npm (npm ci --prefix testdata/npm): %v", pkg, err)
		}
	}
	return testdataPath(t, filepath.Join("npm", name))
}

// nodeApp starts herd with workers running node script args..., as PID 1.
func nodeApp(t *testing.T, workers int, policy string, env []string, script string, args ...string) *herdRun {
	t.Helper()
	node := requireTool(t, "node")
	e := append([]string{"HERD_WORKERS=" + strconv.Itoa(workers), "HERD_SCHED_POLICY=" + policy}, env...)
	return start(t, spec{env: e, args: cmdArgs(append([]string{node, script}, args...)...)})
}

// appEvents are the "@@ {json}" lines an app wrote on stdout.
func appEvents(r *herdRun, what string) []map[string]any {
	var out []map[string]any
	for _, l := range r.stdout.snapshot() {
		raw, ok := strings.CutPrefix(l.raw, "@@ ")
		if !ok {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) == nil && m["what"] == what {
			out = append(out, m)
		}
	}
	return out
}

// A worker that listened and served, then crashed, is replaced at once:
// the textbook server that throws after answering one request in five,
// with 2 workers, answers at least 995 of 1,000 requests sent one after
// another, each on a new connection. (Before, a few such exits put both
// slots in a restart delay of up to 16 s and nothing served.)
func TestServedWorkerCrashRestartsAtOnce(t *testing.T) {
	t.Parallel()
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := nodeApp(t, 2, "rr", nil, testdataPath(t, "node_crashy.js"), strconv.Itoa(port))
	ndListening(t, r, 2)
	const total = 1000
	var ok int
	var failed []ndResp
	deadline := time.Now().Add(3 * time.Minute) // a hang guard, not a measure
	sent := 0
	for ; sent < total && time.Now().Before(deadline); sent++ {
		res := ndGet("tcp", addr, "/", 5*time.Second)
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
		if time.Now().After(deadline.Add(ndGuard)) {
			t.Fatal("the workers did not settle after the requests")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := ndStop(t, r); code != 0 {
		t.Errorf("herd exited %d after SIGTERM, want 0", code)
	}
}

// A worker that listened and then leaves on its own without saying so
// (exit 0, or process.disconnect(), which makes Node's cluster code exit 0)
// is replaced, with a warning; one that said it was leaving
// (cluster.worker.disconnect()) has finished, as Node's primary counts it.
func TestUnaskedExitAfterListeningIsReplaced(t *testing.T) {
	t.Parallel()
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := nodeApp(t, 2, "rr", nil, testdataPath(t, "node_lifecycle.js"), strconv.Itoa(port))
	ndListening(t, r, 2)
	listened := 2
	for _, path := range []string{"/exit?code=0", "/pdisconnect"} {
		res := ndGet("tcp", addr, path, 5*time.Second)
		if !res.ok() {
			t.Fatalf("%s: %v", path, res)
		}
		pid, _ := strconv.Atoi(res.body)
		ex := ndExited(t, r, pid)
		if ex.str("code") != "0" {
			t.Errorf("%s: %s, want exit 0", path, ex.raw)
		}
		warn, _, found := r.stderr.find(0, ndGuard, func(l logLine) bool {
			p, _ := l.num("pid")
			return l.is("worker left without being asked to stop; replacing it") && p == pid
		})
		if !found {
			t.Errorf("%s: no warning that worker %d left unasked", path, pid)
		} else if warn.str("level") != "WARN" {
			t.Errorf("%s: %s, want level WARN", path, warn.raw)
		}
		listened++
		if !r.stderr.waitCount("worker listening", listened, ndGuard) {
			t.Fatalf("%s: worker %d was not replaced", path, pid)
		}
	}
	// Said it was leaving: not replaced, and herd keeps serving with the
	// other worker.
	res := ndGet("tcp", addr, "/leave", 5*time.Second)
	if !res.ok() {
		t.Fatalf("/leave: %v", res)
	}
	pid, _ := strconv.Atoi(res.body)
	if ex := ndExited(t, r, pid); ex.str("code") != "0" {
		t.Errorf("/leave: %s, want exit 0", ex.raw)
	}
	starts := r.stderr.count("worker started")
	for i := 0; i < 10; i++ {
		if res := ndGet("tcp", addr, "/", 5*time.Second); !res.ok() || res.body == strconv.Itoa(pid) {
			t.Errorf("after /leave: %v", res)
		}
	}
	if n := r.stderr.count("worker started"); n != starts {
		t.Errorf("a worker that said it was leaving was replaced (%d starts, then %d)", starts, n)
	}
	if code := ndStop(t, r); code != 0 {
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
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const timeout = 8 * time.Second
	r := nodeApp(t, 2, "rr", []string{"HERD_SHUTDOWN_TIMEOUT=" + timeout.String()},
		testdataPath(t, "node_lifecycle.js"), strconv.Itoa(port), "sigterm")
	ndListening(t, r, 2)
	results := make(chan ndResp, 4)
	for i := 0; i < 4; i++ {
		go func() { results <- ndGet("tcp", addr, "/hold", 30*time.Second) }()
	}
	for deadline := time.Now().Add(ndGuard); len(appEvents(r, "held")) < 4; time.Sleep(20 * time.Millisecond) {
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
	app := npmPath(t, "node_ws.js")
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const timeout = 8 * time.Second
	r := nodeApp(t, 2, "rr", []string{"HERD_SHUTDOWN_TIMEOUT=" + timeout.String()}, app, strconv.Itoa(port))
	ndListening(t, r, 2)
	var conns []*wsConn
	for deadline := time.Now().Add(ndGuard); len(conns) < 4; {
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
	app := npmPath(t, "node_express.js")
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := nodeApp(t, 2, "rr", []string{"HERD_SHUTDOWN_TIMEOUT=10s"}, app, strconv.Itoa(port))
	ndListening(t, r, 2)
	results := make(chan ndResp, 6)
	for i := 0; i < 6; i++ {
		go func() { results <- ndGet("tcp", addr, "/slow?ms=2000", 30*time.Second) }()
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
	port := ndFreePort(t, "tcp", "")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := ndStart(t, ndOpts{workers: 3, policy: "rr", cfg: map[string]any{"servers": []any{ndHTTP(port)}}})
	ndReady(t, r, 3)
	loop := ndStartLoop(addr, "/", 6, 0)
	defer loop.Stop()
	var garbage []ndResp
	const rounds = 50
	for i := 0; i < rounds; i++ {
		exits := r.stderr.count("worker exited")
		listening := r.stderr.count("worker listening")
		garbage = append(garbage, ndGet("tcp", addr, "/garbage", 20*time.Second))
		if !r.stderr.waitCount("worker exited", exits+1, ndGuard) || !r.stderr.waitCount("worker listening", listening+1, ndGuard) {
			t.Fatalf("round %d: the garbage-writing worker was not replaced", i)
		}
	}
	results := append(loop.Stop(), garbage...)
	var deaths []time.Time
	for _, l := range r.logs("worker exited") {
		deaths = append(deaths, ndLogTime(t, l))
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
			port := ndFreePort(t, "tcp", "")
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			r := nodeApp(t, 2, policy, []string{"HERD_LISTEN=" + addr}, testdataPath(t, "node_lifecycle.js"), strconv.Itoa(port))
			ndListening(t, r, 2)
			seen := map[string]bool{}
			for i := 0; i < 40 && len(seen) < 2; i++ {
				res := ndGet("tcp", addr, "/", 5*time.Second)
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
			if code := ndStop(t, r); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// A minimal WebSocket client (RFC 6455): the handshake, text frames in, and
// the close frame's status code.

type wsConn struct {
	c  net.Conn
	br *bufio.Reader
}

func wsDial(addr string) (*wsConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	w := &wsConn{c: c, br: br}
	if op, payload, err := w.frame(); err != nil || op != 1 || !strings.HasPrefix(string(payload), "hello ") {
		c.Close()
		return nil, fmt.Errorf("greeting: opcode %d %q %v", op, payload, err)
	}
	_ = c.SetDeadline(time.Time{})
	return w, nil
}

// frame reads one unfragmented server frame (servers do not mask).
func (w *wsConn) frame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(w.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(w.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil || n > 1<<20 {
		return 0, nil, fmt.Errorf("frame length %d: %v", n, err)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return h[0] & 0x0f, payload, err
}

// waitClose reads frames until a close frame, answers it with a close
// frame of the same code as a client must (the server waits for that),
// and returns the code, or what came instead.
func (w *wsConn) waitClose(guard time.Duration) string {
	_ = w.c.SetDeadline(time.Now().Add(guard))
	for {
		op, payload, err := w.frame()
		if err != nil {
			return "no close frame: " + err.Error()
		}
		if op != 8 {
			continue
		}
		if len(payload) < 2 {
			return "close frame without a code"
		}
		// A client's frames are masked; a zero mask leaves the payload as is.
		_, _ = w.c.Write([]byte{0x88, 0x80 | 2, 0, 0, 0, 0, payload[0], payload[1]})
		// The server then closes the connection; so does the client.
		_, _ = io.Copy(io.Discard, w.br)
		w.c.Close()
		return strconv.Itoa(int(binary.BigEndian.Uint16(payload)))
	}
}

func (w *wsConn) Close() error { return w.c.Close() }
