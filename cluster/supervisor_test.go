package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/notify"
	"github.com/herd-sh/herd/reaper"
)

// logBuf collects a supervisor's log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *logBuf) count(s string) int          { return strings.Count(l.String(), s) }

// run supervises sh -c script with cfg's policy fields and returns the
// result and the log. The script finds a fresh directory in $DIR. send, if
// set, runs beside the supervisor with its signal channel.
func run(t *testing.T, cfg Config, script string, send func(sigs chan<- os.Signal, logs *logBuf, dir string)) (Result, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := reaper.New(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	if cfg.Path == "" {
		cfg.Path = "/bin/sh"
		cfg.Args = []string{"sh", "-c", script}
	}
	dir := t.TempDir()
	cfg.Env = append(os.Environ(), "DIR="+dir)
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Restart == "" {
		cfg.Restart = RestartOnFailure
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Minute}
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	sigs := make(chan os.Signal, 8)
	if send != nil {
		go send(sigs, logs, dir)
	}
	done := make(chan Result, 1)
	go func() { done <- New(cfg, r, log).Run(sigs) }()
	select {
	case res := <-done:
		return res, logs
	case <-time.After(60 * time.Second):
		t.Fatalf("supervisor did not return; log:\n%s", logs)
	}
	return Result{}, nil
}

// waitReady waits until the worker script has run "touch $DIR/ready", so
// that its traps are in place before a signal is sent.
func waitReady(dir string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			return
		}
	}
}

// waitLog waits until the log holds n occurrences of s.
func waitLog(logs *logBuf, s string, n int) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if logs.count(s) >= n {
			return
		}
	}
}

// on-failure: a worker that fails twice, then succeeds, runs three times
// and herd ends with 0.
func TestRestartOnFailureUntilSuccess(t *testing.T) {
	res, logs := run(t, Config{}, `n=$(cat "$DIR/n" 2>/dev/null || echo 0); echo $((n+1)) > "$DIR/n"; [ "$n" -ge 2 ]`, nil)
	if res.Code != 0 {
		t.Errorf("code %d, want 0", res.Code)
	}
	if got := logs.count(`msg="worker started"`); got != 3 {
		t.Errorf("%d starts, want 3:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "id=3 index=0") {
		t.Errorf("ids do not increase across restarts:\n%s", logs)
	}
}

func TestRestartNever(t *testing.T) {
	res, logs := run(t, Config{Restart: RestartNever, Workers: 3}, `exit $((HERD_WORKER_INDEX + 4))`, nil)
	if res.Code < 4 || res.Code > 6 {
		t.Errorf("code %d, want the first failure, one of 4..6", res.Code)
	}
	if got := logs.count(`msg="worker started"`); got != 3 {
		t.Errorf("%d starts, want 3", got)
	}
	if strings.Contains(logs.String(), "restart scheduled") {
		t.Errorf("restarted under never:\n%s", logs)
	}
}

// always restarts even clean exits, until a stop signal; herd then ends with
// the code of the stopped worker.
func TestRestartAlwaysUntilStopped(t *testing.T) {
	res, logs := run(t, Config{Restart: RestartAlways, Backoff: Backoff{Max: time.Second, Reset: time.Second}},
		`[ "$HERD_WORKER_ID" -lt 5 ] && exit 0; exec sleep 60`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitLog(logs, "id=5 index=0 pid=", 1)
			sigs <- unix.SIGTERM
		})
	if res.Code != 128+int(unix.SIGTERM) {
		t.Errorf("code %d, want 143", res.Code)
	}
	if got := logs.count(`msg="worker started"`); got != 5 {
		t.Errorf("%d starts, want 5:\n%s", got, logs)
	}
}

// A second stop signal kills at once, and the code says herd had to kill.
func TestSecondSignalKills(t *testing.T) {
	start := time.Now()
	res, logs := run(t, Config{ShutdownTimeout: time.Minute}, `trap "" TERM; touch "$DIR/ready"; while :; do sleep 0.05; done`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitReady(dir)
			sigs <- unix.SIGTERM
			waitLog(logs, `msg=shutdown`, 1)
			sigs <- unix.SIGINT
		})
	if res.Code != 137 {
		t.Errorf("code %d, want 137", res.Code)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the second signal did not cut the one-minute wait short")
	}
	if !strings.Contains(logs.String(), "second stop signal") {
		t.Errorf("no log line for the second signal:\n%s", logs)
	}
}

