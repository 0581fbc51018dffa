package acceptance

// docs/acceptance.md C8 (a CPU quota change resizes the worker set) and P2
// (the static binary in an empty root filesystem under runc, with a CPU
// quota, starts the right number of workers), against the real kernel: a
// cgroup v1 `cpu` hierarchy created by the test, and a runc container. The
// worker count follows docs/workers.md: budget B = min(affinity, every
// ancestor's quota), workers = round-nearest(B), halves up, at least 1.

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// live is the number of workers running according to herd's log: started
// minus exited.
func liveWorkers(buf *lineBuf) int { return buf.count("worker started") - buf.count("worker exited") }

// waitLiveWorkers waits until liveWorkers(buf) == n, up to guard.
func waitLiveWorkers(t testing.TB, buf *lineBuf, n int, guard time.Duration) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for liveWorkers(buf) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers live after %v (started %d, exited %d), want %d",
				liveWorkers(buf), guard, buf.count("worker started"), buf.count("worker exited"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkWorkers asserts n live workers both in the log and in /proc, all of
// them in cg.
func checkWorkers(t testing.TB, r *herdRun, cg *cpuCgroup, n int) {
	t.Helper()
	if got := liveWorkers(r.stderr); got != n {
		t.Errorf("log: %d workers live (started %d, exited %d), want %d",
			got, r.stderr.count("worker started"), r.stderr.count("worker exited"), n)
	}
	// A worker that just exited may still be between its exit and herd's
	// reaping; give /proc a moment to agree with the log.
	deadline := time.Now().Add(5 * time.Second)
	procs := workerProcs(r.root)
	for len(procs) != n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		procs = workerProcs(r.root)
	}
	if len(procs) != n {
		t.Errorf("/proc: herd (pid %d) has %d live children %v, want %d", r.root, len(procs), procs, n)
	}
	in := map[int]bool{}
	for _, pid := range cg.pids() {
		in[pid] = true
	}
	for _, pid := range append([]int{r.root}, procs...) {
		if !in[pid] {
			t.Errorf("pid %d (herd or a worker) is not in cgroup %s (holds %v)", pid, cg.dir, cg.pids())
		}
	}
}

// waitResized waits (guard) for a "workers resized" record from→to at or
// after index from0 and returns its index.
func waitResized(t testing.TB, r *herdRun, from0, from, to int, guard time.Duration) int {
	t.Helper()
	l, i, err := r.stderr.find(from0, guard, func(l logLine) bool {
		return l.is("workers resized", "from", from, "to", to)
	})
	if err != nil {
		t.Fatalf("no \"workers resized\" from=%d to=%d: %v", from, to, err)
	}
	if l.str("reason") == "" {
		t.Errorf("workers resized without a reason: %s", l.raw)
	}
	t.Logf("%s", l.raw)
	return i
}

