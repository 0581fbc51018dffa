package acceptance

// docs/acceptance.md "Reaping" (R1-R7).

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stormScript: the worker double-forks 100 short-lived grandchildren (the
// subshell exits at once, the sleep is orphaned), lets them die, touches $1
// and stays alive so the test can look for zombies while herd runs.
const stormScript = `
i=0
while [ $i -lt 100 ]; do (sleep 0.05 &); i=$((i+1)); done
sleep 1
touch "$1"
exec sleep 100
`

// waitNoZombies polls the zombie detector under root until it finds none
// (a just-exited orphan may be seen for an instant before it is reaped).
func waitNoZombies(t *testing.T, r *herdRun, root int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		z := zombies(root)
		if len(z) == 0 {
			return
		}
		if r.exited() {
			t.Fatalf("herd exited while zombies were checked")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d zombies remain under pid %d, e.g. %+v", len(z), root, z[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An orphan storm leaves no zombie, as PID 1 and as a child subreaper.
//
// Catalogue: R1.
func TestOrphanStormLeavesNoZombie(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		mode runMode
	}{{"PID 1", asPID1}, {"subreaper", underKeeper}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			done := filepath.Join(t.TempDir(), "storm-done")
			r := start(t, spec{
				mode: mode.mode,
				env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never"},
				args: cmdArgs("sh", "-c", stormScript, "sh", done),
			})
			waitFile(t, done, 60*time.Second)
			waitNoZombies(t, r, r.root)
			if n, err := r.waitOrphans(100); err != nil {
				t.Errorf("%d \"orphan reaped\" records, want >= 100 (the orphans did not reach herd): %v", n, err)
			}
			waitNoZombies(t, r, r.root)
			r.signal(syscall.SIGTERM)
			if got := r.exitCode(30 * time.Second); got != 143 {
				t.Errorf("exit code after SIGTERM %d, want 143", got)
			}
			if mode.mode == underKeeper && !strings.Contains(r.stderr.text(), "keeper: orphans=0\n") {
				t.Errorf("orphans passed herd and reached its parent subreaper (want keeper: orphans=0)")
			}
		})
	}
}

// Negative control. herd is not PID 1 and not a subreaper
// (HERD_SUBREAPER=false): the orphans go to the keeper, which does not reap
// them while herd runs, so the detector of R1 must see zombies.
//
// Catalogue: R2.
func TestZombieDetectorSeesUnreapedOrphans(t *testing.T) {
	t.Parallel()
	done := filepath.Join(t.TempDir(), "storm-done")
	r := start(t, spec{
		mode: underKeeper,
		env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never", "HERD_SUBREAPER=false"},
		args: cmdArgs("sh", "-c", stormScript, "sh", done),
	})
	waitFile(t, done, 60*time.Second)
	var z []proc
	deadline := time.Now().Add(5 * time.Second)
	for len(z) == 0 && time.Now().Before(deadline) {
		z = zombies(r.root)
		time.Sleep(20 * time.Millisecond)
	}
	if len(z) == 0 {
		t.Errorf("the zombie detector found no zombie although nothing reaps the orphans: it cannot fail")
	} else {
		t.Logf("detector saw %d zombies (expected: the negative control works)", len(z))
	}
	r.signal(syscall.SIGTERM)
	r.exitCode(30 * time.Second)
	if strings.Contains(r.stderr.text(), "keeper: orphans=0\n") {
		t.Errorf("the keeper received no orphan: HERD_SUBREAPER=false did not take effect")
	}
}

