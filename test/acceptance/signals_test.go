package acceptance

// docs/acceptance.md "Signals" (S1-S7), herd as PID 1 of a new PID namespace
// receiving signals from the parent namespace.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TERM, USR1 and USR2 sent to herd reach workers with default handlers:
// the worker dies by that signal and herd exits 128+N.
//
// Catalogue: S1.
func TestSignalsReachWorkers(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sigName(sig), func(t *testing.T) {
			t.Parallel()
			r := start(t, spec{env: oneWorkerNever, args: cmdArgs("sleep", "100")})
			r.waitLog("worker started")
			r.waitProc(r.root, "sleep", 20*time.Second)
			r.signal(sig)
			want := 128 + int(sig)
			if got := r.exitCode(30 * time.Second); got != want {
				t.Errorf("%v to herd: exit code %d, want %d", sig, got, want)
			}
			wantStatus := "signal " + strings.TrimPrefix(sigName(sig), "SIG")
			if l := r.waitLog("worker exited"); l.str("status") != wantStatus {
				t.Errorf("worker exited with status %q, want %q", l.str("status"), wantStatus)
			}
		})
	}
}

// Every catchable signal except KILL, STOP, CHLD, URG and PIPE arrives at
// the worker, one at a time and in order; HUP, TTIN and TTOU are herd's own
// commands (rolling restart, one worker more, one less). PROF and 34 are
// left out: Go's runtime keeps them and delivers them to no Go program, herd
// or the sigecho helper (README, Limitations); 32 and 33 belong to glibc.
//
// Catalogue: S2.
func TestEverySignalForwardedInOrder(t *testing.T) {
	t.Parallel()
	t.Run("all but INT, TERM last", func(t *testing.T) {
		t.Parallel()
		r := start(t, spec{env: []string{"HERD_WORKERS=1"}, args: cmdArgs(helperArgv("sigecho", "-exit", "TERM")...)})
		r.waitStdout("ready")
		// SIGPIPE first: herd drops it, so it must never show up below.
		r.signal(syscall.SIGPIPE)
		var want []string
		from := 0
		send := func(sig syscall.Signal) bool {
			line := "got " + sigName(sig)
			r.signal(sig)
			_, i, err := r.stdout.find(from, 10*time.Second, func(l logLine) bool { return l.raw == line })
			if err != nil {
				t.Errorf("%v sent to herd did not reach the worker: %v", sig, err)
				return !r.exited()
			}
			want = append(want, line)
			from = i + 1
			return true
		}
		for _, sig := range catchable() {
			switch sig {
			case syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE:
				continue
			case syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU:
				continue // herd's own: rolling restart, one worker more, one less
			}
			if !send(sig) {
				t.Fatalf("herd exited after %v", sig)
			}
		}
		send(syscall.SIGTERM)
		if got := r.exitCode(30 * time.Second); got != 0 {
			t.Errorf("exit code %d, want 0 (the worker exits 0 on TERM)", got)
		}
		var got []string
		for _, l := range r.stdout.snapshot() {
			if strings.HasPrefix(l.raw, "got ") {
				got = append(got, l.raw)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("worker received\n%v\nwant exactly, in order,\n%v", got, want)
		}
	})
	// INT stops herd like TERM; workers get HERD_WORKER_STOP_SIGNAL, TERM
	// unless set.
	for _, tc := range []struct{ stop, want string }{{"", "TERM"}, {"INT", "INT"}, {"QUIT", "QUIT"}} {
		t.Run("INT stops with "+tc.want, func(t *testing.T) {
			t.Parallel()
			env := []string{"HERD_WORKERS=1"}
			if tc.stop != "" {
				env = append(env, "HERD_WORKER_STOP_SIGNAL="+tc.stop)
			}
			r := start(t, spec{env: env, args: cmdArgs(helperArgv("sigecho", "-exit", tc.want)...)})
			r.waitStdout("ready")
			r.signal(syscall.SIGINT)
			r.waitStdout("got SIG" + tc.want)
			if got := r.exitCode(30 * time.Second); got != 0 {
				t.Errorf("exit code %d, want 0", got)
			}
		})
	}
}

// A worker that is a shell with children: the signal reaches all of
// them (it goes to the worker's process group).
//
// Catalogue: S3.
func TestSignalsReachWorkerProcessGroup(t *testing.T) {
	t.Parallel()
	t.Run("trapping shell and children", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		script := `
trap 'wait; touch "$1/P"; exit 0' USR1
for c in C1 C2; do
  sh -c 'trap "touch \"\$1/\$2\"; exit 0" USR1; touch "$1/ready-$2"; while :; do sleep 0.1; done' sh "$1" "$c" &
done
touch "$1/ready-P"
while :; do sleep 0.1; done
`
		r := start(t, spec{env: oneWorkerNever, args: cmdArgs("sh", "-c", script, "sh", dir)})
		for _, m := range []string{"ready-P", "ready-C1", "ready-C2"} {
			waitFile(t, filepath.Join(dir, m), 20*time.Second)
		}
		r.signal(syscall.SIGUSR1)
		if got := r.exitCode(30 * time.Second); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		for _, m := range []string{"P", "C1", "C2"} {
			if !exists(filepath.Join(dir, m)) {
				t.Errorf("process %s did not get SIGUSR1", m)
			}
		}
	})
	t.Run("sh -c 'sleep 100 & sleep 100 & wait'", func(t *testing.T) {
		t.Parallel()
		// A long backoff keeps herd running (and the slot empty) after the
		// worker died, so the sleeps can be seen to be gone.
		r := start(t, spec{
			env:  []string{"HERD_WORKERS=1", "HERD_BACKOFF_MIN=60s", "HERD_BACKOFF_MAX=60s"},
			args: cmdArgs("sh", "-c", "sleep 100 & sleep 100 & wait"),
		})
		r.waitLog("worker started")
		var sleeps []int
		deadline := time.Now().Add(20 * time.Second)
		for len(sleeps) < 2 {
			sleeps = sleeps[:0]
			for _, p := range descendants(r.root) {
				if p.comm == "sleep" {
					sleeps = append(sleeps, p.pid)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the worker's two sleeps did not start")
			}
			time.Sleep(10 * time.Millisecond)
		}
		r.signal(syscall.SIGUSR1)
		if l := r.waitLog("worker exited"); l.str("status") != "signal USR1" {
			t.Errorf("worker shell: status %q, want \"signal USR1\"", l.str("status"))
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			alive := 0
			for _, pid := range sleeps {
				if p, ok := readProc(pid); ok && p.state != 'Z' && p.comm == "sleep" {
					alive++
				}
			}
			if alive == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of the worker's children survived SIGUSR1 (not sent to the group?)", alive)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if r.exited() {
			t.Errorf("herd exited early")
		}
	})
}

// Every worker starts with no signal blocked and every signal at its default
// action, whatever herd inherited, as the children of Node's cluster primary
// and systemd's services do. herd itself keeps an inherited SIG_IGN where
// Go's runtime keeps it: HUP and INT, and 32 and 34, which belong to C
// libraries and get no handler. A worker starts directly unless herd has an
// ignored signal (or the worker gets sockets or Node's channel): the direct
// start gets the empty mask, the launcher resets both.
//
// Catalogue: S4.
func TestWorkersStartWithDefaultDispositions(t *testing.T) {
	t.Parallel()
	bits := func(sigs ...string) uint64 {
		var m uint64
		for _, s := range sigs {
			m |= 1 << (uint(sigByName(s)) - 1)
		}
		return m
	}
	// TERM, INT, HUP, ILL and CHLD are signals Go's runtime unblocks on its
	// own threads, USR2, TTIN and WINCH ones it leaves blocked.
	block := []string{"USR2", "TERM", "INT", "HUP", "ILL", "CHLD", "TTIN", "WINCH"}
	ignore := []string{"HUP", "INT", "QUIT", "ILL", "USR1", "TERM", "TTIN", "32", "34"}
	noChannel := append([]string{"HERD_NODE_CHANNEL=false"}, oneWorkerNever...)
	cases := []struct {
		name          string
		block, ignore []string
		env           []string
		launcher      bool   // herd reports starting workers through the launcher
		herdIgn       uint64 // herd's own SigIgn
	}{
		{"clean", nil, nil, noChannel, false, 0},
		{"blocked, started directly", block, nil, noChannel, false, 0},
		{"blocked and ignored, no channel", block, ignore, noChannel, true, bits("HUP", "INT", "32", "34")},
		{"blocked and ignored, channel", block, ignore, oneWorkerNever, true, bits("HUP", "INT", "32", "34")},
		{"blocked, channel", block, nil, oneWorkerNever, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := start(t, spec{block: c.block, ignore: c.ignore, env: c.env, args: cmdArgs("sleep", "100")})
			r.waitLog("worker started")
			worker := r.waitProc(r.root, "sleep", 20*time.Second)
			if ign := sigMask(t, worker, "SigIgn"); ign != 0 {
				t.Errorf("worker SigIgn %016x, want 0", ign)
			}
			if blk := sigMask(t, worker, "SigBlk"); blk != 0 {
				t.Errorf("worker SigBlk %016x, want 0", blk)
			}
			if ign := sigMask(t, r.herdPID(), "SigIgn"); ign != c.herdIgn {
				t.Errorf("herd SigIgn %016x, want %016x", ign, c.herdIgn)
			}
			// No socket, so no LISTEN_PID, whichever way the worker started.
			if env, err := os.ReadFile("/proc/" + strconv.Itoa(worker) + "/environ"); err != nil {
				t.Error(err)
			} else if strings.Contains("\x00"+string(env), "\x00LISTEN_PID=") {
				t.Errorf("worker has LISTEN_PID without LISTEN_FDS")
			}
			if got := len(r.logs(launcherReset)) > 0; got != c.launcher {
				t.Errorf("herd logged %q: %v, want %v", launcherReset, got, c.launcher)
			}
			r.signal(syscall.SIGTERM)
			if got := r.exitCode(30 * time.Second); got != 143 {
				t.Errorf("exit code %d after SIGTERM, want 143", got)
			}
		})
	}
}

