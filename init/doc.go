// Package initproc holds herd's duties as the first process of a container.
// The directory is init/ but the package is named initproc, because init is
// reserved in Go; import it as
//
//	initproc "github.com/herd-sh/herd/init"
//
// What the kernel does to PID 1, and what this package does about it:
//
//   - The kernel delivers to PID 1 only the signals it has a handler for.
//     Go installs a handler for almost every signal, and for one that the
//     program did not register the runtime's default applies: SIGTERM makes
//     an unprepared Go PID 1 exit 2 instead of stopping its children. Notify
//     registers an explicit list (every catchable signal but the ones below)
//     before anything else starts; SIGPIPE is registered and dropped.
//     Nothing is ever set to SIG_IGN, because an ignored disposition survives
//     execve. SIGCHLD belongs to the reaper, SIGURG to the Go runtime
//     (goroutine preemption).
//   - Every worker starts with no signal blocked and every signal at its
//     default action, whatever herd inherited (package cluster does it;
//     IgnoredSignals tells it whether the launcher must). An inherited
//     SIG_IGN for SIGHUP or SIGINT, which Go's runtime keeps, stays herd's
//     own.
//   - Orphans are reparented to PID 1, or to the nearest ancestor that set
//     PR_SET_CHILD_SUBREAPER. When herd is not PID 1 it becomes a subreaper
//     (BecomeSubreaper) and then never sends kill(-1): outside its own PID
//     namespace that would signal processes that are not its own.
//   - Every file descriptor herd inherited beyond 0-2 is marked close-on-exec
//     (CloseInherited) so workers receive only what is meant for them.
//   - herd changes its directory to / so it pins no mount; workers start in
//     the directory herd was started in.
//   - The exit code follows tini: a worker's status passes through, death by
//     signal N becomes 128+N, 127 and 126 mean "not found" and "not
//     executable" (a script whose #! interpreter is missing is not
//     executable). Remap rewrites chosen codes (for example 143 to 0).
//   - On exit a short summary goes to the termination-message file Kubernetes
//     reads (TerminationMessage), when that file is writable.
package initproc
