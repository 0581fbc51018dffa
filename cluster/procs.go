package cluster

import (
	"os"
	"syscall"

	initproc "github.com/herd-sh/herd/init"
	"github.com/herd-sh/herd/reaper"
	"golang.org/x/sys/unix"
)

// procs is the supervisor's seam to the kernel for processes: everything it
// does to start a process, signal one and find the ones a shutdown must
// stop goes through it. The supervisor's rules (restarts, backoff, rolling
// restarts, scaling, the steps of a shutdown) are thus tested with fake
// processes in a testing/synctest bubble, whose clock stands in for the
// real one; the real processes are the acceptance tests' business.
type procs interface {
	// start starts path with argv and attr and returns its pid; exited
	// is called, from another goroutine, once the process has been reaped.
	start(path string, argv []string, attr *syscall.ProcAttr, exited func(reaper.Status)) (int, error)
	// kill is kill(2): pid < 0 names a process group, -1 every process
	// the caller may signal.
	kill(pid int, sig unix.Signal) error
	// descendants lists the processes herd is responsible for, besides
	// its workers: its descendants, and as PID 1 every process of the
	// namespace. ok is false when they cannot be listed safely.
	descendants(pid1 bool) (list []initproc.Proc, ok bool)
	// childrenLeft reports whether some child of herd is not reaped yet;
	// reap asks for them to be reaped now.
	childrenLeft() bool
	reap()
	// sizes returns the memory of each worker's process group (the worker
	// and every process in its group), by worker pid; a worker whose
	// memory cannot be read is left out.
	sizes(pids []int) map[int]int64
	// workingSet returns the working set of the cgroup dir (version 1 or
	// 2): its usage less inactive file pages, as the kubelet counts it.
	workingSet(dir string, version int) (int64, bool)
	// oomKills returns how many processes the kernel's OOM killer has
	// ended in the cgroup dir.
	oomKills(dir string, version int) (uint64, bool)
}

// kernel is procs for real: processes started through the reaper, which
// alone waits for them, and /proc.
type kernel struct{ r *reaper.Reaper }

func (k kernel) start(path string, argv []string, attr *syscall.ProcAttr, exited func(reaper.Status)) (int, error) {
	return k.r.Spawn(func() (int, error) { return startProcess(path, argv, attr) }, exited)
}

func (k kernel) kill(pid int, sig unix.Signal) error { return unix.Kill(pid, sig) }

func (k kernel) descendants(pid1 bool) ([]initproc.Proc, bool) {
	if !initproc.OwnProcfs() {
		return nil, false
	}
	list, err := initproc.ReadProcs(os.DirFS("/proc"))
	if err != nil {
		return nil, false
	}
	return initproc.Descendants(list, os.Getpid(), pid1), true
}

func (k kernel) childrenLeft() bool { return k.r.ChildrenLeft() }
func (k kernel) reap()              { k.r.Kick() }
