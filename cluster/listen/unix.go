package listen

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxUnixPath is the longest path a sockaddr_un holds with its NUL.
const maxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1

// bindUnix is Bind for a unix socket.
func (sp Spec) bindUnix(backlog int, reusePort bool) (*Listener, error) {
	p := sp.Address
	fail := func(op string, err error, hint string) (*Listener, error) {
		return nil, &BindError{Spec: sp, Op: op, Err: err, Hint: hint}
	}
	if reusePort {
		return fail("bind", unix.EINVAL, "unix sockets cannot share a path: SO_REUSEPORT works for TCP only")
	}
	if !strings.HasPrefix(p, "/") || len(p) > maxUnixPath {
		return fail("bind", unix.EINVAL, fmt.Sprintf("a unix socket needs an absolute path of at most %d bytes", maxUnixPath))
	}
	if hint, err := removeStale(p); err != nil {
		return fail("bind", err, hint)
	}
	fd, err := streamSocket(unix.AF_UNIX)
	if err != nil {
		return fail("socket", err, "")
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		unix.Close(fd)
		return fail("bind", err, unixHint(err, p))
	}
	l := &Listener{Spec: sp, FD: fd, Addr: &net.UnixAddr{Name: p, Net: "unix"}}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err == nil {
		l.created = &st
	}
	if err := l.listenUnix(backlog); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// listenUnix gives the socket file l's Bind created its mode and owner, then
// listens: no client connects before they are in place.
func (l *Listener) listenUnix(backlog int) error {
	sp, p := l.Spec, l.Spec.Address
	if sp.Mode != 0 {
		if err := unix.Chmod(p, uint32(sp.Mode.Perm())); err != nil {
			return &BindError{Spec: sp, Op: "chmod " + fmt.Sprintf("%#o", sp.Mode.Perm()), Err: err}
		}
	}
	if uid, gid := sp.UID, sp.GID; uid >= 0 || gid >= 0 {
		if l.created != nil {
			if uid == int(l.created.Uid) {
				uid = -1
			}
			if gid == int(l.created.Gid) {
				gid = -1
			}
		}
		if uid >= 0 || gid >= 0 {
			if err := unix.Fchownat(unix.AT_FDCWD, p, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				hint := ""
				if err == unix.EPERM {
					hint = "changing a file's owner needs root or CAP_CHOWN"
				}
				return &BindError{Spec: sp, Op: "chown " + chownArg(sp.UID, sp.GID), Err: err, Hint: hint}
			}
		}
	}
	if err := unix.Listen(l.FD, backlog); err != nil {
		return &BindError{Spec: sp, Op: "listen", Err: err}
	}
	return nil
}

// chownArg writes uid and gid as chown(1) takes them: "uid", ":gid" or
// "uid:gid".
func chownArg(uid, gid int) string {
	switch {
	case gid < 0:
		return strconv.Itoa(uid)
	case uid < 0:
		return ":" + strconv.Itoa(gid)
	}
	return strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
}

// RemoveStale makes room for a new socket at p, a path, before bind(2):
// nothing there is fine; a socket file nobody answers on is left over by a
// process that is gone and is removed; anything else stays and is an error.
//
// The probe is a non-blocking connect(2) from a stream socket. The kernel
// refuses it (ECONNREFUSED) only when no socket is bound to the file any
// more, whatever its type. A socket still bound is in use: a stream server
// accepts the probe (and sees a connection closed before it sent anything)
// or, with a full backlog, leaves it pending (EAGAIN); a socket of another
// type, such as a datagram socket, answers EPROTOTYPE. A socket in use, a
// regular file, a directory, a symbolic link (never followed) or any other
// kind of file is an error wrapping EADDRINUSE. An error wraps the errno,
// names p and, where it can, says why.
func RemoveStale(p string) error {
	hint, err := removeStale(p)
	switch {
	case err == nil:
		return nil
	case hint == "":
		return fmt.Errorf("%s: %w", p, err)
	}
	return fmt.Errorf("%s: %w (%s)", p, err, hint)
}

// removeStale is RemoveStale; it returns the errno and, apart, the hint
// that explains it.
func removeStale(p string) (hint string, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT {
			return "", nil
		}
		return unixHint(err, p), err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Sprintf("%s is %s, not a socket; herd removes only stale sockets", p, fileType(st.Mode)), unix.EADDRINUSE
	}
	fd, err := streamSocket(unix.AF_UNIX)
	if err != nil {
		return "probing whether the socket is in use", err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: p})
	unix.Close(fd)
	switch err {
	case nil, unix.EAGAIN, unix.EINPROGRESS, unix.EPROTOTYPE:
		return "a process accepts connections on it", unix.EADDRINUSE
	case unix.ECONNREFUSED:
		if err := unix.Unlink(p); err != nil && err != unix.ENOENT {
			return "removing the stale socket " + p, err
		}
		return "", nil
	}
	return "cannot tell whether a process still accepts on the socket", err
}

// fileType names the kind of file mode is, for an error.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a FIFO"
	}
	return "a special file"
}

// unixHint explains an error creating a socket file.
func unixHint(err error, p string) string {
	dir := path.Dir(p)
	switch err {
	case unix.EACCES:
		return "no permission to create a file in " + dir
	case unix.ENOENT:
		return "directory " + dir + " does not exist"
	case unix.ENOTDIR:
		return "a parent of " + p + " is not a directory"
	case unix.EROFS:
		return dir + " is on a read-only file system"
	case unix.EADDRINUSE:
		return "a file appeared at the path"
	}
	return ""
}
