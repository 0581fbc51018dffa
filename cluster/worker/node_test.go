//go:build linux

package worker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireNode returns the path of node; without it the test is skipped, or
// fails under CI=true (the test command installs node).
func requireNode(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node not found on PATH (CI=true): %v", err)
		}
		t.Skipf("node not found on PATH: %v", err)
	}
	return path
}

// freePort returns a TCP port nothing listens on (for a moment).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runNodePrimary runs testdata/primary.js with examples/goserver as its
// workers and returns its events: one JSON array per line.
func runNodePrimary(t *testing.T, node, bin string, env ...string) (events [][]any, stderr string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "primary.js"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, bin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(3 * timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("node's primary did not finish\nstdout:\n%s\nstderr:\n%s", &out, &errb)
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev []any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			events = append(events, ev)
		}
	}
	t.Logf("node's primary: %v\nevents: %v\nstderr: %s", err, events, &errb)
	return events, errb.String()
}

func eventsOf(events [][]any, kind string) [][]any {
	var out [][]any
	for _, ev := range events {
		if ev[0] == kind {
			out = append(out, ev)
		}
	}
	return out
}

// TestNodePrimary checks the worker against node v20's own cluster primary,
// the reference the protocol was captured from (docs/protocol.md §10.1).
func TestNodePrimary(t *testing.T) {
	node := requireNode(t)
	bin := buildGoServer(t)

	for _, policy := range []string{"rr", "none"} {
		t.Run("serve "+policy, func(t *testing.T) {
			port := freePort(t)
			events, _ := runNodePrimary(t, node, bin, "POLICY="+policy, fmt.Sprint("PORT=", port), "SCENARIO=serve")
			if got := eventsOf(events, "listening"); len(got) != 2 {
				t.Fatalf("listening events %v, want 2", got)
			}
			for _, ev := range eventsOf(events, "listening") {
				if ev[2] != float64(port) {
					t.Errorf("listening on %v, want %d", ev[2], port)
				}
			}
			var pids []string
			for _, ev := range eventsOf(events, "response") {
				pids = append(pids, strings.Fields(ev[1].(string))[1])
			}
			if len(pids) != 4 {
				t.Fatalf("responses %v, want 4", pids)
			}
			if policy == "rr" && (pids[0] == pids[1] || pids[0] != pids[2] || pids[1] != pids[3]) {
				t.Errorf("rr: responses from %v, want strict alternation", pids)
			}
			expectExits(t, events, 2, 0)
		})
	}

	t.Run("sigterm", func(t *testing.T) {
		// The worker stops itself: exitedAfterDisconnect, acknowledged by
		// node's primary, which then counts the exit as planned.
		events, _ := runNodePrimary(t, node, bin, "POLICY=rr", fmt.Sprint("PORT=", freePort(t)), "SCENARIO=sigterm")
		expectExits(t, events, 2, 0)
	})

	t.Run("EADDRINUSE", func(t *testing.T) {
		taken, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		port := taken.Addr().(*net.TCPAddr).Port
		events, stderr := runNodePrimary(t, node, bin, "POLICY=rr", fmt.Sprint("PORT=", port), "SCENARIO=serve")
		if !strings.Contains(stderr, "bind: address already in use") {
			t.Errorf("stderr %q, want the bind error", stderr)
		}
		exits := eventsOf(events, "exit")
		if len(exits) != 2 {
			t.Fatalf("exits %v, want 2", exits)
		}
		for _, ev := range exits {
			if ev[2] != float64(1) {
				t.Errorf("exit %v, want code 1 (log.Fatal)", ev)
			}
		}
	})

	t.Run("primary dies", func(t *testing.T) {
		// The channel is the dead-man switch: EOF without disconnect ends the
		// worker at once.
		events, _ := runNodePrimary(t, node, bin, "POLICY=rr", fmt.Sprint("PORT=", freePort(t)), "SCENARIO=killprimary")
		pids := eventsOf(events, "pids")
		if len(pids) != 1 {
			t.Fatalf("no pids in %v", events)
		}
		for _, p := range pids[0][1].([]any) {
			pid := int(p.(float64))
			deadline := time.Now().Add(timeout)
			for alive(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("worker %d still running after its primary died", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
}

// expectExits checks n workers exited with code, as planned exits.
func expectExits(t *testing.T, events [][]any, n int, code float64) {
	t.Helper()
	exits := eventsOf(events, "exit")
	if len(exits) != n {
		t.Fatalf("exits %v, want %d", exits, n)
	}
	for _, ev := range exits {
		if ev[2] != code || ev[3] != nil || ev[4] != true {
			t.Errorf("exit %v, want [exit id %v null true]: code %v, no signal, exitedAfterDisconnect", ev, code, code)
		}
	}
}

// alive reports whether pid runs (a zombie, or no process, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