// The timeout ends a worker that ignores the stop signal.
func TestShutdownTimeout(t *testing.T) {
	res, logs := run(t, Config{ShutdownTimeout: 200 * time.Millisecond}, `trap "" TERM; touch "$DIR/ready"; while :; do sleep 0.05; done`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitReady(dir)
			sigs <- unix.SIGTERM
		})
	if res.Code != 137 || !strings.Contains(logs.String(), `msg="shutdown timeout"`) {
		t.Errorf("code %d, want 137 with a timeout line:\n%s", res.Code, logs)
	}
}

// HERD_WORKER_STOP_SIGNAL replaces the received signal for workers.
func TestStopSignal(t *testing.T) {
	res, logs := run(t, Config{StopSignal: unix.SIGQUIT}, `trap "exit 0" QUIT; trap "exit 9" TERM; touch "$DIR/ready"; while :; do sleep 0.05; done`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitReady(dir)
			sigs <- unix.SIGTERM
		})
	if res.Code != 0 {
		t.Errorf("code %d, want 0 (worker got QUIT):\n%s", res.Code, logs)
	}
}

// Other signals are forwarded to the worker's process group.
func TestForward(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "usr1")
	res, logs := run(t, Config{Restart: RestartNever}, `trap "touch `+marker+`; exit 3" USR1; touch "$DIR/ready"; while :; do sleep 0.05; done`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitReady(dir)
			sigs <- unix.SIGUSR1
		})
	if res.Code != 3 {
		t.Errorf("code %d, want 3:\n%s", res.Code, logs)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("worker's USR1 trap did not run: %v", err)
	}
}

// A command that cannot be executed is not retried, whatever the policy.
func TestStartFailureNotRetried(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code int
	}{{filepath.Join(dir, "missing"), 127}, {noexec, 126}, {dir, 126}} {
		res, logs := run(t, Config{Path: tc.path, Args: []string{tc.path}, Workers: 4, Restart: RestartAlways}, "", nil)
		if res.Code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.path, res.Code, tc.code)
		}
		if n := logs.count("cannot start command"); n != 1 {
			t.Errorf("%s: %d error lines, want 1:\n%s", tc.path, n, logs)
		}
		if strings.Contains(logs.String(), "restart scheduled") {
			t.Errorf("%s: retried:\n%s", tc.path, logs)
		}
	}
}

