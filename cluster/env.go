package cluster

import (
	"strconv"
	"strings"

	"github.com/herd-sh/herd/cluster/cpus"
)

// inherited lists variables a worker gets only from herd: values herd's
// own parent passed would name the wrong process or socket.
var inherited = map[string]bool{
	"HERD_WORKER_ID": true, "HERD_WORKER_INDEX": true, "HERD_WORKERS": true, "HERD_WORKER_CPUS": true, "HERD_WORKER_MEMORY": true,
	"LISTEN_FDS": true, "LISTEN_PID": true, "LISTEN_FDNAMES": true, "PORT": true,
	"NOTIFY_SOCKET": true, "WATCHDOG_USEC": true, "WATCHDOG_PID": true, launchStatusVar: true,
}

// workerEnv is the environment of a new worker in sl.
func (s *Supervisor) workerEnv(id int, sl *slot) []string {
	var share *cpus.Fraction
	if s.cfg.Hints && s.budget != nil {
		f := s.budget.Budget.Per(s.desired())
		share = &f
	}
	env := workerEnv(s.cfg.Env, id, sl.index, s.desired(), share)
	if s.cfg.Hints && s.cfg.Memory.Limit > 0 {
		env = memoryHints(env, s.cfg.Memory.Limit/int64(max(s.desired(), 1)))
	}
	if socks := s.sockets(sl); len(socks) > 0 {
		names := make([]string, len(socks))
		for i, l := range socks {
			names[i] = l.Spec.Name
		}
		// LISTEN_PID is set by the launcher, which knows the worker's pid.
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(socks)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
		for _, l := range socks {
			if p := l.Port(); p > 0 {
				env = append(env, "PORT="+strconv.Itoa(p))
				break
			}
		}
	}
	if s.cfg.Policy == PolicyRR {
		// Under rr a worker gets no socket, only the address to ask for
		// through the protocol: PORT says which.
		for _, l := range s.cfg.Listeners {
			if p := l.Port(); p > 0 {
				env = append(env, "PORT="+strconv.Itoa(p))
				break
			}
		}
	}
	if s.cfg.NotifyAddr != "" {
		env = append(env, "NOTIFY_SOCKET="+s.cfg.NotifyAddr)
	}
	if s.cfg.Watchdog > 0 {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(s.cfg.Watchdog.Microseconds(), 10))
	}
	return env
}

// workerEnv is base plus the worker's identity, replacing inherited values
// of the same names so each appears once. With a share of the CPU budget
// it adds HERD_WORKER_CPUS, and sizes GOMAXPROCS (Go's scheduler threads)
// and UV_THREADPOOL_SIZE (libuv's pool for file system, DNS, crypto and
// zlib work in Node) to it, unless the environment sets them already: a
// runtime that sizes itself to the whole pod would give N workers N times
// the threads the pod has CPUs for. The pool keeps at least 2 threads, so
// one slow DNS lookup cannot hold up every file read.
func workerEnv(base []string, id, index, workers int, share *cpus.Fraction) []string {
	env := make([]string, 0, len(base)+8)
	var hasGo, hasUV bool
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case inherited[k]:
			continue
		case k == "GOMAXPROCS":
			hasGo = true
		case k == "UV_THREADPOOL_SIZE":
			hasUV = true
		}
		env = append(env, kv)
	}
	env = append(env,
		"HERD_WORKER_ID="+strconv.Itoa(id),
		"HERD_WORKER_INDEX="+strconv.Itoa(index),
		"HERD_WORKERS="+strconv.Itoa(workers))
	if share == nil {
		return env
	}
	threads := max(share.Ceil(), 1)
	env = append(env, "HERD_WORKER_CPUS="+share.String())
	if !hasGo {
		env = append(env, "GOMAXPROCS="+strconv.FormatUint(threads, 10))
	}
	if !hasUV {
		env = append(env, "UV_THREADPOOL_SIZE="+strconv.FormatUint(max(threads, 2), 10))
	}
	return env
}

// minOldSpace is the smallest old space herd gives Node, in bytes.
const (
	mib         = 1 << 20
	minOldSpace = 32 * mib
)

// memoryHints adds, to a worker's env, its share of the memory budget
// (HERD_WORKER_MEMORY, bytes) and, unless the environment sets them
// already, limits that keep the runtimes inside it:
//
//   - Node: --max-old-space-size appended to NODE_OPTIONS, half the share
//     (at least 32 MiB), as V8 sizes its heap to half of the memory it
//     sees when it sees the whole container: the young generation, code,
//     buffers and the rest of the process fit in the other half. A 128 MiB
//     share gives a 64 MiB old space;
//   - Go: GOMEMLIMIT, nine tenths of the share (the runtime's own memory
//     is small beside the heap).
func memoryHints(env []string, share int64) []string {
	old := max(share/2, minOldSpace) / mib
	nodeOpts, hasGo := -1, false
	for i, kv := range env {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "NODE_OPTIONS":
			nodeOpts = i
			if strings.Contains(v, "--max-old-space-size") || strings.Contains(v, "--max_old_space_size") {
				nodeOpts = -2 // the user's own: left alone
			}
		case "GOMEMLIMIT":
			hasGo = true
		}
	}
	flag := "--max-old-space-size=" + strconv.FormatInt(old, 10)
	switch nodeOpts {
	case -1:
		env = append(env, "NODE_OPTIONS="+flag)
	case -2:
	default:
		env[nodeOpts] = strings.TrimRight(env[nodeOpts], " ") + " " + flag
	}
	if !hasGo {
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(share*9/10/mib, 10)+"MiB")
	}
	return append(env, "HERD_WORKER_MEMORY="+strconv.FormatInt(share, 10))
}