// herd, PID 1 in a cgroup v1 `cpu` cgroup with quota 1.5 CPUs, starts
// round-nearest(min(A, 1.5)) workers; rewriting the quota while it runs
// resizes the worker set on the periodic re-check (up at once, down after
// HERD_SCALE_DOWN_CHECKS checks, highest slot first, no restart), and on
// SIGHUP without waiting for the period.
//
// Catalogue: C8.
func TestCPUQuotaChangeResizesWorkers(t *testing.T) {
	t.Parallel()
	a := affinity(t)
	t.Logf("affinity: %d CPUs", a)

	t.Run("recheck", func(t *testing.T) {
		t.Parallel()
		cg := newCPUCgroup(t, "c8", 150000)
		r := start(t, spec{
			cgroup: cg.dir,
			env:    []string{"HERD_WORKERS=auto", "HERD_CPU_RECHECK=300ms", "HERD_SCALE_DOWN_CHECKS=2"},
			args:   sigechoWorker(),
		})
		want := cg.expect(a, 150000)
		b := waitBudget(t, r.stderr)
		checkBudget(t, b, want, "cgroup-v1", a)
		if got := b.kv["dir"]; filepath.Clean(got) != cg.dir {
			t.Errorf("cpu budget says dir=%s, want %s", got, cg.dir)
		}
		if err := r.stderr.waitCount("worker started", want, 20*time.Second); err != nil {
			t.Fatalf("%d workers started, want %d: %v", r.stderr.count("worker started"), want, err)
		}
		// Several re-check periods with the same quota: nothing changes,
		// and the decision is logged once, not on every check.
		time.Sleep(1500 * time.Millisecond)
		checkWorkers(t, r, cg, want)
		if n := r.stderr.count("worker started"); n != want {
			t.Errorf("%d workers started with an unchanged quota, want %d", n, want)
		}
		var budgets []string
		for _, l := range r.stderr.snapshot() {
			if isBudget(l) && l.str("level") == "INFO" {
				budgets = append(budgets, l.raw)
			}
		}
		if len(budgets) != 1 {
			t.Errorf("%d INFO \"cpu budget:\" lines with an unchanged quota, want 1:\n%s", len(budgets), strings.Join(budgets, "\n"))
		}
		if len(r.logs("workers resized")) != 0 {
			t.Errorf("workers resized with an unchanged quota: %v", r.logs("workers resized"))
		}
		cur := want

		// 3.5 CPUs: round-nearest(min(A, 3.5)): 4 with 4 or more CPUs,
		// A below that (affinity caps the budget, docs/workers.md T10).
		mark := len(r.stderr.snapshot())
		cg.setQuota(350000)
		want = cg.expect(a, 350000)
		t.Logf("quota 350000/100000 (3.5), affinity %d: expecting %d workers", a, want)
		if want != cur {
			waitResized(t, r, mark, cur, want, 5*time.Second)
			waitLiveWorkers(t, r.stderr, want, 10*time.Second)
		} else {
			time.Sleep(1500 * time.Millisecond) // five re-check periods
			if rs := r.logsBetween(mark, -1, "workers resized"); len(rs) != 0 {
				t.Errorf("resized although min(affinity %d, 3.5) rounds to the current %d: %s", a, cur, rs[0].raw)
			}
			if s := r.logsBetween(mark, -1, "worker started"); len(s) != 0 {
				t.Errorf("worker started although affinity caps the budget at %d: %s", a, s[0].raw)
			}
		}
		checkWorkers(t, r, cg, want)
		cur = want

		// 0.5 CPU: down to 1, after HERD_SCALE_DOWN_CHECKS=2 checks.
		mark = len(r.stderr.snapshot())
		cg.setQuota(50000)
		want = cg.expect(a, 50000)
		if want != 1 {
			t.Fatalf("test bug: quota 0.5 must give 1 worker, computed %d", want)
		}
		i := waitResized(t, r, mark, cur, want, 10*time.Second)
		waitLiveWorkers(t, r.stderr, want, 10*time.Second)
		exits := r.logsBetween(i, -1, "worker exited")
		if len(exits) != cur-want {
			t.Errorf("%d workers exited after the resize, want %d", len(exits), cur-want)
		}
		for k, e := range exits {
			// Highest slot first: cur-1, cur-2, ... (in any order of exit).
			if idx, ok := e.num("index"); !ok || idx < want {
				t.Errorf("worker exited %d: slot %s stopped, want one of the highest (>= %d): %s", k, e.str("index"), want, e.raw)
			}
			if e.str("code") != "0" {
				t.Errorf("stopped worker did not exit 0 on the stop signal: %s", e.raw)
			}
		}
		time.Sleep(1500 * time.Millisecond) // a stopped surplus worker is not restarted
		if s := r.logsBetween(mark, -1, "worker started"); len(s) != 0 {
			t.Errorf("worker started after scaling down: %s", s[0].raw)
		}
		checkWorkers(t, r, cg, want)
		cur = want

		// Back to 1.5: up at once.
		mark = len(r.stderr.snapshot())
		cg.setQuota(150000)
		want = cg.expect(a, 150000)
		if want != cur {
			i = waitResized(t, r, mark, cur, want, 5*time.Second)
			waitLiveWorkers(t, r.stderr, want, 5*time.Second)
			started := r.logsBetween(i, -1, "worker started")
			if len(started) != want-cur {
				t.Errorf("%d workers started after the resize, want %d", len(started), want-cur)
			}
			for _, s := range started {
				if idx, ok := s.num("index"); !ok || idx < cur || idx >= want {
					t.Errorf("new worker in slot %s, want a slot in [%d, %d): %s", s.str("index"), cur, want, s.raw)
				}
			}
		}
		checkWorkers(t, r, cg, want)

		waitSigechoReady(t, r)
		r.signal(syscall.SIGTERM)
		if code := r.exitCode(30 * time.Second); code != 0 {
			t.Errorf("herd exit code %d after SIGTERM, want 0 (the workers exit 0)", code)
		}
		r.waitLog("herd exiting")
		if left := cg.pids(); len(left) != 0 {
			t.Errorf("processes left in the cgroup after herd exited: %v", left)
		}
	})

	t.Run("SIGHUP", func(t *testing.T) {
		t.Parallel()
		// The period is an hour: only SIGHUP can make herd see the change.
		// SIGHUP also restarts every worker, one at a time; these workers
		// say nothing, so they count as listening once started.
		cg := newCPUCgroup(t, "c8hup", 50000)
		r := start(t, spec{
			cgroup: cg.dir,
			env:    []string{"HERD_WORKERS=auto", "HERD_CPU_RECHECK=1h", "HERD_READY_SIGNAL=started"},
			args:   sigechoWorker(),
		})
		b := waitBudget(t, r.stderr)
		checkBudget(t, b, 1, "cgroup-v1", a)
		if err := r.stderr.waitCount("worker started", 1, 20*time.Second); err != nil {
			t.Fatalf("no worker started: %v", err)
		}
		want := cg.expect(a, 150000)
		if want == 1 {
			t.Skipf("affinity %d: 1.5 CPUs rounds to 1 worker, so nothing to scale up to", a)
		}
		waitSigechoReady(t, r)
		mark := len(r.stderr.snapshot())
		cg.setQuota(150000)
		r.signal(syscall.SIGHUP)
		waitResized(t, r, mark, 1, want, 5*time.Second)
		if _, _, err := r.stderr.find(mark, hangGuard, func(l logLine) bool { return l.is("rolling restart done") }); err != nil {
			t.Fatalf("SIGHUP: the rolling restart did not finish: %v", err)
		}
		waitLiveWorkers(t, r.stderr, want, 5*time.Second)
		checkWorkers(t, r, cg, want)
		waitSigechoReady(t, r)
		r.signal(syscall.SIGTERM)
		if code := r.exitCode(30 * time.Second); code != 0 {
			t.Errorf("herd exit code %d after SIGTERM, want 0", code)
		}
	})

	t.Run("herd cpus --json", func(t *testing.T) {
		t.Parallel()
		cg := newCPUCgroup(t, "c8cpus", 150000)
		r, code := runHerd(t, spec{mode: asDirect, cgroup: cg.dir, args: []string{"cpus", "--json"}})
		if code != 0 {
			t.Fatalf("herd cpus --json: exit code %d\n%s", code, r.stderr.text())
		}
		var out map[string]any
		dec := json.NewDecoder(strings.NewReader(r.stdout.text()))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("herd cpus --json: %v\n%s", err, r.stdout.text())
		}
		t.Logf("workers=%v source=%v budget=%v affinity=%v dir=%v", out["workers"], out["source"], out["budget"], out["affinity"], out["dir"])
		for k, want := range map[string]string{
			"workers":  strconv.Itoa(cg.expect(a, 150000)),
			"source":   "cgroup-v1",
			"affinity": strconv.Itoa(a),
			"dir":      cg.dir,
		} {
			if got := fmt.Sprint(out[k]); got != want {
				t.Errorf("herd cpus --json: %s = %q, want %q", k, got, want)
			}
		}
		if _, ok := out["budget"]; !ok {
			t.Errorf("herd cpus --json: no budget key")
		}
	})
}

