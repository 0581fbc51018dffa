package acceptance

// The Python apps, standard library only:
//
//	testdata/listen_server.py  socket activation (LISTEN_FDS), sd_notify
//	                           READY=1 and WATCHDOG=1, /crash/I and /stall/S
//	                           for the failure cases.
//	testdata/life_server.py    a well-behaved worker for the lifecycle tests:
//	                           X-Worker-Pid, ?delay=MS, a graceful stop.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	pythonOnce sync.Once
	pythonPath string
)

// python3 is a Python 3 interpreter: the real executable behind python3 on
// PATH (sys.executable, so that a version manager's shim is not in the
// way), or, with forOthers, one that a user other than root can execute.
func python3(t *testing.T, forOthers bool) string {
	t.Helper()
	py := requireTool(t, "python3")
	pythonOnce.Do(func() {
		out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
		if p := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(p) {
			pythonPath = p
		}
	})
	cands := []string{py}
	if pythonPath != "" {
		cands = []string{pythonPath, py}
	}
	if !forOthers {
		return cands[0]
	}
	for _, p := range append(cands, "/usr/bin/python3", "/usr/local/bin/python3") {
		if othersMayRun(p) {
			return p
		}
	}
	missing(t, "a python3 that uid 65534 may execute (tried %v)", cands)
	return ""
}

// othersMayRun reports whether any user may execute path: every
// directory on the way may be searched, the file (after symbolic links) read
// and executed, by others.
func othersMayRun(path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	fi, err := os.Stat(real)
	if err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		return false
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return false
		}
		if dir == "/" {
			return true
		}
	}
}

// startLifeServers starts herd with n life_server workers on 127.0.0.1:0
// (plus env) and waits until n workers are listening.
func startLifeServers(t *testing.T, n int, env ...string) *service {
	t.Helper()
	py := python3(t, false)
	server := testdataPath(t, "life_server.py")
	e := append([]string{fmt.Sprintf("HERD_WORKERS=%d", n), "HERD_LISTEN=127.0.0.1:0"}, env...)
	r := start(t, spec{mode: asPID1, env: e, args: cmdArgs(py, server)})
	run := &service{herdRun: r, probeClient: client(3 * time.Second)}
	run.addr = r.waitLog("listening").str("bound")
	if _, port, err := net.SplitHostPort(run.addr); err == nil {
		run.port, _ = strconv.Atoi(port)
	}
	if run.port == 0 {
		t.Fatalf("herd's listening line has no bound address: %q", run.addr)
	}
	for _, kv := range e {
		if strings.HasPrefix(kv, "HERD_HEALTH_ADDR=") && kv != "HERD_HEALTH_ADDR=off" {
			run.probe = r.waitLog("serving probes").str("address")
		}
	}
	if err := r.stderr.waitCount("worker listening", n, hangGuard); err != nil {
		t.Fatalf("%d workers did not all say READY=1: %v", n, err)
	}
	return run
}

// serverFields parses "prefix k=v k=v ..." (a worker's start line).
func serverFields(raw, prefix string) (map[string]string, bool) {
	if !strings.HasPrefix(raw, prefix+" ") {
		return nil, false
	}
	m := map[string]string{}
	for _, f := range strings.Fields(raw[len(prefix):]) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	if m["pid"] == "" {
		return nil, false
	}
	return m, true
}

// waitServers waits for n start lines of workers (stdout lines "prefix
// pid=..."), from stdout line index from on, and returns them and the index
// after the last one.
func waitServers(t *testing.T, r *herdRun, prefix string, from, n int) ([]map[string]string, int) {
	t.Helper()
	var out []map[string]string
	for len(out) < n {
		l, i, err := r.stdout.find(from, hangGuard, func(l logLine) bool {
			_, ok := serverFields(l.raw, prefix)
			return ok
		})
		if err != nil {
			t.Fatalf("%d of %d %s start lines seen: %v", len(out), n, prefix, err)
		}
		m, _ := serverFields(l.raw, prefix)
		out = append(out, m)
		from = i + 1
	}
	return out, from
}

// samePort checks that every worker got one socket on the same port, that
// PORT says so, and returns the port.
func samePort(t *testing.T, ws []map[string]string) string {
	t.Helper()
	port := ws[0]["port"]
	for _, w := range ws {
		if w["port"] != port || w["env_port"] != port || w["listen_fds"] != "1" {
			t.Errorf("worker pid %s: port=%s PORT=%s LISTEN_FDS=%s; want every worker on one socket, port %s",
				w["pid"], w["port"], w["env_port"], w["listen_fds"], port)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 {
		t.Fatalf("bad port %q in worker line %v", port, ws[0])
	}
	return port
}

// crashWorker asks the worker in slot index to crash (GET /crash/INDEX: that
// worker answers "crashing" and exits 1; others answer "skip"), retrying
// until the request reaches it. It returns the crashed worker's pid.
func crashWorker(t *testing.T, c *http.Client, base string, index int) string {
	t.Helper()
	for i := 0; i < 500; i++ {
		code, body, err := get(c, fmt.Sprintf("%s/crash/%d", base, index))
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /crash/%d: code %d body %q err %v", index, code, body, err)
		}
		if strings.HasPrefix(body, "crashing ") {
			m, _ := serverFields(strings.TrimSpace(body), "crashing")
			return m["pid"]
		}
	}
	t.Fatalf("500 requests to /crash/%d never reached the worker of slot %d", index, index)
	return ""
}

// http10 sends "GET path HTTP/1.0" on conn and reads the response.
func http10(conn net.Conn, path string) (int, string, error) {
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// stallWorker makes the worker behind addr stop accepting: GET /stall/SECS is
// answered, then that worker accepts nothing for secs and exits 1. It
// returns the stalled worker's pid.
func stallWorker(t *testing.T, addr string, secs int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	code, body, err := http10(conn, fmt.Sprintf("/stall/%d", secs))
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "stalling ") {
		t.Fatalf("GET /stall/%d: code %d body %q err %v", secs, code, body, err)
	}
	m, _ := serverFields(strings.TrimSpace(body), "stalling")
	return m["pid"]
}

// queueRequests opens k connections to addr at once (they complete the
// handshake in the kernel and wait in the accept queue: nobody accepts),
// sends a request on each, and returns a function that reads every
// response and tallies the outcomes. It fails the test unless every
// connection was established.
func queueRequests(t *testing.T, addr string, k int) func() *tally {
	t.Helper()
	conns := make([]net.Conn, k)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			t.Fatalf("connection %d of %d to %s: %v", i+1, k, addr, err)
		}
		conns[i] = c
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: test\r\n\r\n"); err != nil {
			for _, c := range conns[:i+1] {
				c.Close()
			}
			t.Fatalf("write request %d: %v", i+1, err)
		}
	}
	return func() *tally {
		tl := newTally()
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(hangGuard))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					tl.add(0, "", err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				tl.add(resp.StatusCode, string(b), err)
			}(c)
		}
		wg.Wait()
		return tl
	}
}
