package acceptance

// Starting herd, waiting for its end, and reading its logs while it runs.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangGuard is the hang guard for one awaited event.
const hangGuard = 20 * time.Second

type runMode int

const (
	asPID1      runMode = iota // herd is PID 1 of a new PID namespace, the test's child
	underKeeper                // herd is the child of a subreaper helper, same namespace
	underNSInit                // herd is the child of a reaping PID 1 helper in a new namespace
	asDirect                   // herd is the test's child in the test's namespace
)

// spec describes one run.
type spec struct {
	mode    runMode
	prog    string   // program to run instead of herd (e.g. /usr/bin/tini)
	wrap    []string // command prefix for keeper/nsinit modes (e.g. strace ...)
	args    []string // argv after the program name
	env     []string // extra environment (HERD_WORKERS=1, ...)
	rawEnv  bool     // do not add the default HERD_LOG_FORMAT=json, HERD_LOG_LEVEL=debug
	dir     string   // working directory herd is started in (default: a temp dir)
	stdin   io.Reader
	extra   []*os.File // inherited fds 3...
	ignore  []string   // signals the parent leaves ignored (SIG_IGN) for herd, e.g. HUP INT
	block   []string   // pid1/exec: signals the parent leaves blocked for herd, e.g. USR2 TERM
	roRoot  bool       // pid1: remount / read-only
	nnp     bool       // pid1: set no_new_privs
	nobody  bool       // pid1: run herd as uid/gid 65534
	bystand bool       // nsinit: also start a bystander process that must survive
	cgroup  string     // pid1/exec: cgroup directory to join (write own pid to cgroup.procs) before exec
	unset   []string   // variables of cleanEnv to leave out (HERD_SCHED_POLICY: herd's default policy)
}

// herdRun is a running herd (or tini) and what it printed.
type herdRun struct {
	t      testing.TB
	s      spec
	cmd    *exec.Cmd
	stdout *lineBuf
	stderr *lineBuf
	done   chan struct{}
	state  *os.ProcessState
	root   int // host pid of the test's child
	herd   int // host pid of herd, once known
}

// cleanEnv is the test's environment without herd's settings and anything
// a worker could mistake for its own.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HERD_") || strings.HasPrefix(k, "LISTEN_") ||
			k == "NOTIFY_SOCKET" || k == "GOMAXPROCS" || k == "GODEBUG" || k == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	// Many herds run at once here, in one network namespace: none serves
	// probes unless a test asks (a later HERD_HEALTH_ADDR in the list wins).
	// Tests whose workers take LISTEN_FDS sockets run under none unless
	// they choose (rr, the default, hands sockets only to workers that
	// speak Node's protocol); TestUnmodifiedNodeServerAlternatesUnderRR/default
	// checks the default.
	return append(env, "HERD_HEALTH_ADDR=off", "HERD_SCHED_POLICY=none")
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// start starts herd as described by s and registers cleanup that kills
// whatever is left.
func start(t testing.TB, s spec) *herdRun {
	t.Helper()
	requireNS(t)
	prog := s.prog
	if prog == "" {
		prog = herdPath(t)
	}
	env := slices.DeleteFunc(cleanEnv(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(s.unset, k)
	})
	if !hasKey(s.env, "HERD_TERMINATION_LOG") {
		// Never write the host's /dev/termination-log from a test.
		env = append(env, "HERD_TERMINATION_LOG=off")
	}
	if !s.rawEnv {
		if !hasKey(s.env, "HERD_LOG_FORMAT") {
			env = append(env, "HERD_LOG_FORMAT=json")
		}
		if !hasKey(s.env, "HERD_LOG_LEVEL") {
			env = append(env, "HERD_LOG_LEVEL=debug")
		}
	}
	env = append(env, s.env...)

	var helper string
	var attr syscall.SysProcAttr
	argv := append([]string{prog}, s.args...)
	switch s.mode {
	case asPID1:
		helper = "pid1"
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
	case asDirect:
		helper = "exec"
	case underKeeper:
		helper = "keeper"
		argv = append(append([]string(nil), s.wrap...), argv...)
	case underNSInit:
		helper = "nsinit"
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
		argv = append(append([]string(nil), s.wrap...), argv...)
	}
	env = append(env, helperVar+"="+helper)
	if len(s.ignore) > 0 {
		env = append(env, "HERD_TEST_IGNORE="+strings.Join(s.ignore, ","))
	}
	if len(s.block) > 0 {
		env = append(env, "HERD_TEST_BLOCK="+strings.Join(s.block, ","))
	}
	if s.roRoot {
		env = append(env, "HERD_TEST_RO=1")
	}
	if s.nnp {
		env = append(env, "HERD_TEST_NNP=1")
	}
	if s.nobody {
		env = append(env, "HERD_TEST_NOBODY=1")
	}
	if s.bystand {
		env = append(env, "HERD_TEST_BYSTANDER=1")
	}
	if s.cgroup != "" {
		env = append(env, "HERD_TEST_CGROUP="+s.cgroup)
	}
	env = append(env, fmt.Sprintf("HERD_TEST_FDS=%d", 3+len(s.extra)))

	cmd := exec.Command(testBin, argv...)
	cmd.Env = env
	cmd.SysProcAttr = &attr
	cmd.Dir = s.dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	r := &herdRun{t: t, s: s, cmd: cmd, stdout: newLineBuf(), stderr: newLineBuf(), done: make(chan struct{})}
	cmd.Stdout = r.stdout
	cmd.Stderr = r.stderr
	cmd.Stdin = s.stdin
	cmd.ExtraFiles = s.extra
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	r.root = cmd.Process.Pid
	if s.mode == asPID1 || s.mode == asDirect {
		r.herd = r.root
	}
	go func() {
		_ = cmd.Wait()
		r.state = cmd.ProcessState
		r.stdout.close()
		r.stderr.close()
		close(r.done)
	}()
	t.Cleanup(func() {
		if !r.exited() {
			killTree(r.root)
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
			}
		}
		if t.Failed() {
			t.Logf("%s stdout (tail):\n%s", filepath.Base(prog), tail(r.stdout.text(), 60))
			t.Logf("%s stderr (tail):\n%s", filepath.Base(prog), tail(r.stderr.text(), 60))
		}
	})
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// runHerd runs herd to completion and returns its exit code.
func runHerd(t testing.TB, s spec) (*herdRun, int) {
	t.Helper()
	r := start(t, s)
	return r, r.exitCode(60 * time.Second)
}

