package acceptance

// ACCEPTANCE.md C8 (a CPU quota change resizes the worker set) and P2 (the
// static binary in an empty root filesystem under runc, with a CPU quota,
// starts the right number of workers), against the real kernel: a cgroup v1
// `cpu` hierarchy created by the test, and a runc container. The worker
// count follows ../shared/CPUS.md: budget B = min(affinity, every ancestor's
// quota), workers = round-nearest(B), halves up, at least 1.

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const cpuPeriod = 100000 // µs, the period every quota below is written over

// affinity is the number of CPUs this process may run on; herd, started
// from here, inherits the same mask.
func affinity(t testing.TB) int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	return set.Count()
}

// nearestWorkers is CPUS.md's decision for a quota q/p and affinity a:
// round-nearest(min(a, q/p)), halves up, at least 1, computed in integers.
func nearestWorkers(a int, q, p int64) int {
	if q <= 0 || int64(a)*p <= q {
		return max(a, 1)
	}
	return max(int((2*q+p)/(2*p)), 1)
}

// cpuV1Mount returns the mount point of the cgroup v1 hierarchy that holds
// the `cpu` controller, from /proc/self/mountinfo (the later of two stacked
// mounts wins).
func cpuV1Mount() (mountPoint string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 || sf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(sf[2], ",") {
			if opt == "cpu" {
				mountPoint = unescapeMount(pf[4])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if mountPoint == "" {
		return "", errors.New("no cgroup v1 mount with the cpu controller in /proc/self/mountinfo")
	}
	return mountPoint, nil
}

// unescapeMount decodes mountinfo's octal escapes (\040 and friends).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// v1Quota reads dir's cpu.cfs_quota_us and cpu.cfs_period_us; q <= 0 means
// no limit (or nothing readable).
func v1Quota(dir string) (q, p int64) {
	qb, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	pb, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return -1, 0
	}
	q, err1 = strconv.ParseInt(strings.TrimSpace(string(qb)), 10, 64)
	p, err2 = strconv.ParseInt(strings.TrimSpace(string(pb)), 10, 64)
	if err1 != nil || err2 != nil || p <= 0 {
		return -1, 0
	}
	return q, p
}

// testCgroup is a cgroup v1 `cpu` directory created for one test.
type testCgroup struct {
	t   testing.TB
	dir string
	// parent limit (the mount point's own quota, when the test itself runs
	// in a limited cgroup): the expected budget is the minimum.
	parentQ, parentP int64
}

// newCPUCgroup creates <cpu mount>/herd-<name>-<pid>-<nanos> with the given
// quota over cpuPeriod, and removes it in Cleanup after killing whatever is
// left in it.
func newCPUCgroup(t *testing.T, name string, quota int64) *testCgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root to create a cgroup (euid %d)", os.Geteuid())
	}
	mnt, err := cpuV1Mount()
	if err != nil {
		missing(t, "cgroup v1 cpu controller: %v", err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("herd-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		missing(t, "create cgroup %s: %v", dir, err)
	}
	cg := &testCgroup{t: t, dir: dir}
	cg.parentQ, cg.parentP = v1Quota(mnt)
	t.Cleanup(cg.remove)
	cg.setQuota(quota)
	if q, p := v1Quota(dir); q != quota || p != cpuPeriod {
		t.Fatalf("%s: quota/period read back %d/%d, want %d/%d", dir, q, p, quota, cpuPeriod)
	}
	t.Logf("cgroup %s, quota %d/%d", dir, quota, cpuPeriod)
	return cg
}

func (cg *testCgroup) setQuota(quota int64) {
	cg.t.Helper()
	// Period first: the kernel checks quota/period against the parent.
	for _, f := range []struct {
		name string
		v    int64
	}{{"cpu.cfs_period_us", cpuPeriod}, {"cpu.cfs_quota_us", quota}} {
		if err := os.WriteFile(filepath.Join(cg.dir, f.name), []byte(strconv.FormatInt(f.v, 10)), 0); err != nil {
			cg.t.Fatalf("write %d to %s/%s: %v", f.v, cg.dir, f.name, err)
		}
	}
}

// expect is the worker count CPUS.md gives for quota in this cgroup.
func (cg *testCgroup) expect(a int, quota int64) int {
	w := nearestWorkers(a, quota, cpuPeriod)
	if cg.parentQ > 0 {
		// min(quota/cpuPeriod, parentQ/parentP), exactly.
		if cg.parentQ*cpuPeriod < quota*cg.parentP {
			w = nearestWorkers(a, cg.parentQ, cg.parentP)
		}
	}
	return w
}

// pids returns the processes in the cgroup.
func (cg *testCgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// remove kills what is left in the cgroup and removes it.
func (cg *testCgroup) remove() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, pid := range cg.pids() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		err := os.Remove(cg.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			cg.t.Errorf("cannot remove cgroup %s (left: %v): %v", cg.dir, cg.pids(), err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// budgetLine is herd's start-up decision: the JSON record whose msg starts
// with "cpu budget: ", and the key=value pairs of that msg.
type budgetLine struct {
	line logLine
	kv   map[string]string
}

const budgetPrefix = "cpu budget: "

func isBudget(l logLine) bool { return l.fields != nil && strings.HasPrefix(l.msg(), budgetPrefix) }

func parseBudget(l logLine) budgetLine {
	kv := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(l.msg(), budgetPrefix)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return budgetLine{line: l, kv: kv}
}

// waitBudget waits (20 s hang guard) for the "cpu budget:" line in buf.
func waitBudget(t testing.TB, buf *lineBuf) budgetLine {
	t.Helper()
	l, _, ok := buf.find(0, 20*time.Second, isBudget)
	if !ok {
		t.Fatalf("no log line with msg %q...", budgetPrefix)
	}
	b := parseBudget(l)
	t.Logf("%s", b.line.msg())
	return b
}

// checkBudget asserts the decision's workers, source and affinity.
func checkBudget(t testing.TB, b budgetLine, workers int, source string, a int) {
	t.Helper()
	if got := b.kv["workers"]; got != strconv.Itoa(workers) {
		t.Errorf("cpu budget says workers=%s, want %d: %s", got, workers, b.line.raw)
	}
	if got := b.kv["source"]; got != source {
		t.Errorf("cpu budget says source=%s, want %s: %s", got, source, b.line.raw)
	}
	if got := b.kv["affinity"]; got != strconv.Itoa(a) {
		t.Errorf("cpu budget says affinity=%s, want %d (sched_getaffinity): %s", got, a, b.line.raw)
	}
	if lvl := b.line.str("level"); lvl != "INFO" {
		t.Errorf("cpu budget line at level %s, want INFO", lvl)
	}
}

// live is the number of workers running according to herd's log: started
// minus exited.
func live(buf *lineBuf) int { return buf.count("worker started") - buf.count("worker exited") }

// waitLive waits until live(buf) == n, up to guard.
func waitLive(t testing.TB, buf *lineBuf, n int, guard time.Duration) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for live(buf) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers live after %v (started %d, exited %d), want %d",
				live(buf), guard, buf.count("worker started"), buf.count("worker exited"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerProcs returns herd's live children (the workers) as the host sees them.
func workerProcs(herd int) []int {
	var out []int
	for _, p := range descendants(herd) {
		if p.ppid == herd && p.state != 'Z' {
			out = append(out, p.pid)
		}
	}
	return out
}

// checkWorkers asserts n live workers both in the log and in /proc, all of
// them in cg.
func checkWorkers(t testing.TB, r *herdRun, cg *testCgroup, n int) {
	t.Helper()
	if got := live(r.stderr); got != n {
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
	l, i, ok := r.stderr.find(from0, guard, func(l logLine) bool {
		return l.is("workers resized", "from", from, "to", to)
	})
	if !ok {
		t.Fatalf("no \"workers resized\" from=%d to=%d within %v (herd exited: %v)", from, to, guard, r.exited())
	}
	if l.str("reason") == "" {
		t.Errorf("workers resized without a reason: %s", l.raw)
	}
	t.Logf("%s", l.raw)
	return i
}

// since returns the JSON records with msg at index >= from.
func since(buf *lineBuf, from int, msg string) []logLine {
	var out []logLine
	for i, l := range buf.snapshot() {
		if i >= from && l.fields != nil && l.msg() == msg {
			out = append(out, l)
		}
	}
	return out
}

// echoWorker prints "ready" once its signal handlers are in place, exits 0
// on SIGTERM and only reports every other signal (SIGHUP included, should
// herd pass it on).
func echoWorker() []string { return cmdArgs(helperArgv("sigecho")...) }

// waitReady waits until every worker herd logged as started has printed
// "ready", so a signal sent now reaches its handler, not its default action.
func waitReady(t testing.TB, r *herdRun) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, l := range r.stdout.snapshot() {
			if l.raw == "ready" {
				ready++
			}
		}
		started := r.stderr.count("worker started")
		if ready >= started {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d started workers ready after 20 s", ready, started)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// C8: herd, PID 1 in a cgroup v1 `cpu` cgroup with quota 1.5 CPUs, starts
// round-nearest(min(A, 1.5)) workers; rewriting the quota while it runs
// resizes the worker set on the periodic re-check (up at once, down after
// HERD_SCALE_DOWN_CHECKS checks, highest slot first, no restart), and on
// SIGHUP without waiting for the period.
func TestC8CgroupQuotaResize(t *testing.T) {
	t.Parallel()
	a := affinity(t)
	t.Logf("affinity: %d CPUs", a)

	t.Run("recheck", func(t *testing.T) {
		t.Parallel()
		cg := newCPUCgroup(t, "c8", 150000)
		r := start(t, spec{
			cgroup: cg.dir,
			env:    []string{"HERD_WORKERS=auto", "HERD_CPU_RECHECK=300ms", "HERD_SCALE_DOWN_CHECKS=2"},
			args:   echoWorker(),
		})
		want := cg.expect(a, 150000)
		b := waitBudget(t, r.stderr)
		checkBudget(t, b, want, "cgroup-v1", a)
		if got := b.kv["dir"]; filepath.Clean(got) != cg.dir {
			t.Errorf("cpu budget says dir=%s, want %s", got, cg.dir)
		}
		if !r.stderr.waitCount("worker started", want, 20*time.Second) {
			t.Fatalf("%d workers started, want %d", r.stderr.count("worker started"), want)
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
		// A below that (affinity caps the budget, CPUS.md T10).
		mark := len(r.stderr.snapshot())
		cg.setQuota(350000)
		want = cg.expect(a, 350000)
		t.Logf("quota 350000/100000 (3.5), affinity %d: expecting %d workers", a, want)
		if want != cur {
			waitResized(t, r, mark, cur, want, 5*time.Second)
			waitLive(t, r.stderr, want, 10*time.Second)
		} else {
			time.Sleep(1500 * time.Millisecond) // five re-check periods
			if rs := since(r.stderr, mark, "workers resized"); len(rs) != 0 {
				t.Errorf("resized although min(affinity %d, 3.5) rounds to the current %d: %s", a, cur, rs[0].raw)
			}
			if s := since(r.stderr, mark, "worker started"); len(s) != 0 {
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
		waitLive(t, r.stderr, want, 10*time.Second)
		exits := since(r.stderr, i, "worker exited")
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
		if s := since(r.stderr, mark, "worker started"); len(s) != 0 {
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
			waitLive(t, r.stderr, want, 5*time.Second)
			started := since(r.stderr, i, "worker started")
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

		waitReady(t, r)
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
			args:   echoWorker(),
		})
		b := waitBudget(t, r.stderr)
		checkBudget(t, b, 1, "cgroup-v1", a)
		if !r.stderr.waitCount("worker started", 1, 20*time.Second) {
			t.Fatal("no worker started")
		}
		want := cg.expect(a, 150000)
		if want == 1 {
			t.Skipf("affinity %d: 1.5 CPUs rounds to 1 worker, so nothing to scale up to", a)
		}
		waitReady(t, r)
		mark := len(r.stderr.snapshot())
		cg.setQuota(150000)
		r.signal(syscall.SIGHUP)
		waitResized(t, r, mark, 1, want, 5*time.Second)
		if _, _, ok := r.stderr.find(mark, 20*time.Second, func(l logLine) bool { return l.is("rolling restart done") }); !ok {
			t.Fatal("SIGHUP: the rolling restart did not finish")
		}
		waitLive(t, r.stderr, want, 5*time.Second)
		checkWorkers(t, r, cg, want)
		waitReady(t, r)
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

// P2: herd's static binary alone in an empty, read-only root filesystem, as
// PID 1 of a runc container with a CPU quota of 1.5 CPUs and no cgroup
// namespace, runs `herd demo` with round-nearest(min(A, 1.5)) workers, and
// exits 0 on SIGTERM.
func TestP2RuncContainer(t *testing.T) {
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
	if !logs.waitCount("worker started", want, 20*time.Second) {
		t.Fatalf("%d workers started, want %d", logs.count("worker started"), want)
	}
	if mnt, err := cpuV1Mount(); err == nil {
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
	if l, _, ok := logs.find(0, 0, func(l logLine) bool { return l.is("herd exiting") }); !ok {
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
