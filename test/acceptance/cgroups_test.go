package acceptance

// cgroup v1 `cpu` directories made by the tests, and herd's CPU budget
// decision. The worker count follows docs/workers.md: budget B =
// min(affinity, every ancestor's quota), workers = round-nearest(B), halves
// up, at least 1.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// nearestWorkers is docs/workers.md's decision for a quota q/p and affinity a:
// round-nearest(min(a, q/p)), halves up, at least 1, computed in integers.
func nearestWorkers(a int, q, p int64) int {
	if q <= 0 || int64(a)*p <= q {
		return max(a, 1)
	}
	return max(int((2*q+p)/(2*p)), 1)
}

// v1Mount returns the mount point of the cgroup v1 hierarchy that holds
// controller (cpu, memory), from /proc/self/mountinfo (the later of two
// stacked mounts wins).
func v1Mount(controller string) (mountPoint string, err error) {
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
			if opt == controller {
				mountPoint = unescapeMount(pf[4])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if mountPoint == "" {
		return "", fmt.Errorf("no cgroup v1 mount with the %s controller in /proc/self/mountinfo", controller)
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

// cpuCgroup is a cgroup v1 `cpu` directory created for one test.
type cpuCgroup struct {
	t   testing.TB
	dir string
	// parent limit (the mount point's own quota, when the test itself runs
	// in a limited cgroup): the expected budget is the minimum.
	parentQ, parentP int64
}

// newCPUCgroup creates <cpu mount>/herd-<name>-<pid>-<nanos> with the given
// quota over cpuPeriod, and removes it in Cleanup after killing whatever is
// left in it.
func newCPUCgroup(t *testing.T, name string, quota int64) *cpuCgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root to create a cgroup (euid %d)", os.Geteuid())
	}
	mnt, err := v1Mount("cpu")
	if err != nil {
		missing(t, "cgroup v1 cpu controller: %v", err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("herd-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		missing(t, "create cgroup %s: %v", dir, err)
	}
	cg := &cpuCgroup{t: t, dir: dir}
	cg.parentQ, cg.parentP = v1Quota(mnt)
	t.Cleanup(cg.remove)
	cg.setQuota(quota)
	if q, p := v1Quota(dir); q != quota || p != cpuPeriod {
		t.Fatalf("%s: quota/period read back %d/%d, want %d/%d", dir, q, p, quota, cpuPeriod)
	}
	t.Logf("cgroup %s, quota %d/%d", dir, quota, cpuPeriod)
	return cg
}

func (cg *cpuCgroup) setQuota(quota int64) {
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

// expect is the worker count docs/workers.md gives for quota in this cgroup.
func (cg *cpuCgroup) expect(a int, quota int64) int {
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
func (cg *cpuCgroup) pids() []int {
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
func (cg *cpuCgroup) remove() {
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

// waitBudget waits (hangGuard) for the "cpu budget:" line in buf.
func waitBudget(t testing.TB, buf *lineBuf) budgetLine {
	t.Helper()
	l, _, err := buf.find(0, hangGuard, isBudget)
	if err != nil {
		t.Fatalf("no log line with msg %q...: %v", budgetPrefix, err)
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