func (r *herdRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to end, killing it and failing the test when
// the hang guard expires.
func (r *herdRun) wait(guard time.Duration) syscall.WaitStatus {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(guard):
		killTree(r.root)
		<-r.done
		r.t.Fatalf("hang guard: still running after %v; killed", guard)
	}
	return r.state.Sys().(syscall.WaitStatus)
}

// exitCode waits for the end and returns the exit code; a death by signal
// of the test's child fails the test (herd must exit, not be killed).
func (r *herdRun) exitCode(guard time.Duration) int {
	r.t.Helper()
	ws := r.wait(guard)
	if ws.Signaled() {
		r.t.Fatalf("%s was killed by signal %v (it must exit with a code)", r.cmd.Args[1], ws.Signal())
	}
	if ws.ExitStatus() == helperFailed && strings.Contains(r.stderr.text(), "helper ") {
		r.t.Fatalf("test helper failed: %s", r.stderr.text())
	}
	return ws.ExitStatus()
}

// terminate sends SIGTERM to herd, unless it has exited, and waits for
// its exit code.
func (r *herdRun) terminate() int {
	r.t.Helper()
	if !r.exited() {
		r.signal(unix.SIGTERM)
	}
	return r.exitCode(40 * time.Second)
}

// herdPID returns herd's pid in the test's namespace.
func (r *herdRun) herdPID() int {
	r.t.Helper()
	if r.herd == 0 {
		comm := filepath.Base(herdPath(r.t))
		if len(comm) > 15 { // TASK_COMM_LEN - 1
			comm = comm[:15]
		}
		r.herd = r.waitProc(r.root, comm, 20*time.Second)
	}
	return r.herd
}

// hostPID maps a pid in herd's PID namespace to the test's view (the last
// NSpid of a descendant of the test's child).
func (r *herdRun) hostPID(nspid int) int {
	r.t.Helper()
	for _, p := range descendants(r.root) {
		v, err := statusField(p.pid, "NSpid")
		if err != nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) > 0 && f[len(f)-1] == strconv.Itoa(nspid) {
			return p.pid
		}
	}
	if r.s.mode == asDirect {
		return nspid
	}
	r.t.Fatalf("no descendant of %d has pid %d in herd's namespace", r.root, nspid)
	return 0
}