// launcherReset is herd's debug record when it starts every worker through
// the launcher because it inherited ignored signals.
const launcherReset = "inherited ignored signals; workers start through the launcher, which restores their default actions"

// Signals that arrive from the instant herd starts (before the first
// worker) neither crash herd nor change how it ends.
//
// Catalogue: S5.
func TestEarlySignalsDoNotCrashHerd(t *testing.T) {
	t.Parallel()
	for run := 0; run < 5; run++ {
		t.Run(strconv.Itoa(run), func(t *testing.T) {
			t.Parallel()
			// The worker catches everything and exits 0 after 500 ms; should
			// a signal hit it between fork and its handlers, on-failure
			// restarts it at once.
			r := start(t, spec{
				env:  []string{"HERD_WORKERS=1", "HERD_BACKOFF_MIN=0"},
				args: cmdArgs(helperArgv("sigecho", "-quiet", "-after", "500ms", "-code", "0")...),
			})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				sigs := []syscall.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT}
				end := time.Now().Add(200 * time.Millisecond)
				for i := 0; time.Now().Before(end); i++ {
					if unix.Kill(r.root, sigs[i%len(sigs)]) != nil {
						return
					}
					time.Sleep(200 * time.Microsecond)
				}
			}()
			wg.Wait()
			if got := r.exitCode(60 * time.Second); got != 0 {
				t.Errorf("exit code %d, want 0", got)
			}
			errText := r.stderr.text()
			for _, bad := range []string{"panic", "fatal error", "goroutine "} {
				if strings.Contains(errText, bad) {
					t.Errorf("herd crashed (%q in stderr)", bad)
				}
			}
			if n := r.stderr.count("worker started"); n == 0 {
				t.Errorf("no worker started")
			}
		})
	}
}

