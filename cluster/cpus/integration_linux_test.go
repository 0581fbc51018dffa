package cpus

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const childEnv = "HERD_CPUS_TEST_CGROUP_PROCS"

// needRoot skips a test that needs what this machine lacks, or fails it
// under CI=true, where the test command was meant to provide it.
func needRoot(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestRealCgroup proves the fixtures match the kernel: it creates a real
// cgroup with a quota of half a CPU and a child without one (v1: -1, v2:
// "max"), moves a copy of the test binary into the child, and checks that
// Compute, run there on the real /proc and /sys, walks up to the parent's
// quota (T12/T15 on a live system).
func TestRealCgroup(t *testing.T) {
	if procs := os.Getenv(childEnv); procs != "" {
		runChild(t, procs)
		return
	}
	if os.Geteuid() != 0 {
		needRoot(t, "creating a cgroup needs root")
	}
	a, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	here := mustCompute(t, Input{FS: os.DirFS("/"), Affinity: a})
	if here.Dir == "" || here.Guess {
		needRoot(t, "no cpu cgroup directory found here: %s", here.LogLine())
	}

	// Under the mount point: at the root of a v2 hierarchy the cpu
	// controller is usually enabled for children, and the root is exempt
	// from the no-internal-processes rule.
	parent := filepath.Join(here.MountPoint, fmt.Sprintf("herd-cpus-test-%d", os.Getpid()))
	leaf := filepath.Join(parent, "worker")
	if err := os.Mkdir(parent, 0o755); err != nil {
		needRoot(t, "cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, leaf); removeCgroup(t, parent) })

	setup := [][2]string{{"cpu.max", "50000 100000"}, {"cgroup.subtree_control", "+cpu"}}
	if here.Version == 1 {
		setup = [][2]string{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "50000"}}
	}
	for _, s := range setup {
		if err := os.WriteFile(filepath.Join(parent, s[0]), []byte(s[1]), 0); err != nil {
			needRoot(t, "cannot configure the cgroup (%s): %v", s[0], err)
		}
	}
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestRealCgroup$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+filepath.Join(leaf, "cgroup.procs"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, js, ok := strings.Cut(string(out), "RESULT ")
	if !ok {
		t.Fatalf("child printed no result:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var r Result
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	t.Logf("in %s: %s", leaf, r.LogLine())

	wantSource := fmt.Sprintf("cgroup-v%d", here.Version)
	if r.Dir != leaf || r.Source != wantSource || r.Budget != (Fraction{1, 2}) || r.Workers != 1 {
		t.Errorf("dir %s source %s budget %v workers %d; want %s %s 1/2 1", r.Dir, r.Source, r.Budget, r.Workers, leaf, wantSource)
	}
	if len(r.Levels) < 2 || r.Levels[0].HasLimit || !r.Levels[1].Smallest || r.Levels[1].Dir != parent {
		t.Errorf("levels %+v", r.Levels)
	}
}

func runChild(t *testing.T, procs string) {
	if err := os.WriteFile(procs, []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		t.Fatal(err)
	}
	a, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	r := mustCompute(t, Input{FS: os.DirFS("/"), Affinity: a})
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT %s\n", js)
}

// removeCgroup removes an empty cgroup directory, retrying while the
// kernel finishes releasing the child that ran in it.
func removeCgroup(t *testing.T, dir string) {
	var err error
	for i := 0; i < 50; i++ {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("removing %s: %v", dir, err)
}