// A stop before any worker ran reports 128+signal.
func TestStopBeforeStart(t *testing.T) {
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	r := reaper.New(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	sigs := make(chan os.Signal, 1)
	sigs <- unix.SIGTERM
	s := New(Config{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 0"}, Restart: RestartOnFailure, ShutdownTimeout: time.Second}, r, log)
	if res := s.Run(sigs); res.Code != 143 {
		t.Errorf("code %d, want 143", res.Code)
	}
}

func TestWorkerEnv(t *testing.T) {
	env := workerEnv([]string{"A=1", "HERD_WORKERS=auto", "HERD_WORKER_ID=9"}, 3, 1, 2, nil)
	want := "A=1 HERD_WORKER_ID=3 HERD_WORKER_INDEX=1 HERD_WORKERS=2"
	if got := strings.Join(env, " "); got != want {
		t.Errorf("env %q, want %q", got, want)
	}
	for _, tc := range []struct {
		base  []string
		share cpus.Fraction
		want  string
	}{
		{nil, cpus.Fraction{Num: 3, Den: 4}, "HERD_WORKER_CPUS=0.75 GOMAXPROCS=1 UV_THREADPOOL_SIZE=2"},
		{nil, cpus.Fraction{Num: 5, Den: 2}, "HERD_WORKER_CPUS=2.5 GOMAXPROCS=3 UV_THREADPOOL_SIZE=3"},
		{[]string{"GOMAXPROCS=8", "HERD_WORKER_CPUS=9"}, cpus.Fraction{Num: 1, Den: 1}, "GOMAXPROCS=8 HERD_WORKER_CPUS=1 UV_THREADPOOL_SIZE=2"},
		{[]string{"UV_THREADPOOL_SIZE=16"}, cpus.Fraction{Num: 4, Den: 1}, "UV_THREADPOOL_SIZE=16 HERD_WORKER_CPUS=4 GOMAXPROCS=4"},
	} {
		env := workerEnv(tc.base, 1, 0, 1, &tc.share)
		var got []string
		for _, kv := range env {
			if strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "UV_") || strings.HasPrefix(kv, "HERD_WORKER_CPUS=") {
				got = append(got, kv)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("share %v base %v: %q, want %q", tc.share, tc.base, got, tc.want)
		}
	}
}

func TestScaler(t *testing.T) {
	sc := scaler{checks: 3}
	cur := 2
	for i, step := range []struct{ reading, want int }{
		{4, 4},                 // up at once
		{2, 4}, {3, 4}, {4, 4}, // a higher reading breaks the run
		{2, 4}, {1, 4}, {2, 2}, // three lower in a row: the highest of them
		{1, 2}, {1, 2}, {1, 1},
		{1, 1}, {3, 3},
	} {
		cur = sc.next(cur, step.reading)
		if cur != step.want {
			t.Fatalf("step %d (reading %d): %d workers, want %d", i, step.reading, cur, step.want)
		}
	}
}

// The worker count follows the budget: up at once, down after the
// configured number of lower readings, the surplus stopped gracefully and
// its exit code not counted as a failure.
func TestResizeFollowsBudget(t *testing.T) {
	var want atomic.Int64
	want.Store(1)
	recompute := func() (cpus.Result, error) {
		n := int(want.Load())
		return cpus.Result{Workers: n, Budget: cpus.Whole(uint64(n))}, nil
	}
	res, logs := run(t, Config{Workers: 1, Recompute: recompute, Recheck: 10 * time.Millisecond, ScaleDownChecks: 3, Hints: true},
		`touch "$DIR/w$HERD_WORKER_ID-$HERD_WORKERS-$HERD_WORKER_CPUS"; exec sleep 60`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			want.Store(3)
			waitLog(logs, `msg="worker started"`, 3)
			want.Store(2)
			waitLog(logs, `msg="worker exited"`, 1)
			sigs <- unix.SIGTERM
		})
	if res.Code != 143 {
		t.Errorf("code %d, want 143 from the workers stopped at the end:\n%s", res.Code, logs)
	}
	out := logs.String()
	for _, w := range []string{"from=1 to=3", "from=3 to=2", `msg="worker stopping" id=3 index=2`} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if n := logs.count(`msg="worker started"`); n != 3 {
		t.Errorf("%d workers started, want 3", n)
	}
}

// pidOf returns the pid in the nth "worker started" line (1-based).
func pidOf(logs *logBuf, n int) int {
	waitLog(logs, `msg="worker started"`, n)
	lines := strings.Split(logs.String(), "\n")
	seen := 0
	for _, l := range lines {
		if !strings.Contains(l, `msg="worker started"`) {
			continue
		}
		if seen++; seen == n {
			var id, index, pid int
			if i := strings.Index(l, "id="); i >= 0 {
				fmt.Sscanf(l[i:], "id=%d index=%d pid=%d", &id, &index, &pid)
			}
			return pid
		}
	}
	return 0
}

// SIGHUP replaces every worker, one slot at a time, each old one stopped
// only once its replacement listens; the old ones' exits are no failure.
func TestRollingRestart(t *testing.T) {
	res, logs := run(t, Config{Workers: 2, Ready: ReadyStarted}, `exec sleep 60`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitLog(logs, `msg="worker started"`, 2)
			sigs <- unix.SIGHUP
			waitLog(logs, `msg="rolling restart done"`, 1)
			sigs <- unix.SIGTERM
		})
	out := logs.String()
	if res.Code != 143 {
		t.Errorf("code %d, want 143 (the replacements stopped by SIGTERM):\n%s", res.Code, out)
	}
	// Order: 3 starts, 1 stops; 4 starts, 2 stops.
	order := []string{"id=3 index=0", `msg="worker stopping" id=1 index=0`, "id=4 index=1", `msg="worker stopping" id=2 index=1`}
	at := 0
	for _, o := range order {
		i := strings.Index(out[at:], o)
		if i < 0 {
			t.Fatalf("log lacks %q after offset %d:\n%s", o, at, out)
		}
		at += i
	}
	if strings.Contains(out, "restart scheduled") {
		t.Errorf("replaced workers were restarted:\n%s", out)
	}
}

// SIGTTIN adds a worker, SIGTTOU removes one, never below one.
func TestTTINTTOU(t *testing.T) {
	res, logs := run(t, Config{Workers: 1, Ready: ReadyStarted}, `exec sleep 60`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitLog(logs, `msg="worker started"`, 1)
			sigs <- unix.SIGTTIN
			waitLog(logs, `msg="worker started"`, 2)
			sigs <- unix.SIGTTOU
			waitLog(logs, `msg="worker exited"`, 1)
			sigs <- unix.SIGTTOU // at one worker: nothing
			sigs <- unix.SIGTERM
		})
	out := logs.String()
	if !strings.Contains(out, "from=1 to=2 reason=SIGTTIN") || !strings.Contains(out, "from=2 to=1 reason=SIGTTOU") {
		t.Errorf("no resize lines:\n%s", out)
	}
	if strings.Contains(out, "to=0") || logs.count(`msg="worker started"`) != 2 {
		t.Errorf("went below one worker or started too many:\n%s", out)
	}
	if res.Code != 143 {
		t.Errorf("code %d, want 143", res.Code)
	}
}