// herd's own cwd is /; the worker starts in the directory herd was started in.
//
// Catalogue: S6.
func TestWorkerStartsInInvocationDirectory(t *testing.T) {
	t.Parallel()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, spec{dir: dir, env: oneWorkerNever, args: cmdArgs("sleep", "100")})
	r.waitLog("worker started")
	worker := r.waitProc(r.root, "sleep", 20*time.Second)
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(r.herdPID()) + "/cwd"); err != nil || cwd != "/" {
		t.Errorf("herd's cwd %q (%v), want /", cwd, err)
	}
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(worker) + "/cwd"); err != nil || cwd != dir {
		t.Errorf("worker's cwd %q (%v), want %q", cwd, err, dir)
	}
	r.signal(syscall.SIGTERM)
	r.exitCode(30 * time.Second)
}

// Workers see only fds 0, 1 and 2, whatever herd inherited.
//
// Catalogue: S7.
func TestWorkersSeeOnlyTheirFds(t *testing.T) {
	t.Parallel()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// Not defer: the parallel subtests run after this function returned.
	t.Cleanup(func() { devnull.Close(); pr.Close(); pw.Close() })
	extra := []*os.File{devnull, pw}
	t.Run("control: the helper sees inherited fds", func(t *testing.T) {
		t.Parallel()
		r, code := runHerd(t, spec{prog: "/usr/bin/env", args: []string{helperVar + "=fds", testBin}, extra: extra})
		if code != 0 {
			t.Fatalf("fds helper exit %d", code)
		}
		if !strings.HasPrefix(r.stdout.text(), "fds: 0 1 2 3 4\n") {
			t.Errorf("control run printed %q, want fds: 0 1 2 3 4", r.stdout.text())
		}
	})
	// The fds meant for a worker: 0-2, and Node's cluster channel (fd 3,
	// NODE_CHANNEL_FD) unless HERD_NODE_CHANNEL=false.
	for _, tc := range []struct {
		channel, want string
	}{{"true", "fds: 0 1 2 3\n"}, {"false", "fds: 0 1 2\n"}} {
		t.Run("worker of herd, channel "+tc.channel, func(t *testing.T) {
			t.Parallel()
			env := append([]string{"HERD_NODE_CHANNEL=" + tc.channel}, oneWorkerNever...)
			r, code := runHerd(t, spec{env: env, args: cmdArgs(helperArgv("fds")...), extra: extra})
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			out := r.stdout.text()
			if !strings.HasPrefix(out, tc.want) {
				t.Errorf("worker's fds: %q, want %q", out, tc.want)
			}
			if tc.channel == "true" && !strings.Contains(out, "fd 3 -> socket:") {
				t.Errorf("fd 3 is not the channel socket: %q", out)
			}
		})
	}
}
