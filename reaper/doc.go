// Package reaper is the one and only caller of wait4 in herd.
//
// When herd runs as PID 1, the kernel makes it the parent of every process in
// the container whose own parent has died; when it is not PID 1, herd marks
// itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER) so that orphans of
// its own descendants come to it instead of passing through to the real init.
// Either way those orphans become zombies until someone calls wait4 on them.
//
// The Reaper drains wait4(-1, WNOHANG) each time SIGCHLD arrives and on a one
// second safety tick (SIGCHLD is a standard signal: several children dying at
// once raise it once). Every status whose pid was registered through Spawn is
// handed to that pid's owner; any other pid is an orphan, counted and logged.
//
// Invariant: Spawn and the drain share one mutex. A process is started and its
// pid registered under that lock, so a worker that dies at once can never be
// reaped before its owner is known; and no other code may wait on a child, or
// its status would be stolen from the reaper (never exec.Cmd.Wait, Run or
// Output, never os.Process.Wait).
//
// The one exception lives in the standard library: when execve fails in the
// child, syscall.forkExec itself waits for that child. Spawn holds the lock
// across the start, so the drain can never race that wait.
package reaper
