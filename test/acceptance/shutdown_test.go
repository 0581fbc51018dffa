package acceptance

// docs/acceptance.md "Shutdown" (D1-D6).

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// drainScript: the worker traps TERM and needs 1 s to finish; so does its
// child (same process group). Markers go to $1.
const drainScript = `
trap 'sleep 1; touch "$1/A"; exit 0' TERM
sh -c 'trap "sleep 1; touch \"\$1/B\"; exit 0" TERM; touch "$1/readyB"; while :; do sleep 0.1; done' sh "$1" &
touch "$1/readyA"
while :; do sleep 0.1; done
`

// SIGTERM → the handlers of the worker and of its child both finish
// before herd exits. tini (Debian's /usr/bin/tini, default mode, as PID 1)
// is run the same way to show the failure herd avoids: tini signals only
// its child, exits when that child exits, and the kernel kills the
// grandchild before its handler ran.
//
// Catalogue: D1.
func TestSIGTERMLetsEveryHandlerFinish(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, s spec, dir string) int {
		r := start(t, s)
		waitFile(t, filepath.Join(dir, "readyA"), 20*time.Second)
		waitFile(t, filepath.Join(dir, "readyB"), 20*time.Second)
		if err := syscall.Kill(r.root, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		return r.exitCode(30 * time.Second)
	}
	t.Run("herd", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code := run(t, spec{env: []string{"HERD_WORKERS=1"}, args: cmdArgs("sh", "-c", drainScript, "sh", dir)}, dir)
		if code != 0 {
			t.Errorf("exit code %d, want 0 (the worker's handler exits 0)", code)
		}
		for _, m := range []string{"A", "B"} {
			if !exists(filepath.Join(dir, m)) {
				t.Errorf("handler %s did not finish before herd exited", m)
			}
		}
	})
	t.Run("tini", func(t *testing.T) {
		t.Parallel()
		tini := requireTool(t, "/usr/bin/tini")
		dir := t.TempDir()
		code := run(t, spec{prog: tini, args: []string{"--", "sh", "-c", drainScript, "sh", dir}}, dir)
		if code != 0 {
			t.Errorf("tini exit code %d, want 0", code)
		}
		if !exists(filepath.Join(dir, "A")) {
			t.Errorf("tini's child handler A did not finish")
		}
		if exists(filepath.Join(dir, "B")) {
			t.Errorf("tini's grandchild handler B finished: tini's known failure did not reproduce, so this comparison shows nothing")
		}
	})
}

// termIgnoringWorker ignores TERM (its sleeps inherit SIG_IGN) and touches
// $1 when ready.
var termIgnoringWorker = []string{"sh", "-c", `trap '' TERM; touch "$1"; while :; do sleep 0.1; done`, "sh"}