// waitProc waits for a descendant of root whose command name is comm.
func (r *herdRun) waitProc(root int, comm string, timeout time.Duration) int {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range descendants(root) {
			if p.comm == comm && p.state != 'Z' {
				return p.pid
			}
		}
		if time.Now().After(deadline) || r.exited() {
			var seen []string
			for _, p := range descendants(root) {
				seen = append(seen, fmt.Sprintf("%d %s %c", p.pid, p.comm, p.state))
			}
			r.t.Fatalf("no process %q under pid %d within %v (herd exited: %v); there: %v", comm, root, timeout, r.exited(), seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to herd.
func (r *herdRun) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := unix.Kill(r.herdPID(), sig); err != nil {
		r.t.Fatalf("kill(herd, %v): %v", sig, err)
	}
}

// waitLog waits (hangGuard) for herd's JSON log record msg with the
// fields kv (pairs of key, value compared as text), searching stderr from
// the start.
func (r *herdRun) waitLog(msg string, kv ...any) logLine {
	r.t.Helper()
	l, _ := r.waitLogAfter(0, hangGuard, msg, kv...)
	return l
}

// waitLogAfter waits up to guard for herd's JSON log record msg with the
// fields kv at stderr line from or later, and returns it and its index.
func (r *herdRun) waitLogAfter(from int, guard time.Duration, msg string, kv ...any) (logLine, int) {
	r.t.Helper()
	l, i, err := r.stderr.find(from, guard, func(l logLine) bool { return l.is(msg, kv...) })
	if err != nil {
		r.t.Fatalf("no log record msg=%q %v from line %d: %v", msg, kv, from, err)
	}
	return l, i
}

// waitStdout waits (hangGuard) for a stdout line equal to s.
func (r *herdRun) waitStdout(s string) {
	r.t.Helper()
	if _, _, err := r.stdout.find(0, hangGuard, func(l logLine) bool { return l.raw == s }); err != nil {
		r.t.Fatalf("no stdout line %q: %v", s, err)
	}
}

// logs returns herd's JSON log records with msg.
func (r *herdRun) logs(msg string) []logLine {
	var out []logLine
	for _, l := range r.stderr.snapshot() {
		if l.fields != nil && l.msg() == msg {
			out = append(out, l)
		}
	}
	return out
}

// logsBetween returns the JSON log records msg with the fields kv, at
// stderr line from up to (not including) to (-1: the end).
func (r *herdRun) logsBetween(from, to int, msg string, kv ...any) []logLine {
	lines := r.stderr.snapshot()
	if to < 0 || to > len(lines) {
		to = len(lines)
	}
	var out []logLine
	for i := max(from, 0); i < to; i++ {
		if lines[i].is(msg, kv...) {
			out = append(out, lines[i])
		}
	}
	return out
}

// errorLogs are herd's JSON records at level ERROR.
func (r *herdRun) errorLogs() []logLine {
	var out []logLine
	for _, l := range r.stderr.snapshot() {
		if l.fields != nil && l.str("level") == "ERROR" {
			out = append(out, l)
		}
	}
	return out
}

// sleepUntil waits until at, failing the test if herd exits meanwhile.
func (r *herdRun) sleepUntil(at time.Time) {
	r.t.Helper()
	select {
	case <-r.done:
		r.t.Fatalf("herd exited unexpectedly, before %s", at.Format(time.StampMilli))
	case <-time.After(time.Until(at)):
	}
}

// waitListening waits until n "worker listening" records were logged and
// returns the pids (herd's view) of those n workers.
func (r *herdRun) waitListening(n int) []int {
	r.t.Helper()
	if err := r.stderr.waitCount("worker listening", n, hangGuard); err != nil {
		r.t.Fatalf("%d workers did not listen: %v", n, err)
	}
	var pids []int
	for _, l := range r.logs("worker listening")[:n] {
		p, _ := l.num("pid")
		pids = append(pids, p)
	}
	return pids
}

// workerIDs maps the pid of every worker herd started to its id.
func (r *herdRun) workerIDs() map[int]int {
	ids := map[int]int{}
	for _, l := range r.logs("worker started") {
		p, _ := l.num("pid")
		id, _ := l.num("id")
		ids[p] = id
	}
	return ids
}

// workerPids is the set of every worker pid herd started.
func (r *herdRun) workerPids() map[int]bool {
	w := map[int]bool{}
	for p := range r.workerIDs() {
		w[p] = true
	}
	return w
}

// checkExitedCleanly checks that each pid has a "worker exited" record with
// code 0 (waiting for it: hangGuard).
func (r *herdRun) checkExitedCleanly(pids []int) {
	r.t.Helper()
	for _, pid := range pids {
		if l := r.waitLog("worker exited", "pid", pid); l.str("code") != "0" {
			r.t.Errorf("worker %d did not stop gracefully: %s", pid, l.raw)
		}
	}
}

// waitOrphans waits (hangGuard) for at least n "orphan reaped" records and
// returns how many there are; the error says how many came if fewer did.
func (r *herdRun) waitOrphans(n int) (int, error) {
	err := r.stderr.waitCount("orphan reaped", n, hangGuard)
	return r.stderr.count("orphan reaped"), err
}

// killTree SIGKILLs root and every descendant.
func killTree(root int) {
	for _, p := range descendants(root) {
		_ = unix.Kill(p.pid, unix.SIGKILL)
	}
	_ = unix.Kill(root, unix.SIGKILL)
}

// waitFile waits until path exists.
func waitFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cmdArgs is herd's argv for running command: ["--", command...].
func cmdArgs(command ...string) []string { return append([]string{"--"}, command...) }

// oneWorkerNever is the tini drop-in setting: one worker, never restarted.
var oneWorkerNever = []string{"HERD_WORKERS=1", "HERD_RESTART=never"}
