package acceptance

// Configuration as herd's real binary reads it: every refused setting stops
// herd, and herd config, with exit code 2 and one line; settings that are
// accepted but cannot work as written get a warning at start.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exitWorker is a worker that ends at once with success: with one worker
// and HERD_RESTART=never herd then exits 0.
var exitWorker = cmdArgs("sh", "-c", "exit 0")

// refusedAtStartAndByConfig runs herd with env, once with a worker and once
// as herd config, and wants exit code 2 and one line on stderr that names
// every string of want, and no worker run.
func refusedAtStartAndByConfig(t *testing.T, env []string, want ...string) {
	t.Helper()
	for _, run := range []struct {
		name string
		args []string
	}{{"the start", exitWorker}, {"herd config", []string{"config"}}} {
		r, code := runHerd(t, spec{mode: asDirect, env: env, args: run.args})
		lines := nonEmptyLines(r.stderr.text())
		if code != 2 {
			t.Errorf("%s with %q: exit code %d, want 2", run.name, env, code)
		}
		if len(lines) != 1 {
			t.Errorf("%s with %q: %d lines on stderr, want one:\n%s", run.name, env, len(lines), strings.Join(lines, "\n"))
			continue
		}
		for _, w := range want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s with %q: %q does not mention %q", run.name, env, lines[0], w)
			}
		}
		if r.stderr.count("worker started") != 0 {
			t.Errorf("%s with %q: a worker ran", run.name, env)
		}
	}
}

// A configuration file that never ends (/dev/zero) is refused after 1 MiB,
// whether HERD_CONFIG or --config names it.
func TestEndlessConfigFileRefusedAfter1MiB(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err != nil {
		missing(t, "/dev/zero: %v", err)
	}
	refusedAtStartAndByConfig(t, []string{"HERD_CONFIG=/dev/zero", "HERD_WORKERS=1"},
		`invalid HERD_CONFIG="/dev/zero"`, "larger than 1 MiB")

	r, code := runHerd(t, spec{mode: asDirect, env: []string{"HERD_WORKERS=1"}, args: append([]string{"--config", "/dev/zero"}, exitWorker...)})
	lines := nonEmptyLines(r.stderr.text())
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], `invalid --config="/dev/zero"`) || !strings.Contains(lines[0], "1 MiB") {
		t.Errorf("--config /dev/zero: exit code %d, stderr:\n%s", code, strings.Join(lines, "\n"))
	}
}

// A relative HERD_TERMINATION_LOG is written in the directory herd was
// started in, not in / where herd moves.
func TestRelativeTerminationLogInStartDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := "herd-term-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".log"
	t.Cleanup(func() { os.Remove(filepath.Join("/", name)) }) // left by a herd that writes relative to /
	_, code := runHerd(t, spec{mode: asDirect, dir: dir,
		env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never", "HERD_TERMINATION_LOG=" + name},
		args: exitWorker})
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("no termination log in the start directory: %v", err)
	}
	if !strings.HasPrefix(string(b), "herd exited 0") {
		t.Errorf("termination log %q, want the summary", b)
	}
	if exists(filepath.Join("/", name)) {
		t.Errorf("the termination log was written in / too")
	}
}

// HERD_TERMINATION_LOG=OFF, in capitals, disables the termination log: no
// file called OFF, in the start directory or in /.
func TestTerminationLogOffInCapitals(t *testing.T) {
	t.Parallel()
	offDir := t.TempDir()
	rootOff := exists("/OFF")
	_, code := runHerd(t, spec{mode: asDirect, dir: offDir,
		env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never", "HERD_TERMINATION_LOG=OFF"},
		args: exitWorker})
	if code != 0 {
		t.Errorf("HERD_TERMINATION_LOG=OFF: exit code %d, want 0", code)
	}
	if exists(filepath.Join(offDir, "OFF")) {
		t.Errorf("HERD_TERMINATION_LOG=OFF wrote a file called OFF")
	}
	if !rootOff && exists("/OFF") {
		os.Remove("/OFF")
		t.Errorf("HERD_TERMINATION_LOG=OFF wrote /OFF")
	}
}

// A HERD_HEALTH_ADDR herd cannot listen on fails herd config as it fails
// the start: exit code 2, one line; off in any case runs without probes.
func TestUnusableHealthAddrRefused(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"nonsense", ":99999", "1.2.3.4", "[::1"} {
		t.Run("refused/"+bad, func(t *testing.T) {
			refusedAtStartAndByConfig(t, []string{"HERD_WORKERS=1", "HERD_HEALTH_ADDR=" + bad},
				`invalid HERD_HEALTH_ADDR="`+bad+`"`, "host:port", "0 to 65535", "or off")
		})
	}
	for _, off := range []string{"OFF", "Off"} {
		t.Run("off/"+off, func(t *testing.T) {
			r, code := runHerd(t, spec{mode: asDirect,
				env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never", "HERD_HEALTH_ADDR=" + off},
				args: exitWorker})
			if code != 0 {
				t.Errorf("HERD_HEALTH_ADDR=%s: exit code %d, want 0", off, code)
			}
			if n := len(r.logs("serving probes")); n != 0 {
				t.Errorf("HERD_HEALTH_ADDR=%s: probes served", off)
			}
		})
	}
}

