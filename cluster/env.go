package cluster

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/cpus"
)

// inherited lists variables a worker gets only from herd: values herd's
// own parent passed would name the wrong process or socket.
var inherited = map[string]bool{
	"HERD_WORKER_ID": true, "HERD_WORKER_INDEX": true, "HERD_WORKERS": true, "HERD_WORKER_CPUS": true,
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

// LaunchArg is the hidden first argument with which herd runs itself as a
// worker's launcher: "herd LaunchArg PATH ARGV0 ARGS..." resets the signal
// state (every disposition to SIG_DFL, an empty mask), sets LISTEN_PID to
// its own pid when LISTEN_FDS is set, which the worker keeps across execve,
// and execs PATH. The systemd convention asks for LISTEN_PID, and Go cannot
// set a variable to a child's pid before the child runs; nor can it reset an
// ignored signal in a child between fork and execve.
const LaunchArg = "__herd_launch"

// launchStatusVar names the launcher's status fd: the write end of a pipe
// on which a failed execve is reported to herd as its errno. It is
// close-on-exec, so a worker that starts never sees it.
const launchStatusVar = "HERD_LAUNCH_STATUS_FD"

// Launch is the launcher's whole work; it returns only if execve failed,
// with the exit code to report (127 not found, 126 not executable), after
// telling herd through the status pipe.
func Launch(args []string) (code int, err error) {
	if len(args) < 2 {
		return 2, syscall.EINVAL
	}
	// The mask is per thread: the one that resets it must be the one that
	// calls execve.
	runtime.LockOSThread()
	status := -1
	listen := false
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, launchStatusVar+"="); ok {
			status, _ = strconv.Atoi(v)
			continue
		}
		listen = listen || strings.HasPrefix(kv, "LISTEN_FDS=")
		env = append(env, kv)
	}
	if status > 2 {
		syscall.CloseOnExec(status)
	}
	if listen {
		env = append(env, "LISTEN_PID="+strconv.Itoa(syscall.Getpid()))
	}
	// It fails only where the kernel's signal set is not 64 signals wide
	// (mips); the worker then starts all the same.
	_ = resetSignals()
	err = syscall.Exec(args[0], args[1:], env)
	if status > 2 {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			_, _ = syscall.Write(status, []byte(strconv.Itoa(int(errno))))
		}
	}
	code, _ = StartErrorCode(err)
	return code, err
}

// launchFailure reads what the launcher reported, if anything, and closes
// the pipe: the errno when its execve failed, nil otherwise (the pipe reads
// EOF once the worker's execve closed it).
func (w *worker) launchFailure() error {
	if w.launch < 0 {
		return nil
	}
	defer func() { unix.Close(w.launch); w.launch = -1 }()
	var buf [16]byte
	n, err := unix.Read(w.launch, buf[:])
	if err != nil || n <= 0 {
		return nil
	}
	return launchErrno(string(buf[:n]))
}

// launchErrno turns the launcher's report (an errno number, or its text)
// back into the errno.
func launchErrno(report string) syscall.Errno {
	if n, err := strconv.Atoi(report); err == nil {
		return syscall.Errno(n)
	}
	for e := syscall.Errno(1); e < 256; e++ {
		if e.Error() == report {
			return e
		}
	}
	return syscall.ENOEXEC
}
