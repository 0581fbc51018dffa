package cluster

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

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
