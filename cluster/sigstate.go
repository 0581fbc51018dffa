package cluster

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every worker starts with no signal blocked and every signal at its
// default action, whatever herd inherited, as the children of Node's cluster
// primary (libuv's uv_spawn) and systemd's services do. Two pieces of herd's
// state could otherwise reach a worker through fork and execve:
//
//   - The signal mask. A child of Go's syscall.StartProcess gets the mask of
//     the thread that forked (the runtime saves it before fork and restores
//     it in the child), and herd's threads keep blocked whatever herd
//     inherited blocked and the runtime does not need unblocked. startProcess
//     forks from a thread whose mask it has emptied.
//   - Ignored dispositions. In the child the runtime resets the signals it
//     handles to SIG_DFL; execve keeps SIG_IGN. Go's runtime keeps an
//     inherited SIG_IGN only for SIGHUP and SIGINT (and for 32 and 34, which
//     belong to C libraries); herd keeps ignoring those itself. When herd has
//     any signal ignored (Config.ResetSignals), every worker starts through
//     the launcher, which sets every disposition to SIG_DFL and empties its
//     mask right before its execve.

// startProcess is syscall.StartProcess from a thread whose signal mask is
// empty, so that the child starts with none blocked.
func startProcess(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var empty, old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, &old); err == nil {
		// Unblocking is harmless to herd: a signal delivered on this
		// thread goes to Go's handler as on any other.
		defer func() { _ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) }()
	}
	pid, _, err := syscall.StartProcess(path, argv, attr)
	return pid, err
}

// resetSignals sets every signal's disposition to SIG_DFL and then the
// calling thread's mask to empty, in the order libuv's uv_spawn uses: a
// signal left pending by the old mask then acts with its default action, as
// it would in the program about to be executed. The caller must be locked
// to its thread and execve right after; nothing of Go's own signal handling
// works in between.
func resetSignals() error {
	// struct sigaction as rt_sigaction(2) reads it, all zero: SIG_DFL, no
	// flags, an empty mask. Larger than the kernel's struct on any
	// architecture; the kernel reads only its own size.
	var dfl [8]uint64
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		if e != 0 {
			return e
		}
	}
	var empty unix.Sigset_t
	return unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}
