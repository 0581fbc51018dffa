package acceptance

// A herd serving workers on a TCP port, with its probe server.

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// service is a herd serving workers on a TCP port, and its probe server
// (probes_test.go) when it has one.
type service struct {
	*herdRun
	addr        string // the service's address, 127.0.0.1:port
	port        int
	probe       string       // host:port of the probe server, "" when off
	probeClient *http.Client // opens a new connection for every request, as the kubelet does
}

// startDemo starts herd as PID 1 with HERD_LISTEN=:port, the probe server on
// 127.0.0.1:0, env, and the workers of demoWorker(prefix).
func startDemo(t *testing.T, prefix string, env ...string) *service {
	t.Helper()
	port := freePort(t)
	e := append([]string{"HERD_LISTEN=:" + strconv.Itoa(port), "HERD_HEALTH_ADDR=127.0.0.1:0"}, env...)
	r := start(t, spec{mode: asPID1, env: e, args: demoWorker(t, prefix)})
	run := &service{herdRun: r, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, probeClient: client(2 * time.Second)}
	run.probe = r.waitLog("serving probes").str("address")
	if run.probe == "" {
		t.Fatal("no probe address in herd's log")
	}
	return run
}

// demoWorker is the shell line that runs herd's demo worker:
// `prefix; exec herd demo-worker` (the exec keeps the pid herd started, so
// signals to it reach the Go server itself). The worker listens on $PORT,
// which herd sets under every policy.
func demoWorker(t *testing.T, prefix string) []string {
	line := fmt.Sprintf("exec %s demo-worker", herdPath(t))
	if prefix != "" {
		line = prefix + "; " + line
	}
	return cmdArgs("/bin/sh", "-c", line)
}

// requests sends n requests to the service, each on a new connection
// (Connection: close), and fails unless each is answered by a worker.
func (r *service) requests(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		code, body, err := get(r.probeClient, "http://"+r.addr+"/")
		if err != nil && code == 0 {
			t.Fatalf("request %d: %v", i, err)
		}
		if code != 200 || !strings.HasPrefix(body, "hello from herd's demo") {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
}