// staticELF fails unless path is an ELF executable without an interpreter
// or shared-library dependencies (it must run in an empty root).
func staticELF(t testing.TB, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a program interpreter: not static", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("%s needs shared libraries %v: not static", path, libs)
	}
}

// herd's static binary alone in an empty, read-only root filesystem, as
// PID 1 of a runc container with a CPU quota of 1.5 CPUs and no cgroup
// namespace, runs `herd demo` with round-nearest(min(A, 1.5)) workers, and
// exits 0 on SIGTERM.
//
// Catalogue: P2.
func TestStaticBinaryInRuncContainer(t *testing.T) {
	t.Parallel()
	runc := requireTool(t, "runc")
	if os.Geteuid() != 0 {
		missing(t, "root for runc (euid %d)", os.Geteuid())
	}
	a := affinity(t)

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(rootfs, "herd")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, herdPackage)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	staticELF(t, bin)
	if ents, err := os.ReadDir(rootfs); err != nil || len(ents) != 1 {
		t.Fatalf("rootfs must hold herd only: %v %v", ents, err)
	}

	if out, err := (&exec.Cmd{Path: runc, Args: []string{runc, "spec"}, Dir: bundle}).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	id := fmt.Sprintf("herd-p2-%d-%d", os.Getpid(), time.Now().UnixNano())
	cgroupsPath := "/" + id
	editSpec(t, filepath.Join(bundle, "config.json"), func(c map[string]any) {
		proc := c["process"].(map[string]any)
		proc["args"] = []any{"/herd", "demo"}
		proc["terminal"] = false
		proc["env"] = append(proc["env"].([]any), "HERD_LOG_FORMAT=json")
		c["root"].(map[string]any)["readonly"] = true
		linux := c["linux"].(map[string]any)
		res, _ := linux["resources"].(map[string]any)
		if res == nil {
			res = map[string]any{}
			linux["resources"] = res
		}
		res["cpu"] = map[string]any{"quota": 150000, "period": cpuPeriod}
		var ns []any
		for _, n := range linux["namespaces"].([]any) {
			if n.(map[string]any)["type"] != "cgroup" {
				ns = append(ns, n)
			}
		}
		linux["namespaces"] = ns
		linux["cgroupsPath"] = cgroupsPath
	})

	state := t.TempDir() // runc --root: no stale state from other runs
	runcCmd := func(args ...string) *exec.Cmd {
		return exec.Command(runc, append([]string{"--root", state}, args...)...)
	}
	cmd := runcCmd("run", "--bundle", bundle, id)
	stdout, stderr := newLineBuf(), newLineBuf()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		stdout.close()
		stderr.close()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = runcCmd("kill", id, "KILL").Run()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if out, err := runcCmd("delete", "-f", id).CombinedOutput(); err != nil && !strings.Contains(string(out), "not exist") {
			t.Logf("runc delete -f %s: %v: %s", id, err, out)
		}
		if t.Failed() {
			t.Logf("runc run stdout (tail):\n%s", tail(stdout.text(), 60))
			t.Logf("runc run stderr (tail):\n%s", tail(stderr.text(), 60))
		}
	})

	// herd logs to stderr; runc passes the container's stdio through.
	logs := stderr
	b := waitBudget(t, logs)
	want := nearestWorkers(a, 150000, cpuPeriod)
	t.Logf("affinity %d, quota 1.5: expecting %d workers", a, want)
	if got := b.kv["workers"]; got != strconv.Itoa(want) {
		t.Errorf("cpu budget says workers=%s, want %d: %s", got, want, b.line.raw)
	}
	if src := b.kv["source"]; !strings.HasPrefix(src, "cgroup-") {
		t.Errorf("cpu budget says source=%s, want the container's cgroup (cgroup-v1 or cgroup-v2): %s", src, b.line.raw)
	}
	if err := logs.waitCount("worker started", want, 20*time.Second); err != nil {
		t.Fatalf("%d workers started, want %d: %v", logs.count("worker started"), want, err)
	}
	if mnt, err := v1Mount("cpu"); err == nil {
		// runc applied the quota to the container's cgroup (else this test shows nothing).
		if q, p := v1Quota(filepath.Join(mnt, cgroupsPath)); q != 150000 || p != cpuPeriod {
			t.Errorf("container cgroup %s: quota %d/%d, want 150000/%d", filepath.Join(mnt, cgroupsPath), q, p, cpuPeriod)
		}
	}
	time.Sleep(500 * time.Millisecond) // a worker that cannot bind :8080 would exit now
	if n := logs.count("worker exited"); n != 0 {
		t.Errorf("%d workers exited before SIGTERM", n)
	}
	if n := logs.count("worker started"); n != want {
		t.Errorf("%d workers started, want %d", n, want)
	}

	if out, err := runcCmd("kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill %s TERM: %v: %s", id, err, out)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("hang guard: runc run still running 30 s after runc kill TERM")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("runc run: %v, want exit 0 (herd exits 0 when its demo workers do)", cmd.ProcessState)
	}
	if l, _, ok := logs.first(0, func(l logLine) bool { return l.is("herd exiting") }); !ok {
		t.Errorf("no \"herd exiting\" log line")
	} else if l.str("code") != "0" {
		t.Errorf("herd exiting with code %s, want 0: %s", l.str("code"), l.raw)
	}
	if n, m := logs.count("worker exited"), logs.count("worker started"); n != m {
		t.Errorf("%d workers started, %d exited", m, n)
	}
}

// editSpec rewrites a runc config.json through f.
func editSpec(t testing.TB, path string, f func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f(c)
	if b, err = json.MarshalIndent(c, "", "\t"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
