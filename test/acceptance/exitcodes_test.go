package acceptance

// docs/acceptance.md "PID 1 and exit codes" (A1-A7), herd as PID 1 of a new
// PID namespace.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// herd passes a worker's exit code through, for every code 0..255.
//
// Catalogue: A1.
func TestExitCodePassesThrough(t *testing.T) {
	t.Parallel()
	for code := 0; code <= 255; code++ {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			r, got := runHerd(t, spec{
				env:  oneWorkerNever,
				args: cmdArgs("sh", "-c", fmt.Sprintf("exit %d", code)),
			})
			if got != code {
				t.Fatalf("herd -- sh -c 'exit %d': exit code %d, want %d", code, got, code)
			}
			if l := r.waitLog("worker exited"); l.str("code") != strconv.Itoa(code) || l.str("status") != fmt.Sprintf("exit %d", code) {
				t.Errorf("worker exited: code=%s status=%q, want code=%d status=%q", l.str("code"), l.str("status"), code, fmt.Sprintf("exit %d", code))
			}
		})
	}
}

// With HERD_RESTART=never herd is a drop-in for tini:
// HERD_RESTART=never herd -- sh -c 'exit 7' exits 7, with the default
// worker count.
//
// Catalogue: A1.
func TestDropInForTini(t *testing.T) {
	t.Parallel()
	_, got := runHerd(t, spec{
		env:  []string{"HERD_RESTART=never"},
		args: cmdArgs("sh", "-c", "exit 7"),
	})
	if got != 7 {
		t.Fatalf("HERD_RESTART=never herd -- sh -c 'exit 7': exit code %d, want 7", got)
	}
}

// A worker killed by signal N makes herd exit 128+N. The worker is a
// program that kills itself, not a shell builtin.
//
// Catalogue: A2.
func TestWorkerKilledBySignalExits128PlusN(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGKILL, syscall.SIGUSR1} {
		t.Run(sigName(sig), func(t *testing.T) {
			t.Parallel()
			r, got := runHerd(t, spec{
				env:  oneWorkerNever,
				args: cmdArgs(helperArgv("selfsig", strconv.Itoa(int(sig)))...),
			})
			want := 128 + int(sig)
			if got != want {
				t.Fatalf("worker killed by %v: herd exit code %d, want %d", sig, got, want)
			}
			l := r.waitLog("worker exited")
			wantStatus := "signal " + strings.TrimPrefix(sigName(sig), "SIG")
			if l.str("code") != strconv.Itoa(want) || !strings.HasPrefix(l.str("status"), wantStatus) {
				t.Errorf("worker exited: code=%s status=%q, want code=%d status=%q", l.str("code"), l.str("status"), want, wantStatus)
			}
		})
	}
}

// HERD_EXIT_REMAP rewrites herd's final code; without it codes pass through.
//
// Catalogue: A3.
func TestExitRemapRewritesCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		remap  string
		worker []string
		want   int
	}{
		{"TERM without remap", "", helperArgv("selfsig", "TERM"), 143},
		{"TERM remapped 143=0", "143=0", helperArgv("selfsig", "TERM"), 0},
		{"KILL remapped 143=0,137=1", "143=0,137=1", helperArgv("selfsig", "KILL"), 1},
		{"unmatched code passes", "143=0", []string{"sh", "-c", "exit 7"}, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := append([]string(nil), oneWorkerNever...)
			if c.remap != "" {
				env = append(env, "HERD_EXIT_REMAP="+c.remap)
			}
			_, got := runHerd(t, spec{env: env, args: cmdArgs(c.worker...)})
			if got != c.want {
				t.Fatalf("HERD_EXIT_REMAP=%q, worker %v: exit code %d, want %d", c.remap, c.worker, got, c.want)
			}
		})
	}
}

// A program that cannot start: 127 (not found) / 126 (not executable),
// one clear line on stderr, never retried (default restart policy). A
// script whose #! interpreter is missing or not executable exists but
// cannot be executed: 126, and the line names the interpreter.
//
// Catalogue: A4.
func TestProgramThatCannotStartExits127Or126(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notExec := write("not-executable", "#!/bin/sh\nexit 0\n", 0o644)
	interpNotExec := write("interp-not-executable", "#!/bin/sh\nexit 0\n", 0o644)
	missingInterp := write("missing-interpreter.sh", "#!/nonexistent/interp\nexit 0\n", 0o755)
	badInterp := write("bad-interpreter.sh", "#!"+interpNotExec+" -e\nexit 0\n", 0o755)
	cases := []struct {
		name, prog string
		want       int
		interp     string // the interpreter the line must name
	}{
		{"absolute path missing", "/nonexistent", 127, ""},
		{"name not on PATH", "herd-no-such-program", 127, ""},
		{"script missing", filepath.Join(dir, "missing.sh"), 127, ""},
		{"not executable", notExec, 126, ""},
		{"interpreter missing", missingInterp, 126, "/nonexistent/interp"},
		{"interpreter not executable", badInterp, 126, interpNotExec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, got := runHerd(t, spec{rawEnv: true, args: cmdArgs(c.prog)})
			if got != c.want {
				t.Errorf("herd -- %s: exit code %d, want %d", c.prog, got, c.want)
			}
			lines := nonEmptyLines(r.stderr.text())
			if len(lines) != 1 {
				t.Errorf("herd -- %s: %d stderr lines, want exactly 1:\n%s", c.prog, len(lines), strings.Join(lines, "\n"))
			}
			if len(lines) > 0 && !strings.Contains(lines[0], filepath.Base(c.prog)) {
				t.Errorf("stderr line %q does not name the program %q", lines[0], c.prog)
			}
			if len(lines) > 0 && c.interp != "" && !strings.Contains(lines[0], "bad interpreter "+c.interp+":") {
				t.Errorf("stderr line %q does not name the interpreter %q", lines[0], c.interp)
			}
			if len(lines) > 0 && c.interp == "" && strings.Contains(lines[0], "interpreter") {
				t.Errorf("stderr line %q blames an interpreter", lines[0])
			}
		})
	}
}