// A worker that sends no WATCHDOG=1 is killed after the timeout and
// restarted; one that keeps sending is left alone.
func TestWatchdog(t *testing.T) {
	notes := make(chan notify.Message)
	stopBeats := make(chan struct{})
	res, logs := run(t, Config{Workers: 1, Watchdog: 300 * time.Millisecond, Notes: notes, Restart: RestartOnFailure},
		`exec sleep 60`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			pid := pidOf(logs, 1)
			// Beat for a second: no kill.
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				notes <- notify.Message{Pid: pid, Watchdog: true}
			}
			close(stopBeats)
			waitLog(logs, "watchdog timeout", 1)
			waitLog(logs, `msg="worker started"`, 2)
			sigs <- unix.SIGTERM
		})
	<-stopBeats
	out := logs.String()
	i := strings.Index(out, "watchdog timeout")
	if i < 0 {
		t.Fatalf("no watchdog kill:\n%s", out)
	}
	if !strings.Contains(out[i:], "code=137") || !strings.Contains(out[i:], `msg="worker started" id=2`) {
		t.Errorf("the silent worker was not killed and restarted:\n%s", out)
	}
	if res.Code != 143 {
		t.Errorf("code %d, want 143", res.Code)
	}
}

// With a shutdown delay, SIGTERM fails readiness at once and stops the
// workers only after the delay.
func TestShutdownDelay(t *testing.T) {
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := reaper.New(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	s := New(Config{Path: "/bin/sh", Args: []string{"sh", "-c", "exec sleep 60"}, Workers: 1, Restart: RestartOnFailure,
		Ready: ReadyStarted, ShutdownTimeout: 10 * time.Second, ShutdownDelay: 500 * time.Millisecond}, r, log)
	sigs := make(chan os.Signal, 1)
	done := make(chan Result, 1)
	go func() { done <- s.Run(sigs) }()
	waitLog(logs, `msg="worker listening"`, 1)
	sent := time.Now()
	sigs <- unix.SIGTERM
	for deadline := time.Now().Add(10 * time.Second); !s.Snapshot().Draining; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("snapshot never showed draining")
		}
	}
	if n := s.Snapshot().Listening(); time.Since(sent) < 400*time.Millisecond && n != 1 {
		t.Errorf("during the delay %d workers listening, want 1", n)
	}
	res := <-done
	if res.Code != 143 {
		t.Errorf("code %d, want 143", res.Code)
	}
	if time.Since(sent) < 500*time.Millisecond {
		t.Errorf("workers stopped %v after SIGTERM, before the 500ms delay", time.Since(sent))
	}
}

// The same stop signal twice at once (timeout(1) signals the process and
// its group) is one request: the workers still stop gracefully.
func TestDuplicateStopSignal(t *testing.T) {
	res, logs := run(t, Config{}, `trap "sleep 0.3; exit 0" TERM; touch "$DIR/ready"; while :; do sleep 0.05; done`,
		func(sigs chan<- os.Signal, logs *logBuf, dir string) {
			waitReady(dir)
			sigs <- unix.SIGTERM
			sigs <- unix.SIGTERM
		})
	if res.Code != 0 || strings.Contains(logs.String(), "second stop signal") {
		t.Errorf("code %d, want 0 with no kill:\n%s", res.Code, logs)
	}
}