// HERD_READY_MIN above the workers that can ever run is refused; above what
// auto gives here, without a maximum, it is a warning and herd runs.
func TestReadyMinAboveWorkersRefusedOrWarned(t *testing.T) {
	t.Parallel()
	refusedAtStartAndByConfig(t, []string{"HERD_WORKERS=2", "HERD_READY_MIN=3"},
		`invalid HERD_READY_MIN="3": must not be more than HERD_WORKERS="2"`, "readiness could never pass")
	refusedAtStartAndByConfig(t, []string{"HERD_WORKERS=auto", "HERD_MAX_WORKERS=1", "HERD_READY_MIN=2"},
		`invalid HERD_READY_MIN="2": must not be more than HERD_MAX_WORKERS="1"`)

	// No machine here has 10000 CPUs: auto gives fewer workers.
	r, code := runHerd(t, spec{mode: asDirect,
		env:  []string{"HERD_WORKERS=auto", "HERD_RESTART=never", "HERD_READY_MIN=10000"},
		args: exitWorker})
	if code != 0 {
		t.Errorf("exit code %d, want 0 (a warning, not an error)", code)
	}
	var warned bool
	for _, l := range r.stderr.snapshot() {
		if l.str("level") == "WARN" && strings.HasPrefix(l.msg(), "HERD_READY_MIN=10000 is above the ") &&
			strings.Contains(l.msg(), "readiness cannot pass until that many workers run") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning that HERD_READY_MIN=10000 is above the workers auto gives")
	}
}

// A stop signal that does not end a process by default is accepted with a
// warning that says what follows; TERM gets none.
func TestStopSignalThatEndsNothingWarns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sig, fault string }{
		{"WINCH", "is ignored by default"},
		{"TSTP", "suspends a process by default"},
		{"TERM", ""},
	} {
		t.Run(tc.sig, func(t *testing.T) {
			r, code := runHerd(t, spec{mode: asDirect,
				env:  []string{"HERD_WORKERS=1", "HERD_RESTART=never", "HERD_SHUTDOWN_TIMEOUT=7s", "HERD_WORKER_STOP_SIGNAL=" + tc.sig},
				args: exitWorker})
			if code != 0 {
				t.Errorf("exit code %d, want 0: herd runs", code)
			}
			var warnings []string
			for _, l := range r.stderr.snapshot() {
				if l.str("level") == "WARN" && strings.HasPrefix(l.msg(), "HERD_WORKER_STOP_SIGNAL=") {
					warnings = append(warnings, l.msg())
				}
			}
			if tc.fault == "" {
				if len(warnings) != 0 {
					t.Errorf("warned about %s: %q", tc.sig, warnings)
				}
				return
			}
			want := "HERD_WORKER_STOP_SIGNAL=" + tc.sig + " " + tc.fault +
				": workers will not stop until SIGKILL at HERD_SHUTDOWN_TIMEOUT (7s) unless they handle it"
			if len(warnings) != 1 || warnings[0] != want {
				t.Errorf("warnings %q, want %q", warnings, want)
			}
		})
	}
}

// Error messages: numbers too large say so with the limit, a file that is
// not YAML text or not a mapping is explained in YAML's terms, and a long
// value is cut.
func TestConfigErrorMessagesExplain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	binary := file("binary.yaml", "workers: 2\n\x7fELF\x02\x01\x01\x00\xff\xfe")
	list := file("list.yaml", "- workers: 2\n")
	long := strings.Repeat("7", 3000)
	for _, tc := range []struct {
		name  string
		env   []string
		want  []string
		avoid []string
	}{
		{"too large", []string{"HERD_SHUTDOWN_TIMEOUT=99999999999"},
			[]string{`invalid HERD_SHUTDOWN_TIMEOUT="99999999999": too large: at most 9223372036 seconds`}, []string{"negative"}},
		{"negative", []string{"HERD_BACKLOG=-1"},
			[]string{`invalid HERD_BACKLOG="-1": must not be negative`}, nil},
		{"binary file", []string{"HERD_CONFIG=" + binary},
			[]string{binary, "line 2", "byte offset 11", "YAML file of key: value lines"}, []string{"JSON", "Go value"}},
		{"list file", []string{"HERD_CONFIG=" + list},
			[]string{list, "must be a YAML mapping of settings (key: value)"}, []string{"JSON", "Go value"}},
		{"long value", []string{"HERD_WORKERS=" + long},
			[]string{`invalid HERD_WORKERS="` + long[:64] + `…" (3000 bytes): `}, []string{long[:65]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusedAtStartAndByConfig(t, append([]string{"HERD_WORKERS=1"}, tc.env...), tc.want...)
			r, _ := runHerd(t, spec{mode: asDirect, env: append([]string{"HERD_WORKERS=1"}, tc.env...), args: []string{"config"}})
			for _, a := range tc.avoid {
				if strings.Contains(r.stderr.text(), a) {
					t.Errorf("stderr mentions %q: %s", a, r.stderr.text())
				}
			}
		})
	}
}