// The interpreter of a script goes away, or loses its execute
// permission, while herd runs: the worker's restart fails where execve
// fails, in herd for a worker started directly, in the launcher for one
// with Node's channel, and herd exits 126 naming the interpreter.
//
// Catalogue: A4.
func TestInterpreterLostAtRestartExits126(t *testing.T) {
	t.Parallel()
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []struct{ name, cmd, reason string }{
		{"removed", "rm -f", "no such file or directory"},
		{"made not executable", "chmod a-x", "permission denied"},
	} {
		for _, channel := range []string{"false", "true"} {
			t.Run(how.name+", channel "+channel, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				// A copy of the shell, so that changing it touches nothing else.
				interp := filepath.Join(dir, "interp")
				if err := os.WriteFile(interp, sh, 0o755); err != nil {
					t.Fatal(err)
				}
				script := filepath.Join(dir, "script.sh")
				text := fmt.Sprintf("#!%s\n%s %s\nexit 3\n", interp, how.cmd, interp)
				if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
					t.Fatal(err)
				}
				r, got := runHerd(t, spec{
					env:  []string{"HERD_WORKERS=1", "HERD_BACKOFF_MIN=0", "HERD_NODE_CHANNEL=" + channel},
					args: cmdArgs(script),
				})
				if got != 126 {
					t.Errorf("exit code %d, want 126", got)
				}
				if l := r.waitLog("worker exited"); l.str("code") != "3" {
					t.Errorf("first worker: code %s, want 3 (it ran the script)", l.str("code"))
				}
				l := r.waitLog("cannot start command")
				if want := "bad interpreter " + interp + ": " + how.reason; l.str("err") != want || l.str("code") != "126" {
					t.Errorf("cannot start command: err=%q code=%s, want err=%q code=126", l.str("err"), l.str("code"), want)
				}
				if n := r.stderr.count("worker restart scheduled"); n != 1 {
					t.Errorf("%d restarts scheduled, want 1 (the failed start is not retried)", n)
				}
			})
		}
	}
}

