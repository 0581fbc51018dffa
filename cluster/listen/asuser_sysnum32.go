//go:build linux && (386 || arm)

package listen

import "golang.org/x/sys/unix"

// The system calls that take 32-bit ids: here the ones named without 32
// take 16-bit ids.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetfsuid  = unix.SYS_SETFSUID32
	sysSetfsgid  = unix.SYS_SETFSGID32
)
