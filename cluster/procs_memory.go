package cluster

import (
	"os"

	"github.com/herd-sh/herd/cluster/memory"
	initproc "github.com/herd-sh/herd/init"
)

// sizes sums the memory (PSS) of every process in each worker's process
// group: a worker that is a shell or npm counts the server it runs.
func (k kernel) sizes(pids []int) map[int]int64 {
	want := make(map[int]bool, len(pids))
	for _, pid := range pids {
		want[pid] = true
	}
	procs, err := initproc.ReadProcs(os.DirFS("/proc"))
	if err != nil {
		return nil
	}
	root := os.DirFS("/")
	out := make(map[int]int64, len(pids))
	for _, p := range procs {
		if !want[p.PGid] {
			continue
		}
		if n, err := memory.ProcessSize(root, p.Pid); err == nil {
			out[p.PGid] += n
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
