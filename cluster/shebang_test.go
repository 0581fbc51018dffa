package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestShebang(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"#!/bin/sh\necho hi\n", "/bin/sh", true},
		{"#! /usr/bin/env python3\n", "/usr/bin/env", true},
		{"#!\t/bin/bash -e\n", "/bin/bash", true},
		{"#!/bin/sh", "/bin/sh", true},
		{"#!/bin/sh\r\necho hi\r\n", "/bin/sh\r", true},
		{"#!interp\n", "interp", true},
		{"#!/bin/sh\x00junk\n", "/bin/sh", true},
		{"#!/bin/sh " + long, "/bin/sh", true},
		{"#!/" + long + "\n", "", false}, // cut off by the kernel's buffer
		{"#!/" + long, "", false},
		{"#!\n/bin/sh\n", "", false},
		{"#!   \n", "", false},
		{"#!", "", false},
		{"#", "", false},
		{"", "", false},
		{"echo hi\n", "", false},
		{" #!/bin/sh\n", "", false},
		{"\x7fELF\x02\x01\x01", "", false},
	} {
		got, ok := shebang(strings.NewReader(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("shebang(%.40q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// endless is a file that never ends, counting what was read from it.
type endless struct{ read int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	copy(p, "#!/bin/sh -")
	e.read += len(p)
	return len(p), nil
}

func TestShebangBounded(t *testing.T) {
	r := &endless{}
	if got, ok := shebang(r); got != "/bin/sh" || !ok {
		t.Errorf("shebang = %q, %v; want /bin/sh", got, ok)
	}
	if r.read > maxShebang {
		t.Errorf("read %d bytes, want at most %d", r.read, maxShebang)
	}
}

// scripts writes the files the interpreter tests share into a new
// directory: an executable interpreter, one without execute permission, and
// scripts using those, a missing one, and a relative one.
func scripts(t *testing.T) (dir string, file func(string) string) {
	t.Helper()
	dir = t.TempDir()
	file = func(name string) string { return filepath.Join(dir, name) }
	for _, f := range []struct {
		name, text string
		mode       os.FileMode
	}{
		{"interp", "#!/bin/sh\n", 0o755},
		{"interp-noexec", "#!/bin/sh\n", 0o644},
		{"good.sh", "#!" + file("interp") + "\n", 0o755},
		{"missing.sh", "#!" + file("nope") + " -x\n", 0o755},
		{"noexec-interp.sh", "#!" + file("interp-noexec") + "\n", 0o755},
		{"dir-interp.sh", "#!" + dir + "\n", 0o755},
		{"relative.sh", "#!./interp\n", 0o755},
		{"not-executable.sh", "#!" + file("interp-noexec") + "\n", 0o644},
		{"binary", "\x7fELF", 0o755},
	} {
		if err := os.WriteFile(file(f.name), []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir, file
}

// badInterpreter is err as a badInterpreterError, or a zero one.
func badInterpreter(err error) (bad badInterpreterError, ok bool) {
	var b *badInterpreterError
	if !errors.As(err, &b) {
		return bad, false
	}
	return *b, true
}

func TestCheckInterpreter(t *testing.T) {
	dir, file := scripts(t)
	for _, tc := range []struct {
		script, interp string
		errno          syscall.Errno // 0: no error
	}{
		{"good.sh", "", 0},
		{"binary", "", 0},
		{"nope.sh", "", 0}, // the program itself is resolve's matter
		{"missing.sh", file("nope"), syscall.ENOENT},
		{"noexec-interp.sh", file("interp-noexec"), syscall.EACCES},
		{"dir-interp.sh", dir, syscall.EACCES},
	} {
		err := CheckInterpreter(file(tc.script))
		b, bad := badInterpreter(err)
		switch {
		case tc.errno == 0 && err != nil:
			t.Errorf("%s: %v", tc.script, err)
		case tc.errno != 0 && (!bad || b.Interpreter != tc.interp || !errors.Is(b.Err, tc.errno)):
			t.Errorf("%s: %v; want bad interpreter %s: %v", tc.script, err, tc.interp, tc.errno)
		}
		if bad {
			if code, permanent := StartErrorCode(err); code != 126 || !permanent {
				t.Errorf("%s: code %d, %v; want 126, permanent", tc.script, code, permanent)
			}
			if want := "bad interpreter " + tc.interp + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s: %q does not start with %q", tc.script, err, want)
			}
		}
	}
}

func TestExplainStart(t *testing.T) {
	dir, file := scripts(t)
	for _, tc := range []struct {
		script string
		dir    string
		errno  syscall.Errno // what execve said
		interp string        // "": err comes back unchanged
		reason error
	}{
		{"missing.sh", "/", syscall.ENOENT, file("nope"), syscall.ENOENT},
		{"noexec-interp.sh", "/", syscall.EACCES, file("interp-noexec"), syscall.EACCES},
		// The interpreter is there: something it needs is not.
		{"good.sh", "/", syscall.ENOENT, file("interp"), errNeedsMissing},
		// A relative interpreter is found from the worker's directory.
		{"relative.sh", "/", syscall.ENOENT, "./interp", syscall.ENOENT},
		{"relative.sh", dir, syscall.ENOENT, "./interp", errNeedsMissing},
		// The script itself cannot be executed.
		{"not-executable.sh", "/", syscall.EACCES, "", nil},
		// No script, no program, another error.
		{"binary", "/", syscall.ENOENT, "", nil},
		{"nope.sh", "/", syscall.ENOENT, "", nil},
		{"missing.sh", "/", syscall.ENOEXEC, "", nil},
		{"good.sh", "/", syscall.EACCES, "", nil},
	} {
		err := explainStart(file(tc.script), tc.dir, tc.errno)
		b, bad := badInterpreter(err)
		if tc.interp == "" {
			if err != tc.errno {
				t.Errorf("%s in %s, %v: %v; want it unchanged", tc.script, tc.dir, tc.errno, err)
			}
			continue
		}
		if !bad || b.Interpreter != tc.interp || b.Err != tc.reason {
			t.Errorf("%s in %s, %v: %v; want bad interpreter %s: %v", tc.script, tc.dir, tc.errno, err, tc.interp, tc.reason)
		}
	}
}