// A worker that ignores TERM is SIGKILLed after the shutdown timeout and
// herd exits 137; a second signal skips the wait.
//
// Catalogue: D2.
func TestShutdownTimeoutEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		ready := filepath.Join(t.TempDir(), "ready")
		r := start(t, spec{
			env:  []string{"HERD_WORKERS=1", "HERD_SHUTDOWN_TIMEOUT=1s"},
			args: cmdArgs(append(termIgnoringWorker, ready)...),
		})
		waitFile(t, ready, 20*time.Second)
		r.signal(syscall.SIGTERM)
		if got := r.exitCode(10 * time.Second); got != 137 {
			t.Errorf("exit code %d, want 137", got)
		}
		r.waitLog("shutdown", "signal", "TERM")
		r.waitLog("shutdown timeout")
	})
	t.Run("TERM-ignoring child outlives the worker", func(t *testing.T) {
		t.Parallel()
		// The worker (group leader) dies of TERM at once; its child in the
		// same process group ignores TERM and must be SIGKILLed too.
		ready := filepath.Join(t.TempDir(), "ready")
		script := `sh -c 'trap "" TERM; touch "$1"; while :; do sleep 0.1; done' sh "$1" & exec sleep 100`
		r := start(t, spec{
			env:  []string{"HERD_WORKERS=1", "HERD_SHUTDOWN_TIMEOUT=1s"},
			args: cmdArgs("sh", "-c", script, "sh", ready),
		})
		waitFile(t, ready, 20*time.Second)
		r.waitProc(r.root, "sleep", 20*time.Second)
		r.signal(syscall.SIGTERM)
		if got := r.exitCode(30 * time.Second); got != 137 {
			t.Errorf("exit code %d, want 137 (the TERM-ignoring child had to be SIGKILLed)", got)
		}
		if l := r.waitLog("shutdown timeout"); l.str("killed") == "0" {
			t.Errorf("shutdown timeout killed nothing although a process ignored TERM: %s", l.raw)
		}
	})
	t.Run("second signal", func(t *testing.T) {
		t.Parallel()
		ready := filepath.Join(t.TempDir(), "ready")
		r := start(t, spec{
			env:  []string{"HERD_WORKERS=1", "HERD_SHUTDOWN_TIMEOUT=300s"},
			args: cmdArgs(append(termIgnoringWorker, ready)...),
		})
		waitFile(t, ready, 20*time.Second)
		r.signal(syscall.SIGTERM)
		r.waitLog("shutdown")
		r.signal(syscall.SIGINT)
		// The guard is far below the 300 s timeout: only skipping the wait passes.
		if got := r.exitCode(60 * time.Second); got != 137 {
			t.Errorf("exit code %d, want 137", got)
		}
	})
}

// A daemonised descendant in its own session and process group gets
// the stop signal too, and herd waits for it.
//
// Catalogue: D3.
func TestDaemonisedDescendantGetsStopSignal(t *testing.T) {
	t.Parallel()
	requireTool(t, "setsid")
	dir := t.TempDir()
	script := `
setsid sh -c 'trap "touch \"\$1/C\"; exit 0" TERM; touch "$1/ready"; while :; do sleep 0.1; done' sh "$1" &
exec sleep 100
`
	r := start(t, spec{env: []string{"HERD_WORKERS=1"}, args: cmdArgs("sh", "-c", script, "sh", dir)})
	waitFile(t, filepath.Join(dir, "ready"), 20*time.Second)
	worker := r.waitProc(r.root, "sleep", 20*time.Second)
	// Prove the daemon left the worker's session.
	sid := func(pid int) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 4 {
			return ""
		}
		return f[3] // state ppid pgrp session
	}
	daemonSeen := false
	for _, p := range descendants(r.root) {
		if p.comm == "sh" && sid(p.pid) != sid(worker) {
			daemonSeen = true
		}
	}
	if !daemonSeen {
		t.Fatalf("no descendant in another session: the setup is wrong")
	}
	r.signal(syscall.SIGTERM)
	if got := r.exitCode(30 * time.Second); got != 143 {
		t.Errorf("exit code %d, want 143 (worker killed by TERM)", got)
	}
	if !exists(filepath.Join(dir, "C")) {
		t.Errorf("the daemonised descendant did not get TERM (or herd did not wait for it)")
	}
}

// The termination message is written (at most 4 KiB) when the path is
// writable; herd does not fail when it is not.
//
// Catalogue: D4.
func TestTerminationMessageWithin4KiB(t *testing.T) {
	t.Parallel()
	t.Run("writable", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "termination-log")
		_, code := runHerd(t, spec{
			env:  append([]string{"HERD_TERMINATION_LOG=" + path}, oneWorkerNever...),
			args: cmdArgs("sh", "-c", "exit 3"),
		})
		if code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("termination message not written: %v", err)
		}
		if len(b) == 0 || len(b) > 4096 {
			t.Errorf("termination message is %d bytes, want 1..4096", len(b))
		}
	})
	t.Run("many workers stay within 4 KiB", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "termination-log")
		_, code := runHerd(t, spec{
			env:  []string{"HERD_TERMINATION_LOG=" + path, "HERD_WORKERS=300", "HERD_RESTART=never", "HERD_LOG_LEVEL=info"},
			args: cmdArgs("sh", "-c", "exit $((HERD_WORKER_INDEX % 7))"),
		})
		if code < 1 || code > 6 {
			t.Errorf("exit code %d, want one of the failed workers' codes 1..6", code)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("termination message not written: %v", err)
		}
		if len(b) == 0 || len(b) > 4096 {
			t.Errorf("termination message is %d bytes, want 1..4096", len(b))
		}
	})
	t.Run("not writable", func(t *testing.T) {
		t.Parallel()
		_, code := runHerd(t, spec{
			env:  append([]string{"HERD_TERMINATION_LOG=/nonexistent-dir/x"}, oneWorkerNever...),
			args: cmdArgs("sh", "-c", "exit 3"),
		})
		if code != 3 {
			t.Errorf("exit code %d with an unwritable termination log, want 3", code)
		}
	})
}

