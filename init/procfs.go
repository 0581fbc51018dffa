package initproc

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// Proc is one process as /proc/PID/stat shows it.
type Proc struct {
	Pid, PPid, PGid int
	State           byte
}

// ReadProcs lists every process in fsys, a /proc file system (os.DirFS("/proc")
// in production). Processes that vanish while it reads are skipped.
func ReadProcs(fsys fs.FS) ([]Proc, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := fs.ReadFile(fsys, e.Name()+"/stat")
		if err != nil {
			continue
		}
		p, err := ParseStat(data)
		if err != nil || p.Pid != pid {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseStat reads "pid (comm) state ppid pgrp ..." (/proc/PID/stat). The
// command name may hold spaces and parentheses, so the fields after it are
// found from the last ')'.
func ParseStat(data []byte) (Proc, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 1 || closing < open {
		return Proc{}, fmt.Errorf("malformed stat %q", data)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("malformed stat pid: %w", err)
	}
	f := bytes.Fields(data[closing+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return Proc{}, fmt.Errorf("malformed stat %q", data)
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return Proc{}, fmt.Errorf("malformed stat %q", data)
	}
	return Proc{Pid: pid, PPid: ppid, PGid: pgid, State: f[0][0]}, nil
}

// OwnProcfs reports whether /proc shows herd's own PID namespace: /proc/self
// must name herd's pid. A PID namespace created without mounting a fresh
// /proc would otherwise show the host's processes.
func OwnProcfs() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// Descendants returns the living processes below root in procs (children,
// their children, and so on). With everyone set, every process but root is
// returned: as PID 1 the whole namespace is herd's, including processes
// injected from outside, whose parent lies outside the namespace.
func Descendants(procs []Proc, root int, everyone bool) []Proc {
	var out []Proc
	if everyone {
		for _, p := range procs {
			if p.Pid != root && p.State != 'Z' && p.State != 'X' {
				out = append(out, p)
			}
		}
		return out
	}
	children := map[int][]Proc{}
	for _, p := range procs {
		children[p.PPid] = append(children[p.PPid], p)
	}
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if seen[c.Pid] {
				continue
			}
			seen[c.Pid] = true
			queue = append(queue, c.Pid)
			if c.State != 'Z' && c.State != 'X' {
				out = append(out, c)
			}
		}
	}
	return out
}
