package acceptance

// herd on a terminal: script(1) gives it a pseudo-terminal as stdin,
// stdout and stderr, as a shell in a container with a tty would.

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runOnTerminal runs herd under script(1), which gives it a pseudo-terminal
// as stdin, stdout and stderr, and returns herd's output and exit code.
func runOnTerminal(t *testing.T, env []string, command string) (string, int) {
	t.Helper()
	script := requireTool(t, "script")
	herd := herdPath(t)
	quoted := "'" + strings.ReplaceAll(command, "'", `'\''`) + "'"
	line := strings.Join(append(env, herd, "--", "sh", "-c", quoted), " ")
	cmd := exec.Command(script, "-qec", line, "/dev/null")
	cmd.Env = cleanEnv()
	done := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill(); close(done) })
	out, err := cmd.CombinedOutput()
	if !timer.Stop() {
		<-done
		t.Fatalf("herd on a terminal did not finish; output:\n%s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// With one worker and a terminal on stdin, the worker's process group owns
// the terminal (tpgid == pgrp), so an interactive shell can read from it.
func TestTerminalHandedToWorker(t *testing.T) {
	out, code := runOnTerminal(t, []string{"HERD_WORKERS=1", "HERD_RESTART=never"},
		`set -- $(cat /proc/$$/stat); [ "$5" = "$8" ] && echo FOREGROUND || echo "BACKGROUND pgrp=$5 tpgid=$8"`)
	if code != 0 || !strings.Contains(out, "FOREGROUND") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// ^C at the terminal reaches the foreground worker, not herd; a worker
// killed that way means "stop", so herd ends with 130 instead of
// restarting it.
func TestTerminalInterruptStops(t *testing.T) {
	out, code := runOnTerminal(t, []string{"HERD_WORKERS=1", "HERD_LOG_FORMAT=json"}, `kill -INT $$`)
	if code != 130 {
		t.Errorf("exit %d, want 130; output:\n%s", code, out)
	}
	if strings.Contains(out, "restart scheduled") || strings.Count(out, `"worker started"`) != 1 {
		t.Errorf("the interrupted worker was restarted:\n%s", out)
	}
}
