package acceptance

// Processes, fds and sockets as /proc shows them, from the test's (the
// host's) side.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

type proc struct {
	pid, ppid int
	state     byte
	comm      string
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: ppid, state: f[0][0], comm: s[open+1 : closing]}, true
}

func allProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// descendants returns every descendant of root (not root itself).
func descendants(root int) []proc {
	children := map[int][]proc{}
	for _, p := range allProcs() {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// zombies is the zombie detector: the descendants of root in state Z. The
// positive tests expect none; the negative control R2 expects some.
func zombies(root int) []proc {
	var z []proc
	for _, p := range descendants(root) {
		if p.state == 'Z' {
			z = append(z, p)
		}
	}
	return z
}

// workerProcs returns herd's live children (the workers) as the host sees
// them.
func workerProcs(herd int) []int {
	var out []int
	for _, p := range descendants(herd) {
		if p.ppid == herd && p.state != 'Z' {
			out = append(out, p.pid)
		}
	}
	return out
}

// statusField returns a field of /proc/pid/status ("SigIgn", "VmRSS", ...).
func statusField(pid int, key string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

func sigMask(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	v, err := statusField(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	m, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		t.Fatalf("%s %q: %v", field, v, err)
	}
	return m
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// Fields after comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad stat")
	}
	return u + st, nil
}

// treeTicks is the CPU time (utime+stime, clock ticks) of every process
// under root.
func treeTicks(root int) int64 {
	var n int64
	for _, p := range descendants(root) {
		if c, err := cpuTicks(p.pid); err == nil {
			n += c
		}
	}
	return n
}

// fdCount returns the number of open fds of pid.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// waitFdCount waits (up to 5 s) until pid has want fds and returns the
// count; the error says how many it had instead, or why they could not be
// counted.
func waitFdCount(pid, want int) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := fdCount(pid)
		switch {
		case err != nil:
			return n, err
		case n == want:
			return n, nil
		case time.Now().After(deadline):
			return n, fmt.Errorf("pid %d has %d fds after 5 s, want %d", pid, n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdFlags returns the flags line of /proc/pid/fdinfo/fd.
func fdFlags(pid, fd int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		}
	}
	return 0, errors.New("no flags")
}

var socketLink = regexp.MustCompile(`^socket:\[(\d+)\]$`)

// socketInodes returns the inodes of pid's socket fds, by fd.
func socketInodes(pid int) map[int]string {
	out := map[int]string{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if m := socketLink.FindStringSubmatch(link); m != nil {
			fd, _ := strconv.Atoi(e.Name())
			out[fd] = m[1]
		}
	}
	return out
}

// holds reports which of inodes pid has open.
func holds(pid int, inodes map[string]bool) []string {
	var held []string
	seen := map[string]bool{}
	for _, ino := range socketInodes(pid) {
		if inodes[ino] && !seen[ino] {
			seen[ino] = true
			held = append(held, ino)
		}
	}
	sort.Strings(held)
	return held
}

// waitStopped waits up to guard until every thread of pid is stopped
// (state T). The error says which threads were still running, or that pid
// is gone.
func waitStopped(pid int, guard time.Duration) error {
	deadline := time.Now().Add(guard)
	for {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("pid %d: %v", pid, err)
		}
		var running []string
		for _, e := range ents {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
			if err != nil {
				continue // the thread is gone
			}
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i < 0 || i+2 >= len(s) || s[i+2] != 'T' {
				running = append(running, e.Name())
			}
		}
		if len(ents) > 0 && len(running) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d: threads %v still not stopped after %v", pid, running, guard)
		}
		time.Sleep(time.Millisecond)
	}
}
