package initproc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// IsPID1 reports whether herd is the first process of its PID namespace.
func IsPID1() bool { return os.Getpid() == 1 }

// BecomeSubreaper makes orphaned descendants of herd its children instead of
// the namespace init's (prctl PR_SET_CHILD_SUBREAPER, Linux 3.4+).
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// CloseInherited marks every descriptor from 3 up close-on-exec, so a
// descriptor herd's parent leaked to herd does not reach the workers. It uses
// close_range(2) (Linux 5.11+) and falls back to walking /proc/self/fd.
func CloseInherited() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