// Spurious SIGCHLD while workers run: nothing reported, no CPU spin.
//
// Catalogue: R3.
func TestSpuriousSIGCHLDIsHarmless(t *testing.T) {
	t.Parallel()
	r := start(t, spec{env: []string{"HERD_WORKERS=2"}, args: cmdArgs("sleep", "100")})
	if err := r.stderr.waitCount("worker started", 2, 20*time.Second); err != nil {
		t.Fatalf("two workers did not start: %v", err)
	}
	herd := r.herdPID()
	before, err := cpuTicks(herd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		r.signal(syscall.SIGCHLD)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	after, err := cpuTicks(herd)
	if err != nil {
		t.Fatalf("herd gone after spurious SIGCHLD: %v", err)
	}
	// Hang/spin guard, not a speed claim: a spinning herd burns ~2.5 s of CPU here.
	if used := after - before; used >= 100 {
		t.Errorf("herd used %d clock ticks of CPU in 2.5 s of spurious SIGCHLD (spin?)", used)
	}
	for _, l := range r.stderr.snapshot() {
		if lv := l.str("level"); lv == "WARN" || lv == "ERROR" {
			t.Errorf("spurious SIGCHLD was reported: %s", l.raw)
		}
	}
	if n := len(r.logs("worker exited")); n != 0 {
		t.Errorf("%d workers exited after spurious SIGCHLD", n)
	}
	r.signal(syscall.SIGTERM)
	if got := r.exitCode(30 * time.Second); got != 143 {
		t.Errorf("exit code %d, want 143", got)
	}
}

// 200 rounds of two children dying within microseconds never hang.
//
// Catalogue: R4.
func TestCoalescedSIGCHLDNeverHangs(t *testing.T) {
	t.Parallel()
	t.Run("orphan pairs", func(t *testing.T) {
		t.Parallel()
		// Each round leaves two orphans that exit at once; herd reaps them.
		script := `i=0; while [ $i -lt 200 ]; do (true & true &); i=$((i+1)); done; sleep 0.5; exit 0`
		r, got := runHerd(t, spec{env: oneWorkerNever, args: cmdArgs("sh", "-c", script)})
		if got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		if n := r.stderr.count("orphan reaped"); n < 400 {
			t.Errorf("%d \"orphan reaped\" records, want 400", n)
		}
	})
	t.Run("worker pairs", func(t *testing.T) {
		t.Parallel()
		// Two workers that exit together, restarted at once, 200 times.
		r := start(t, spec{
			env:  []string{"HERD_WORKERS=2", "HERD_RESTART=always", "HERD_BACKOFF_MIN=0", "HERD_LOG_LEVEL=info"},
			args: cmdArgs("true"),
		})
		if err := r.stderr.waitCount("worker exited", 400, 90*time.Second); err != nil {
			t.Fatalf("only %d worker exits seen (hang?): %v", r.stderr.count("worker exited"), err)
		}
		r.signal(syscall.SIGTERM)
		if got := r.exitCode(30 * time.Second); got != 0 && got != 143 {
			t.Errorf("exit code %d, want 0 or 143", got)
		}
	})
}

// 1,000 workers that exit at once each report their own code; none
// reports "no child processes".
//
// Catalogue: R5.
func TestWorkersExitingAtOnceReportOwnCodes(t *testing.T) {
	t.Parallel()
	const n = 1000
	r, got := runHerd(t, spec{
		env:  []string{"HERD_WORKERS=" + strconv.Itoa(n), "HERD_RESTART=never", "HERD_LOG_LEVEL=info"},
		args: cmdArgs("sh", "-c", "exit $((HERD_WORKER_INDEX % 256))"),
	})
	exits := r.logs("worker exited")
	if len(exits) != n {
		t.Errorf("%d \"worker exited\" records, want %d", len(exits), n)
	}
	seen := map[int]bool{}
	firstFail := -1
	for _, l := range exits {
		idx, ok1 := l.num("index")
		code, ok2 := l.num("code")
		if !ok1 || !ok2 {
			t.Errorf("record without index/code: %s", l.raw)
			continue
		}
		if seen[idx] {
			t.Errorf("index %d exited twice", idx)
		}
		seen[idx] = true
		if code != idx%256 || l.str("status") != fmt.Sprintf("exit %d", idx%256) {
			t.Errorf("worker index %d: code=%d status=%q, want %d", idx, code, l.str("status"), idx%256)
		}
		if code != 0 && firstFail < 0 {
			firstFail = code
		}
	}
	if got != firstFail {
		t.Errorf("herd exit code %d, want %d (the first failed worker's)", got, firstFail)
	}
	for _, l := range r.stderr.snapshot() {
		low := strings.ToLower(l.raw)
		if strings.Contains(low, "no child process") || strings.Contains(low, "echild") {
			t.Errorf("ECHILD reported: %s", l.raw)
		}
	}
}

// nsenterOrphan runs, inside herd's PID and mount namespaces, a shell that
// leaves an orphan behind, and returns the orphan's pid in that namespace.
func nsenterOrphan(t *testing.T, target int) int {
	t.Helper()
	nsenter := requireTool(t, "nsenter")
	out, err := exec.Command(nsenter, "--target", strconv.Itoa(target), "--pid", "--mount", "--",
		"sh", "-c", "sleep 0.3 & echo $!; exit 0").Output()
	if err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("nsenter printed %q", out)
	}
	return pid
}

