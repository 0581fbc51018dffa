package acceptance

// The default policy, auto, serves every language: every worker gets
// HERD_LISTEN's sockets (LISTEN_FDS), and herd accepts and hands out the
// connections of an address only when the workers ask for it through
// Node's cluster protocol. Each kind of worker runs with no policy set.

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-sh/herd/health"
)

// startDefault starts herd as PID 1 with no HERD_SCHED_POLICY, HERD_LISTEN
// on a free port (also the last argument's port where command takes one:
// portArg), the probe server on 127.0.0.1:0, and command as the workers.
func startDefault(t *testing.T, command []string, env ...string) *service {
	t.Helper()
	port := freePort(t)
	argv := make([]string, len(command))
	for i, a := range command {
		argv[i] = strings.ReplaceAll(a, "{port}", strconv.Itoa(port))
	}
	e := append([]string{"HERD_LISTEN=:" + strconv.Itoa(port), "HERD_HEALTH_ADDR=127.0.0.1:0", "HERD_WORKERS=2"}, env...)
	r := start(t, spec{mode: asPID1, env: e, args: cmdArgs(argv...), unset: []string{"HERD_SCHED_POLICY", "NODE_CLUSTER_SCHED_POLICY"}})
	run := &service{herdRun: r, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, probeClient: client(2 * time.Second)}
	run.probe = r.waitLog("serving probes").str("address")
	return run
}

// servedBy sends n requests on new connections and returns how many each
// pid answered (the body's first number is the pid).
func servedBy(t *testing.T, s *service, n int) map[string]int {
	t.Helper()
	by := map[string]int{}
	for i := range n {
		code, body, err := get(s.probeClient, "http://"+s.addr+"/")
		if err != nil || code != 200 {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
		by[firstNumber(body)]++
	}
	return by
}

// firstNumber is the first run of digits in s.
func firstNumber(s string) string {
	i := strings.IndexAny(s, "0123456789")
	if i < 0 {
		return ""
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	return s[i:j]
}

// checkAuto: both workers served, herd handed the connections out itself
// exactly when handingOut is set, and SIGTERM ends herd with wantExit.
func checkAuto(t *testing.T, s *service, handingOut bool, wantExit int) {
	t.Helper()
	st := s.waitStatus(t, "both workers listening", func(st health.Status) bool { return st.Listening == 2 })
	by := servedBy(t, s, 20)
	if len(by) != 2 {
		t.Errorf("answers by pid %v, want both workers", by)
	}
	st = s.status(t)
	if st.Policy != "auto" || st.HandingOut != handingOut {
		t.Errorf("/status policy %q handing_out %v, want auto and %v", st.Policy, st.HandingOut, handingOut)
	}
	handed := uint64(0)
	if st.Connections != nil {
		handed = st.Connections.HandedOff
	}
	if handingOut && handed < 20 || !handingOut && handed != 0 {
		t.Errorf("herd handed out %d connections; want all 20 when it hands out, none otherwise", handed)
	}
	chose := len(s.logs("policy auto: workers listen through Node's cluster protocol; herd hands out their connections (rr)"))
	if handingOut && chose != 1 || !handingOut && chose != 0 {
		t.Errorf("%d log lines saying herd hands connections out, want %d", chose, map[bool]int{true: 1}[handingOut])
	}
	if code := s.terminate(); code != wantExit {
		t.Errorf("herd exited %d, want %d", code, wantExit)
	}
	t.Logf("answers by pid %v, handed out %d", by, handed)
}

// An unmodified Node server is served round-robin by herd.
func TestDefaultPolicyNodeServedRoundRobin(t *testing.T) {
	t.Parallel()
	node := requireTool(t, "node")
	s := startDefault(t, []string{node, testdataPath(t, "node_lifecycle.js"), "{port}"})
	checkAuto(t, s, true, 0)
}

// A Python server that takes its socket from LISTEN_FDS serves directly
// (it has no SIGTERM handler: herd ends with 143, as its workers do).
func TestDefaultPolicyPythonListenFDsServesDirectly(t *testing.T) {
	t.Parallel()
	s := startDefault(t, []string{python3(t, false), testdataPath(t, "listen_server.py")})
	checkAuto(t, s, false, 143)
}

// gunicorn serves directly from herd's socket: it reads LISTEN_FDS and
// LISTEN_PID itself (systemd's socket activation), so no --bind is given.
func TestDefaultPolicyGunicornServesDirectly(t *testing.T) {
	t.Parallel()
	gunicorn := requireTool(t, "gunicorn")
	s := startDefault(t, []string{gunicorn, "--workers", "1", "--chdir", filepath.Dir(testdataPath(t, "wsgi_pid.py")), "wsgi_pid:app"},
		"HERD_READY_SIGNAL=started")
	checkAuto(t, s, false, 0)
}

// A Go server using herd's worker package asks through the protocol, and
// herd hands its connections out.
func TestDefaultPolicyGoWorkerPackage(t *testing.T) {
	t.Parallel()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "goserver")
	build := exec.Command("go", "build", "-o", bin, "./examples/goserver")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/goserver: %v\n%s", err, out)
	}
	s := startDefault(t, []string{bin})
	checkAuto(t, s, true, 0)
}