// herd runs as uid 65534 with a read-only root and no_new_privs, and
// passes the worker's code through (the default termination-log path is
// not writable, which is fine).
//
// Catalogue: D5.
func TestRunsUnprivilegedOnReadOnlyRoot(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "herd-d5-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	script := `id -u; grep NoNewPrivs /proc/self/status; if touch "$1/w" 2>/dev/null; then echo writable; fi; exit 3`
	r, code := runHerd(t, spec{
		roRoot: true, nnp: true, nobody: true, dir: dir,
		env:  append([]string{"HERD_TERMINATION_LOG=/dev/termination-log"}, oneWorkerNever...),
		args: cmdArgs("sh", "-c", script, "sh", dir),
	})
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	out := r.stdout.text()
	if !strings.Contains(out, "65534\n") || !regexp.MustCompile(`NoNewPrivs:\s+1`).MatchString(out) || strings.Contains(out, "writable") {
		t.Errorf("the worker did not run unprivileged on a read-only root:\n%s", out)
	}
}

// herd not PID 1 (its PID namespace's init is a reaping helper, as in a
// pod with a shared process namespace): it is a subreaper (the worker's
// orphans come to herd, not to the namespace's init), and it never calls
// kill(-1, ...), not even when the shutdown timeout makes it SIGKILL a
// TERM-ignoring daemon: strace shows no such call and a bystander process
// of the namespace survives.
//
// Catalogue: D6.
func TestNotPID1StaysSubreaperNeverKillsAll(t *testing.T) {
	t.Parallel()
	strace := requireTool(t, "strace")
	tmp := t.TempDir()
	trace := filepath.Join(tmp, "strace.out")
	done := filepath.Join(tmp, "done")
	script := `
i=0; while [ $i -lt 20 ]; do (sleep 0.05 &); i=$((i+1)); done
setsid sh -c 'trap "" TERM; while :; do sleep 0.1; done' &
sleep 0.5; touch "$1"; exec sleep 100`
	r := start(t, spec{
		mode:    underNSInit,
		bystand: true,
		wrap:    []string{strace, "-f", "-qq", "-e", "trace=kill", "-o", trace},
		env:     []string{"HERD_WORKERS=1", "HERD_SHUTDOWN_TIMEOUT=1s"},
		args:    cmdArgs("sh", "-c", script, "sh", done),
	})
	waitFile(t, done, 60*time.Second)
	if n, err := r.waitOrphans(20); err != nil {
		t.Errorf("%d \"orphan reaped\" records, want >= 20 (herd is not a subreaper?): %v", n, err)
	}
	r.signal(syscall.SIGTERM)
	if got := r.exitCode(30 * time.Second); got != 137 {
		t.Errorf("exit code %d, want 137 (a TERM-ignoring process was SIGKILLed)", got)
	}
	out := r.stdout.text()
	if strings.Contains(out, " orphan\n") {
		t.Errorf("orphans of herd's worker reached the namespace's init:\n%s", out)
	}
	if !strings.Contains(out, "nsinit bystander alive\n") {
		t.Errorf("a bystander process outside herd's tree did not survive herd's shutdown:\n%s", out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, "kill(") {
		t.Fatalf("strace recorded no kill() at all; cannot prove kill(-1) is absent:\n%s", text)
	}
	if strings.Contains(text, "kill(-1,") {
		t.Errorf("herd called kill(-1, ...) while not PID 1:\n%s", text)
	}
}