// A process injected from outside (nsenter, like kubectl exec) leaves
// an orphan; the orphan is reaped.
//
// Catalogue: R6.
func TestInjectedOrphanIsReaped(t *testing.T) {
	t.Parallel()
	requireTool(t, "nsenter")
	t.Run("PID 1", func(t *testing.T) {
		t.Parallel()
		r := start(t, spec{env: []string{"HERD_WORKERS=1"}, args: cmdArgs("sleep", "100")})
		r.waitLog("worker started")
		orphan := nsenterOrphan(t, r.herdPID())
		r.waitLog("orphan reaped", "pid", orphan)
		waitNoZombies(t, r, r.root)
		r.signal(syscall.SIGTERM)
		if got := r.exitCode(30 * time.Second); got != 143 {
			t.Errorf("exit code %d, want 143", got)
		}
	})
	t.Run("not PID 1", func(t *testing.T) {
		t.Parallel()
		// PID 1 is a reaping helper (like pause); herd is its child. The
		// kernel gives the orphan to the namespace's init, not to herd.
		r := start(t, spec{
			mode:    underNSInit,
			bystand: true,
			env:     []string{"HERD_WORKERS=1"},
			args:    cmdArgs(helperArgv("sigecho", "-exit", "TERM")...),
		})
		r.waitStdout("ready")
		r.waitLog("worker started")
		orphan := nsenterOrphan(t, r.herdPID())
		r.waitStdout(fmt.Sprintf("nsinit reaped %d orphan", orphan))
		waitNoZombies(t, r, r.root)
		if n := len(r.logs("worker exited")); n != 0 {
			t.Errorf("a worker exited (%d) while the orphan was injected", n)
		}
		r.signal(syscall.SIGTERM)
		if got := r.exitCode(30 * time.Second); got != 0 {
			t.Errorf("exit code %d, want 0 (worker exits 0 on TERM)", got)
		}
		out := r.stdout.text()
		if !strings.Contains(out, "got SIGTERM\n") {
			t.Errorf("worker did not get SIGTERM")
		}
		if !strings.Contains(out, "nsinit bystander alive\n") {
			t.Errorf("the bystander process did not survive herd's shutdown (kill(-1)?):\n%s", out)
		}
	})
}

// 10,000 spawn/reap cycles: herd's RSS and fd count do not grow.
//
// Catalogue: R7.
func TestSpawnReapCyclesLeakNothing(t *testing.T) {
	t.Parallel()
	r := start(t, spec{
		// No cluster channel: its one fd per live worker would make the
		// count depend on how many of the four are alive at the moment of
		// sampling. Channel fds are checked by the rr and conformance tests.
		env:  []string{"HERD_WORKERS=4", "HERD_RESTART=always", "HERD_BACKOFF_MIN=0", "HERD_LOG_LEVEL=info", "HERD_NODE_CHANNEL=false"},
		args: cmdArgs("/bin/true"),
	})
	herd := r.herdPID()
	sample := func(at int) (fds, rssKiB int) {
		t.Helper()
		if err := r.stderr.waitCount("worker started", at, 180*time.Second); err != nil {
			t.Fatalf("only %d workers started (wanted %d): %v", r.stderr.count("worker started"), at, err)
		}
		// The smallest of many samples ignores the fds open for an instant
		// during each spawn (os/exec's error pipe).
		fds = 1 << 30
		for i := 0; i < 200; i++ {
			n, err := fdCount(herd)
			if err != nil {
				t.Fatal(err)
			}
			fds = min(fds, n)
			time.Sleep(time.Millisecond)
		}
		v, err := statusField(herd, "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		rssKiB, _ = strconv.Atoi(strings.TrimSuffix(v, " kB"))
		return fds, rssKiB
	}
	fd1, rss1 := sample(1000)
	fd2, rss2 := sample(10000)
	t.Logf("after 1,000 starts: %d fds, %d KiB; after 10,000: %d fds, %d KiB", fd1, rss1, fd2, rss2)
	if fd2 != fd1 {
		t.Errorf("fd count grew from %d to %d", fd1, fd2)
	}
	if rss2-rss1 >= 8*1024 {
		t.Errorf("RSS grew by %d KiB (from %d to %d)", rss2-rss1, rss1, rss2)
	}
	r.signal(syscall.SIGTERM)
	if got := r.exitCode(30 * time.Second); got != 0 && got != 143 {
		t.Errorf("exit code %d, want 0 or 143", got)
	}
}
