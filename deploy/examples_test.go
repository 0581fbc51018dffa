package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// answerPid is the worker's pid in an example's answer: the X-Pid header,
// else "pid N" in the body.
var bodyPid = regexp.MustCompile(`\bpid (\d+)`)

func answerPid(resp *http.Response) (int, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if h := resp.Header.Get("X-Pid"); h != "" {
		return strconv.Atoi(h)
	}
	if m := bodyPid.FindSubmatch(body); m != nil {
		return strconv.Atoi(string(m[1]))
	}
	return 0, fmt.Errorf("no pid in %q", body)
}

// Every example serves under herd with the policy its README gives: two
// workers become ready, both answer, and SIGTERM ends herd with 0. Each
// herd runs in a network namespace of its own, so the examples' fixed
// port 8080 clashes with nothing on the machine.
func TestExamples(t *testing.T) {
	requireRoot(t)
	herd := goBuild(t, ".")
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, c := range []struct {
		name, policy string
		command      func(t *testing.T) []string
		env          []string
	}{
		{"node", "rr", func(t *testing.T) []string {
			return []string{requireTool(t, "node"), abs("examples/node/server.js")}
		}, nil},
		{"python", "none", func(t *testing.T) []string {
			return []string{requireTool(t, "python3"), abs("examples/python/server.py")}
		}, []string{"HERD_NODE_CHANNEL=false"}},
		{"goserver", "rr", func(t *testing.T) []string {
			return []string{goBuild(t, "./examples/goserver")}
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(herd, append([]string{"--"}, c.command(t)...)...)
			cmd.Env = append([]string{
				"PATH=" + os.Getenv("PATH"),
				"HERD_WORKERS=2", "HERD_LISTEN=:8080", "HERD_SCHED_POLICY=" + c.policy,
				"HERD_HEALTH_ADDR=:9090", "HERD_LOG_FORMAT=json",
			}, c.env...)
			logs := &logBuf{}
			cmd.Stdout, cmd.Stderr = logs, logs
			// No Pdeathsig: it fires when the thread that started herd ends,
			// and inNetns ends threads.
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("herd's output:\n%s", logs)
				}
			})
			pid := cmd.Process.Pid
			if err := loopbackUp(pid); err != nil {
				t.Fatal(err)
			}
			client := netnsClient(pid, 5*time.Second)

			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := client.Get("http://127.0.0.1:9090/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("not ready after 30 s: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}

			seen := map[int]bool{}
			for i := 0; i < 200 && len(seen) < 2; i++ {
				resp, err := client.Get("http://127.0.0.1:8080/")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				p, err := answerPid(resp)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				seen[p] = true
			}
			workers := logs.workerPids()
			if len(seen) != 2 || len(workers) != 2 {
				t.Errorf("answers came from pids %v, herd started %v: want two workers, both serving", seen, workers)
			}
			for p := range seen {
				if !workers[p] {
					t.Errorf("pid %d answered but is not one of herd's workers %v", p, workers)
				}
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				if err != nil {
					t.Errorf("herd after SIGTERM: %v, want exit 0", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("herd still running 30 s after SIGTERM")
			}
		})
	}
}
