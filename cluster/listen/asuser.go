package listen

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BindAs is Bind with the rights of a worker running as cred (asUser): the
// kernel refuses what that worker could not bind itself, and the socket,
// and a unix socket's file, belong to cred's user; Close removes that file
// as the same user. nil, or a cred whose uid is 0, binds as herd.
func (sp Spec) BindAs(cred *syscall.Credential, backlog int, reusePort bool) (*Listener, error) {
	l, err := asUser(cred, func() (*Listener, error) { return sp.Bind(backlog, reusePort) })
	if l != nil {
		l.cred = cred
	}
	return l, err
}

// asUser runs f with the rights a worker running as cred has: f's system
// calls create sockets and files, and the kernel judges them (a port below
// net.ipv4.ip_unprivileged_port_start, the permissions and ACLs of a
// directory, a SO_REUSEPORT group, which must share one user) as it would
// judge them in the worker. What f creates belongs to cred's user. With cred
// nil, or a cred whose uid is 0 (workers that run as root may do anything
// herd may do), f runs as herd.
//
// f runs on an OS thread of its own that changes only its own credentials,
// with raw system calls: the supplementary groups (setgroups, unless
// cred.NoSetGroups, as when the workers start), the file-system user and
// group (setfsuid, setfsgid: what file permission checks use and what a new
// socket and a new file are owned by) and the capabilities, all dropped, as
// the kernel drops them from a worker when it leaves uid 0. The real,
// effective and saved ids stay herd's (file-system ids, not setresuid, for
// that): no process of cred's user may signal the thread (a signal to any
// thread of herd is a signal to herd) or trace it while it works, as it
// could a thread whose ids were its own. The wrappers of package syscall
// and x/sys/unix (Setgroups, Setuid, Setresuid) cannot be used: they apply
// to every thread of the process.
//
// That is safe because the thread never runs anything else and never comes
// back:
//   - the goroutine locks itself to the thread (runtime.LockOSThread), so no
//     other goroutine runs on it while it carries cred;
//   - a thread the runtime starts while running on a locked thread is
//     created by the runtime's template thread, which LockOSThread starts
//     beforehand, with herd's credentials, and not cloned from the locked
//     one, which would hand on cred;
//   - the goroutine returns without unlocking, and the runtime ends a thread
//     whose goroutine exits locked instead of reusing it. The one exception
//     is the main thread, which the runtime would park forever with cred
//     instead: a goroutine that finds itself there does not work there but
//     holds it while a new goroutine takes another thread, and then gives
//     it back unchanged.
//
// A change of the file-system ids makes the kernel mark the whole process
// as not dumpable (no core dump, /proc files owned by root); the thread
// restores what was set before it returns. That is safe as herd's own
// threads keep their real and effective ids, which are what ptrace(2) and
// /proc check.
//
// A credential the thread cannot take (setgroups and setfsuid need
// CAP_SETGID and CAP_SETUID, as starting the workers does) is an error,
// and f does not run.
func asUser[T any](cred *syscall.Credential, f func() (T, error)) (T, error) {
	if cred == nil || cred.Uid == 0 {
		return f()
	}
	var (
		v    T
		err  error
		done = make(chan struct{})
	)
	var run func()
	run = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread, which the runtime would park rather than end:
			// hold it, so that the new goroutine runs elsewhere.
			go run()
			<-done
			runtime.UnlockOSThread()
			return
		}
		defer close(done)
		if err = takeCred(cred); err != nil {
			return
		}
		v, err = f()
		// Returns locked: the runtime ends this thread.
	}
	go run()
	<-done
	return v, err
}

// ErrCredentials is in the error of BindAs and BindUDP when the thread that
// binds could not take the workers' credentials; an error of the bind
// itself, such as the kernel's refusal of their user, does not wrap it.
var ErrCredentials = errors.New("cannot take the workers' user and groups")

// takeCred gives the calling thread cred's supplementary groups, file-system
// user and group, and no capabilities (see asUser). The thread must be
// locked and discarded afterwards.
func takeCred(cred *syscall.Credential) (err error) {
	dumpable, derr := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	defer func() {
		if derr == nil && dumpable == 1 {
			_ = unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		}
	}()
	if !cred.NoSetGroups {
		var groups unsafe.Pointer
		if len(cred.Groups) > 0 {
			groups = unsafe.Pointer(&cred.Groups[0])
		}
		if _, _, e := unix.RawSyscall(sysSetgroups, uintptr(len(cred.Groups)), uintptr(groups), 0); e != 0 {
			return fmt.Errorf("%w: setgroups: %w", ErrCredentials, e)
		}
	}
	// setfsgid and setfsuid return the previous id and no error: asking
	// again with an invalid id (-1) tells whether the change was taken.
	const query = uintptr(^uint32(0))
	unix.RawSyscall(sysSetfsgid, uintptr(cred.Gid), 0, 0)
	if got, _, _ := unix.RawSyscall(sysSetfsgid, query, 0, 0); uint32(got) != cred.Gid {
		return fmt.Errorf("%w: setfsgid %d: %w", ErrCredentials, cred.Gid, unix.EPERM)
	}
	unix.RawSyscall(sysSetfsuid, uintptr(cred.Uid), 0, 0)
	if got, _, _ := unix.RawSyscall(sysSetfsuid, query, 0, 0); uint32(got) != cred.Uid {
		return fmt.Errorf("%w: setfsuid %d: %w", ErrCredentials, cred.Uid, unix.EPERM)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData // effective, permitted, inheritable: none
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&caps[0])), 0); e != 0 {
		return fmt.Errorf("%w: capset: %w", ErrCredentials, e)
	}
	return nil
}
