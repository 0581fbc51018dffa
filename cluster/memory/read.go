package memory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Bounds on what is read of a file: a limit file holds a few dozen bytes,
// memory.stat, memory.events, meminfo and smaps_rollup a few kilobytes.
const (
	maxLimitFile = 4096
	maxStatFile  = 64 << 10
)

// Usage is what a cgroup is charged, counted as the kubelet counts it.
type Usage struct {
	// Usage is every byte charged: v2 memory.current, v1
	// memory.usage_in_bytes. It includes the page cache.
	Usage int64 `json:"usage"`
	// InactiveFile is the page cache not used lately, which the kernel
	// reclaims first under pressure: memory.stat's inactive_file (v2) or
	// total_inactive_file (v1, the cgroup and its descendants); 0 when
	// memory.stat has no such line.
	InactiveFile int64 `json:"inactive_file"`
	// WorkingSet is Usage less InactiveFile, never negative: what the
	// kubelet compares with the limit to evict a pod, and what the kernel
	// cannot give back without killing.
	WorkingSet int64 `json:"working_set"`
}

// ReadUsage reads the memory a cgroup is charged. dir is an absolute
// directory such as Result.Dir, version its cgroup version (1 or 2).
func ReadUsage(fsys fs.FS, dir string, version int) (Usage, error) {
	usageFile, inactiveKey := "memory.current", "inactive_file"
	switch version {
	case 1:
		usageFile, inactiveKey = "memory.usage_in_bytes", "total_inactive_file"
	case 2:
	default:
		return Usage{}, fmt.Errorf("memory: cgroup version %d: want 1 or 2", version)
	}
	raw, err := readSmall(fsys, dir+"/"+usageFile, maxLimitFile)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	if u.Usage, err = strconv.ParseInt(strings.TrimSpace(raw), 10, 64); err != nil || u.Usage < 0 {
		return Usage{}, fmt.Errorf("%s/%s: %q is not a number of bytes", dir, usageFile, oneLine(raw))
	}
	stat, err := readSmall(fsys, dir+"/memory.stat", maxStatFile)
	if err != nil {
		return Usage{}, err
	}
	if v, ok := field(stat, inactiveKey); ok && v > 0 {
		u.InactiveFile = v
	}
	u.WorkingSet = max(u.Usage-u.InactiveFile, 0)
	return u, nil
}

// ReadOOMKills reads how many processes the kernel's OOM killer has killed
// in a cgroup: the oom_kill line of memory.events (v2) or
// memory.oom_control (v1). The kernel counts a kill in the victim's
// cgroup; v2 counts it in every ancestor too (unless cgroup2 is mounted
// with memory_localevents), v1 does not: under v1, the kills of herd's
// workers are counted in herd's own directory (Result.Leaf) alone, even
// when the limit that made them sits on an ancestor. ok is false when the
// file has no such line: kernels before 4.13 do not count.
func ReadOOMKills(fsys fs.FS, dir string, version int) (n uint64, ok bool, err error) {
	var file string
	switch version {
	case 1:
		file = "memory.oom_control"
	case 2:
		file = "memory.events"
	default:
		return 0, false, fmt.Errorf("memory: cgroup version %d: want 1 or 2", version)
	}
	raw, err := readSmall(fsys, dir+"/"+file, maxStatFile)
	if err != nil {
		return 0, false, err
	}
	v, ok := field(raw, "oom_kill")
	if !ok {
		return 0, false, nil
	}
	if v < 0 {
		return 0, false, fmt.Errorf("%s/%s: oom_kill %d", dir, file, v)
	}
	return uint64(v), true, nil
}

// ProcessSize is how much memory a process takes, in bytes: its
// proportional set size, the Pss line of /proc/PID/smaps_rollup (Linux
// 4.14 and later). PSS divides each resident page by the number of
// processes that map it, so a page the workers share (code, a forked
// parent's heap) counts once across them, and the sizes of a cgroup's
// processes add up to about what it is charged for their resident pages;
// RSS would count a shared page in every worker. When smaps_rollup is
// missing or cannot be read, or shows no Pss (a process exiting), the
// resident set size of /proc/PID/statm times the page size stands in.
func ProcessSize(fsys fs.FS, pid int) (int64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("memory: pid %d: must be positive", pid)
	}
	proc := "/proc/" + strconv.Itoa(pid)
	raw, err := readSmall(fsys, proc+"/smaps_rollup", maxStatFile)
	if err == nil {
		if kb, ok := field(raw, "Pss:"); ok && kb >= 0 && kb <= NoLimit/1024 {
			return kb * 1024, nil
		}
	}
	statm, err := readSmall(fsys, proc+"/statm", maxLimitFile)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(statm)
	var pages int64 = -1
	if len(f) >= 2 {
		pages, _ = strconv.ParseInt(f[1], 10, 64)
	}
	if pages < 0 || pages > NoLimit/int64(os.Getpagesize()) {
		return 0, fmt.Errorf("%s/statm: %q: want the resident pages second", proc, oneLine(statm))
	}
	return pages * int64(os.Getpagesize()), nil
}

// field finds the line of text that begins with key, followed by blanks,
// and returns the whole number after it ("inactive_file 4096", "Pss:
// 422 kB"). ok is false when no such line holds a number.
func field(text, key string) (int64, bool) {
	for line := range strings.Lines(text) {
		rest, found := strings.CutPrefix(line, key)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// fsPath turns an absolute path into a name for an fs.FS rooted at "/".
func fsPath(abs string) string {
	if p := strings.TrimLeft(abs, "/"); p != "" {
		return p
	}
	return "."
}

// readSmall reads a file of at most limit bytes.
func readSmall(fsys fs.FS, abs string, limit int) (string, error) {
	f, err := fsys.Open(fsPath(abs))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", abs, err)
	}
	if len(b) > limit {
		return "", fmt.Errorf("%s: larger than %d bytes", abs, limit)
	}
	return string(b), nil
}

func unreadable(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "missing, no limit here"
	}
	return "unreadable, no limit here: " + err.Error()
}

// oneLine shows file content on one line, shortened.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	s = strings.ReplaceAll(s, "\n", `\n`)
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
