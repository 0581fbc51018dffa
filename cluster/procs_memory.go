package cluster

import (
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/herd-sh/herd/cluster/memory"
)

// maxTreeSize bounds the processes counted under one worker.
const maxTreeSize = 256

// sizes sums the memory (PSS) of each worker and its descendants, found
// through /proc/PID/task/TID/children, so that a worker that is a shell
// or npm counts the server it runs. Reading the children of each worker
// costs a few files; a scan of /proc would read every process's.
func (k kernel) sizes(pids []int) map[int]int64 {
	proc := os.DirFS("/proc")
	root := os.DirFS("/")
	out := make(map[int]int64, len(pids))
	for _, pid := range pids {
		var total int64
		ok := false
		for _, p := range tree(proc, pid) {
			if n, err := memory.ProcessSize(root, p); err == nil {
				total += n
				ok = true
			}
		}
		if ok {
			out[pid] = total
		}
	}
	return out
}

// tree lists pid and its descendants (at most maxTreeSize), through the
// children file of each process's main thread: the processes a server
// starts (npm's node, a shell's command) are forked there; a child forked
// by another thread is not counted.
func tree(proc fs.FS, pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out) && len(out) < maxTreeSize; i++ {
		p := strconv.Itoa(out[i])
		b, err := fs.ReadFile(proc, p+"/task/"+p+"/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && len(out) < maxTreeSize {
				out = append(out, c)
			}
		}
	}
	return out
}

func (k kernel) workingSet(dir string, version int) (int64, bool) {
	u, err := memory.ReadUsage(os.DirFS("/"), dir, version)
	if err != nil {
		return 0, false
	}
	return u.WorkingSet, true
}

func (k kernel) oomKills(dir string, version int) (uint64, bool) {
	n, ok, err := memory.ReadOOMKills(os.DirFS("/"), dir, version)
	return n, ok && err == nil
}
