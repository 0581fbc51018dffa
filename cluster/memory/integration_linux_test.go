package memory

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the copies of the test binary that TestRealCgroup runs in
// the cgroup it creates: the cgroup.procs file to join, and what to do.
const (
	childEnv = "HERD_MEMORY_TEST_CGROUP_PROCS"
	hogEnv   = "HERD_MEMORY_TEST_HOG"
)

// missing skips a test that needs what this machine lacks, or fails it
// under CI=true, where the test command was meant to provide it.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("requirement missing (CI=true): "+format, args...)
	}
	t.Skipf("requirement missing: "+format, args...)
}

// TestRealCgroup proves the fixtures match the kernel. It creates a real
// cgroup limited to 256 MiB (v1 memory.limit_in_bytes, v2 memory.max) with
// a child that has no limit of its own, moves a copy of the test binary
// into the child, and checks that Compute, run there on the real /proc and
// /sys, walks up to the parent's limit. Then a copy that allocates until
// the kernel kills it shows where the OOM kill is counted, and usage is
// read where the limit is.
func TestRealCgroup(t *testing.T) {
	if procs := os.Getenv(childEnv); procs != "" {
		runChild(t, procs, os.Getenv(hogEnv) != "")
		return
	}
	if os.Geteuid() != 0 {
		missing(t, "creating a cgroup needs root")
	}
	here := mustCompute(t, Input{FS: os.DirFS("/")})
	if here.Leaf == "" || here.Guess {
		missing(t, "no memory cgroup directory found here: %s", here.LogLine())
	}
	parent := filepath.Join(here.MountPoint, fmt.Sprintf("herd-test-%08x", rand.Uint32()))
	leaf := filepath.Join(parent, "worker")
	if err := os.Mkdir(parent, 0o755); err != nil {
		missing(t, "cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, leaf); removeCgroup(t, parent) })
	setup := [][2]string{{"memory.max", "268435456"}, {"cgroup.subtree_control", "+memory"}}
	if here.Version == 1 {
		setup = [][2]string{{"memory.limit_in_bytes", "268435456"}}
	}
	for _, s := range setup {
		if err := os.WriteFile(filepath.Join(parent, s[0]), []byte(s[1]), 0); err != nil {
			missing(t, "cannot configure the cgroup (%s): %v", s[0], err)
		}
	}
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}

	r := childResult(t, leaf)
	t.Logf("in %s: %s", leaf, r.LogLine())
	want := fmt.Sprintf("cgroup-v%d", here.Version)
	if r.Limit != 256<<20 || r.Source != want || r.Dir != parent || r.Leaf != leaf || r.Version != here.Version {
		t.Errorf("limit %d source %s dir %s leaf %s version %d; want %d %s %s %s %d",
			r.Limit, r.Source, r.Dir, r.Leaf, r.Version, 256<<20, want, parent, leaf, here.Version)
	}
	if n := len(r.Levels) / len(setupFiles(here.Version)); n < 2 || r.Levels[0].HasLimit || r.Levels[0].Dir != leaf {
		t.Errorf("levels %+v", r.Levels)
	}
	checkOOMKill(t, here.Version, parent, leaf)
}

func setupFiles(version int) []string {
	if version == 1 {
		return []string{"memory.limit_in_bytes"}
	}
	return []string{"memory.max", "memory.high"}
}

// childResult runs a copy of the test binary in leaf and returns what
// Compute found there.
func childResult(t *testing.T, leaf string) Result {
	t.Helper()
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
	return r
}

// checkOOMKill runs a copy that allocates past the limit in leaf, and
// checks that the kernel killed it and that ReadOOMKills counts it: in
// leaf always; in parent, where the limit is, only under v2, whose
// memory.events counts the kills of descendants (v1 counts its own).
func checkOOMKill(t *testing.T, version int, parent, leaf string) {
	fsys := os.DirFS("/")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealCgroup$")
	cmd.Env = append(os.Environ(), childEnv+"="+filepath.Join(leaf, "cgroup.procs"), hogEnv+"=1")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the allocating child ended with %v, want SIGKILL from the OOM killer", err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the allocating child was not killed within 60 s")
	}
	inLeaf, okLeaf, errLeaf := ReadOOMKills(fsys, leaf, version)
	inParent, okParent, errParent := ReadOOMKills(fsys, parent, version)
	t.Logf("OOM kills: %d in the leaf (%v, %v), %d in the parent (%v, %v)", inLeaf, okLeaf, errLeaf, inParent, okParent, errParent)
	if errLeaf != nil || errParent != nil || !okLeaf || !okParent || inLeaf != 1 {
		t.Errorf("leaf %d %v %v, parent %d %v %v; want one kill in the leaf", inLeaf, okLeaf, errLeaf, inParent, okParent, errParent)
	}
	if wantParent := uint64(version - 1); inParent != wantParent {
		t.Errorf("%d kills counted in the parent under cgroup v%d, want %d", inParent, version, wantParent)
	}
	u, err := ReadUsage(fsys, parent, version)
	t.Logf("usage of %s after the kill: %+v", parent, u)
	if err != nil || u.Usage < 0 || u.WorkingSet > 256<<20 {
		t.Errorf("ReadUsage(%s) = %+v, %v", parent, u, err)
	}
}

// runChild joins the cgroup, then prints Compute's result, or allocates
// until the kernel kills it.
func runChild(t *testing.T, procs string, hog bool) {
	if err := os.WriteFile(procs, []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		t.Fatal(err)
	}
	if hog {
		var keep [][]byte
		for i := 0; i < 1024; i++ { // 16 GiB at most: far past the limit
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		t.Fatalf("allocated %d chunks and lived", len(keep))
	}
	r := mustCompute(t, Input{FS: os.DirFS("/")})
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT %s\n", js)
}

// removeCgroup removes an empty cgroup directory, retrying while the
// kernel finishes releasing the processes that ran in it.
func removeCgroup(t *testing.T, dir string) {
	var err error
	for i := 0; i < 100; i++ {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("removing %s: %v", dir, err)
}
