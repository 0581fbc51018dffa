package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A script whose #! line names an interpreter that does not exist makes
// execve fail with ENOENT, as if the script itself were missing, and one
// whose interpreter cannot be executed with EACCES. herd names the
// interpreter and reports 126: the command exists but cannot be executed.

// maxShebang is how much of a file the kernel reads for its #! line
// (BINPRM_BUF_SIZE).
const maxShebang = 256

// badInterpreterError is a script that cannot start because of the
// interpreter its #! line names.
type badInterpreterError struct {
	Interpreter string
	Err         error // ENOENT, EACCES, ...
}

func (e *badInterpreterError) Error() string {
	msg := "bad interpreter " + e.Interpreter + ": " + e.Err.Error()
	if strings.HasSuffix(e.Interpreter, "\r") {
		msg += " (the #! line ends in a carriage return: the script has DOS line endings)"
	}
	return msg
}

func (e *badInterpreterError) Unwrap() error { return e.Err }

// errNeedsMissing is ENOENT from an interpreter that exists: a file it needs
// to start (its ELF interpreter, or its own #! interpreter) is missing.
var errNeedsMissing = fmt.Errorf("%w (it exists, but a file it needs to start does not)", syscall.ENOENT)

// shebang reads the interpreter that a #! line at the start of r names, as
// the kernel parses it: "#!", optional blanks, then the path up to a blank,
// a NUL or the end of the line. It reads at most the kernel's 256 bytes. ok
// is false when r does not start with "#!" or when the line names no
// interpreter the kernel would run (none, or one cut off by its buffer).
func shebang(r io.Reader) (interp string, ok bool) {
	buf := make([]byte, maxShebang)
	n, _ := io.ReadFull(r, buf)
	buf = buf[:n]
	if n < 2 || buf[0] != '#' || buf[1] != '!' {
		return "", false
	}
	line := buf[2:]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		line = buf[2:i]
	} else if n == maxShebang {
		// A full buffer and no newline: the kernel runs the interpreter
		// only if a blank or NUL ends its name within the buffer. (A
		// shorter file is padded with NULs, which end the name.)
		if bytes.IndexAny(bytes.TrimLeft(line, " \t"), " \t\x00") < 0 {
			return "", false
		}
	}
	line = bytes.TrimLeft(line, " \t")
	if i := bytes.IndexAny(line, " \t\x00"); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 {
		return "", false
	}
	return string(line), true
}

// interpreter is the #! interpreter of the file at path, "" when it is not
// a readable regular file that starts with a #! line.
func interpreter(path string) string {
	// Non-blocking, so that a FIFO does not hold herd up.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	interp, _ := shebang(f)
	return interp
}

// CheckInterpreter reports, before anything starts, a script at path whose
// #! interpreter does not exist or is not an executable file. A relative
// interpreter is looked up in the current directory, the one workers start
// in. Permissions are judged by the mode bits alone: workers may run as
// another user than herd.
func CheckInterpreter(path string) error {
	interp := interpreter(path)
	if interp == "" {
		return nil
	}
	fi, err := os.Stat(interp)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.ENOENT || errno == syscall.ENOTDIR) {
			return &badInterpreterError{Interpreter: interp, Err: errno}
		}
		return nil
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return &badInterpreterError{Interpreter: interp, Err: syscall.EACCES}
	}
	return nil
}

// explainStart returns err, the failure of execve(path) in directory dir,
// or a badInterpreterError when the fault lies with path's #! interpreter:
// ENOENT although path can be opened, or EACCES although path is
// executable and its interpreter is not.
func explainStart(path, dir string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) || (errno != syscall.ENOENT && errno != syscall.EACCES) {
		return err
	}
	interp := interpreter(path)
	if interp == "" {
		return err
	}
	at := interp
	if !filepath.IsAbs(at) {
		at = filepath.Join(dir, at)
	}
	if errno == syscall.ENOENT {
		if _, serr := os.Stat(at); serr == nil {
			return &badInterpreterError{Interpreter: interp, Err: errNeedsMissing}
		}
		return &badInterpreterError{Interpreter: interp, Err: errno}
	}
	if executable(path) != nil {
		return err // the script itself
	}
	if ierr := executable(at); ierr != nil {
		return &badInterpreterError{Interpreter: interp, Err: ierr}
	}
	return err
}

// executable says why herd could not execute the file at p: not a regular
// file, no execute permission, or a file system mounted noexec.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return syscall.EACCES
	}
	return unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS)
}
