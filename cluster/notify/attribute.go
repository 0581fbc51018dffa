package notify

import (
	"fmt"
	"io/fs"
	"strconv"

	initproc "github.com/herd-sh/herd/init"
)

// maxAncestors bounds the walk up the process tree in Attribute.
const maxAncestors = 32

// Attribute maps a sender pid to a worker pid: the sender itself if it is in
// workers, else its nearest ancestor that is, following the parent pid in
// fsys's <pid>/stat (fsys is /proc) for at most maxAncestors steps.
// This is how a worker's children (a shell wrapper that forked the server,
// gunicorn's arbiter, a systemd-notify call in a start script) report for
// their worker. ok is false when no ancestor is a worker, or when the sender
// or an ancestor is gone from /proc before it is read: attribute promptly, or
// use the Lineage Run recorded on arrival (Message.Worker).
func Attribute(fsys fs.FS, pid int, workers map[int]bool) (worker int, ok bool) {
	for step := 0; pid > 0; step++ {
		if workers[pid] {
			return pid, true
		}
		if step == maxAncestors {
			break
		}
		ppid, err := readPPid(fsys, pid)
		if err != nil {
			break
		}
		pid = ppid
	}
	return 0, false
}

// lineage is pid and its ancestors, up to maxAncestors of them, as fsys
// shows them now; nil when pid's own stat cannot be read.
func lineage(fsys fs.FS, pid int) []int {
	ppid, err := readPPid(fsys, pid)
	if err != nil {
		return nil
	}
	out := []int{pid}
	for len(out) <= maxAncestors && ppid > 0 {
		out = append(out, ppid)
		if ppid, err = readPPid(fsys, ppid); err != nil {
			break
		}
	}
	return out
}

// readPPid reads the parent pid from <pid>/stat.
func readPPid(fsys fs.FS, pid int) (int, error) {
	data, err := fs.ReadFile(fsys, strconv.Itoa(pid)+"/stat")
	if err != nil {
		return 0, err
	}
	p, err := initproc.ParseStat(data)
	if err != nil {
		return 0, err
	}
	if p.PPid < 0 {
		return 0, fmt.Errorf("notify: malformed stat ppid %d", p.PPid)
	}
	return p.PPid, nil
}