// herd -- /nonexistent exits 127 with exactly one stderr line.
//
// Catalogue: A4.
func TestNonexistentProgramOneLine(t *testing.T) {
	t.Parallel()
	r, got := runHerd(t, spec{rawEnv: true, args: []string{"--", "/nonexistent"}})
	if got != 127 {
		t.Errorf("herd -- /nonexistent: exit code %d, want 127", got)
	}
	if lines := nonEmptyLines(r.stderr.text()); len(lines) != 1 {
		t.Errorf("herd -- /nonexistent: %d stderr lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// The command line.
//
// Catalogue: A5.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	progDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(progDir, "-prog"), []byte("#!/bin/sh\nexit 42\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pathEnv := "PATH=" + progDir + ":" + os.Getenv("PATH")
	cases := []struct {
		name       string
		args       []string
		env        []string
		want       int
		stdoutHas  string // regexp
		stderrHas  string // regexp
		stderrLine bool   // exactly one stderr line
	}{
		{name: "no command", args: nil, want: 2, stderrHas: `(?i)usage`},
		{name: "only --", args: []string{"--"}, want: 2, stderrHas: `(?i)usage`},
		{name: "unknown flag", args: []string{"--no-such-flag", "--", "true"}, want: 2},
		{name: "--help", args: []string{"--help"}, want: 0, stdoutHas: `(?i)usage`},
		{name: "version", args: []string{"version"}, want: 0, stdoutHas: `^herd \S+`},
		{name: "program named -prog after --", args: []string{"--", "-prog"}, env: []string{pathEnv, "HERD_WORKERS=1", "HERD_RESTART=never"}, want: 42},
		{name: "HERD_RESTART invalid", args: cmdArgs("true"), env: []string{"HERD_RESTART=sometimes"}, want: 2, stderrHas: `HERD_RESTART.*sometimes|sometimes.*HERD_RESTART`, stderrLine: true},
		{name: "HERD_SHUTDOWN_TIMEOUT invalid", args: cmdArgs("true"), env: []string{"HERD_SHUTDOWN_TIMEOUT=soon"}, want: 2, stderrHas: `HERD_SHUTDOWN_TIMEOUT`, stderrLine: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, got := runHerd(t, spec{rawEnv: true, env: c.env, args: c.args})
			if got != c.want {
				t.Errorf("herd %q: exit code %d, want %d", c.args, got, c.want)
			}
			if c.stdoutHas != "" && !regexp.MustCompile(c.stdoutHas).MatchString(r.stdout.text()) {
				t.Errorf("herd %q: stdout does not match %s:\n%s", c.args, c.stdoutHas, r.stdout.text())
			}
			if c.stderrHas != "" && !regexp.MustCompile(c.stderrHas).MatchString(r.stderr.text()) {
				t.Errorf("herd %q: stderr does not match %s:\n%s", c.args, c.stderrHas, r.stderr.text())
			}
			if n := len(nonEmptyLines(r.stderr.text())); c.stderrLine && n != 1 {
				t.Errorf("herd %q: %d stderr lines, want 1", c.args, n)
			}
		})
	}
}

// HERD_WORKERS=abc herd -- true exits 2, the error names
// HERD_WORKERS, and no worker starts.
//
// Catalogue: A5.
func TestInvalidWorkersStartsNoWorker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	r, got := runHerd(t, spec{
		rawEnv: true,
		env:    []string{"HERD_WORKERS=abc"},
		args:   cmdArgs("sh", "-c", `touch "$1"`, "sh", marker),
	})
	if got != 2 {
		t.Errorf("HERD_WORKERS=abc: exit code %d, want 2", got)
	}
	errText := r.stderr.text()
	if !strings.Contains(errText, "HERD_WORKERS") || !strings.Contains(errText, "abc") {
		t.Errorf("stderr does not name HERD_WORKERS and the value abc:\n%s", errText)
	}
	if n := len(nonEmptyLines(errText)); n != 1 {
		t.Errorf("%d stderr lines, want 1:\n%s", n, errText)
	}
	if exists(marker) {
		t.Errorf("a worker ran although the configuration was invalid")
	}
}

// Stdin, stdout and stderr reach the worker.
//
// Catalogue: A6.
func TestStdioPassesThrough(t *testing.T) {
	t.Parallel()
	t.Run("echo 'exit 0' | herd -- sh", func(t *testing.T) {
		t.Parallel()
		_, got := runHerd(t, spec{stdin: strings.NewReader("exit 0\n"), args: cmdArgs("sh")})
		if got != 0 {
			t.Fatalf("exit code %d, want 0", got)
		}
	})
	t.Run("stdin decides the code", func(t *testing.T) {
		t.Parallel()
		_, got := runHerd(t, spec{env: oneWorkerNever, stdin: strings.NewReader("exit 5\n"), args: cmdArgs("sh")})
		if got != 5 {
			t.Fatalf("echo 'exit 5' | herd -- sh: exit code %d, want 5 (stdin not passed through?)", got)
		}
	})
	t.Run("stdout and stderr", func(t *testing.T) {
		t.Parallel()
		r, got := runHerd(t, spec{env: oneWorkerNever, args: cmdArgs("sh", "-c", "echo to-stdout; echo to-stderr >&2")})
		if got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		if !strings.Contains(r.stdout.text(), "to-stdout\n") {
			t.Errorf("worker stdout did not reach herd's stdout: %q", r.stdout.text())
		}
		if !strings.Contains(r.stderr.text(), "to-stderr\n") {
			t.Errorf("worker stderr did not reach herd's stderr: %q", r.stderr.text())
		}
		if strings.Contains(r.stdout.text(), "to-stderr") || strings.Contains(r.stderr.text(), "to-stdout") {
			t.Errorf("stdout and stderr are mixed up")
		}
	})
}

// SIGTERM to herd as PID 1 (sent from the parent namespace) reaches the
// worker; a worker with the default TERM action dies, herd exits 143.
//
// Catalogue: A7.
func TestSIGTERMToPID1ReachesWorker(t *testing.T) {
	t.Parallel()
	r := start(t, spec{env: []string{"HERD_WORKERS=1"}, args: cmdArgs("sleep", "100")})
	r.waitLog("worker started")
	r.waitProc(r.root, "sleep", 20*time.Second)
	r.signal(syscall.SIGTERM)
	if got := r.exitCode(30 * time.Second); got != 143 {
		t.Fatalf("SIGTERM to herd (PID 1): exit code %d, want 143", got)
	}
	if l := r.waitLog("worker exited"); l.str("status") != "signal TERM" || l.str("code") != "143" {
		t.Errorf("worker exited: status=%q code=%s, want \"signal TERM\" 143", l.str("status"), l.str("code"))
	}
}
