package acceptance

// End-to-end acceptance harness (ACCEPTANCE.md, sections A, R, S and D).
//
// Every acceptance test runs herd's real binary, built once by go build, as
// PID 1 of a new PID namespace (or, where the case says so, as a child
// subreaper). The test binary re-executes itself as the helper processes the
// cases need (the tableflip pattern): TestMain runs the helper named by
// HERD_TEST_HELPER instead of the tests.
//
//	pid1    started with CLONE_NEWPID|CLONE_NEWNS: makes mounts private, mounts
//	        a fresh /proc, optionally drops privileges and leaves chosen
//	        signals ignored or blocked, then execs herd (which becomes PID 1
//	        and stays the test's direct child).
//	exec    the same without a new namespace (herd is the test's child).
//	        Both first join the cgroup spec.cgroup names, if any, so herd
//	        runs inside it from its first instruction (C8).
//	keeper  a child subreaper that starts herd, waits for herd only, and reaps
//	        the rest after herd exited (subreaper mode, negative control).
//	nsinit  PID 1 of a new PID namespace that reaps everything (like pause);
//	        herd runs as its child, not PID 1 (shared process namespace).
//	sigecho a worker that prints "got SIGNAME" for every signal it receives.
//	selfsig a worker that kills itself with a signal.
//	fds     a worker that prints its open file descriptors.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const helperVar = "HERD_TEST_HELPER"

// helperFailed is the exit code of a helper that could not set itself up;
// no case expects it from herd.
const helperFailed = 250

var (
	testBin string // this test binary, re-executed as helpers

	buildOnce sync.Once
	buildDir  string
	herdBin   string
	buildErr  error
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperVar); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	var err error
	if testBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance: cannot find test binary:", err)
		os.Exit(2)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// herdPackage is herd's main package, built from the module root.
const herdPackage = "github.com/herd-sh/herd"

// moduleRoot is the directory of herd's go.mod: the nearest one above the
// test's working directory (the package directory, under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module "+herdPackage+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", herdPackage)
		}
		dir = parent
	}
}

// herdPath builds herd once (go build -o <tmp>/herd, from the module root) and returns its
// path. HERD_ACCEPTANCE_BINARY names a prebuilt binary to test instead (a
// release build, or a deliberately broken one to see the tests fail).
func herdPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("HERD_ACCEPTANCE_BINARY"); bin != "" {
			herdBin, buildErr = filepath.Abs(bin)
			return
		}
		dir, err := os.MkdirTemp("", "herd-acceptance-")
		if err != nil {
			buildErr = err
			return
		}
		// World-readable so D5's unprivileged herd can execute the binary.
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(dir, "herd")
		build := exec.Command("go", "build", "-o", bin, herdPackage)
		build.Dir = root
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build -o %s %s: %v\n%s", bin, herdPackage, err, out)
			return
		}
		herdBin = bin
	})
	if buildErr != nil {
		t.Fatalf("cannot build herd: %v", buildErr)
	}
	return herdBin
}

// ---------------------------------------------------------------------------
// Requirements

// missing fails the test under CI=true and skips it otherwise.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("requirement missing (CI=true): " + msg)
	}
	t.Skip("requirement missing: " + msg)
}

var (
	nsOnce sync.Once
	nsErr  error
)

// requireNS checks for root and for the right to create PID and mount
// namespaces (tried once by starting the pid1 helper on /bin/true).
func requireNS(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (euid %d)", os.Geteuid())
	}
	nsOnce.Do(func() {
		cmd := exec.Command(testBin, "/bin/true")
		cmd.Env = append(cleanEnv(), helperVar+"=pid1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
		out, err := cmd.CombinedOutput()
		if err != nil {
			nsErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if nsErr != nil {
		missing(t, "PID and mount namespaces: %v", nsErr)
	}
}

// requireTool needs an executable on PATH (or an absolute path) and returns its path.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "tool %s: %v", name, err)
	}
	return p
}

// ---------------------------------------------------------------------------
// Line collection and herd's JSON logs

// logLine is one line of output; fields is its JSON object (nil if the line
// is not JSON, e.g. a worker's own output).
type logLine struct {
	raw    string
	fields map[string]any
}

func (l logLine) msg() string { return l.str("msg") }

// str returns a field as text ("" when absent); numbers keep their JSON text.
func (l logLine) str(key string) string {
	v, ok := l.fields[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// num returns an integer field.
func (l logLine) num(key string) (int, bool) {
	v, ok := l.fields[key]
	if !ok {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	return i, err == nil
}

// is reports whether the line is the JSON log record msg with every field in
// kv (pairs of key, value compared as text).
func (l logLine) is(msg string, kv ...any) bool {
	if l.fields == nil || l.msg() != msg {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if l.str(fmt.Sprint(kv[i])) != fmt.Sprint(kv[i+1]) {
			return false
		}
	}
	return true
}

// lineBuf is an io.Writer that splits what is written into lines, parses
// the JSON ones, and lets tests wait for a line.
type lineBuf struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
	counts  map[string]int // JSON lines per msg
	changed chan struct{}  // closed and replaced on every new line
	closed  bool
}

func newLineBuf() *lineBuf {
	return &lineBuf{counts: map[string]int{}, changed: make(chan struct{})}
}

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.add(string(b.partial[:i]))
		b.partial = b.partial[i+1:]
		added = true
	}
	if added {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return len(p), nil
}

func (b *lineBuf) add(s string) {
	l := logLine{raw: s}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) == nil {
			l.fields = m
			b.counts[l.msg()]++
		}
	}
	b.lines = append(b.lines, l)
}

// close marks the end of output (the writer is gone).
func (b *lineBuf) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.add(string(b.partial))
		b.partial = nil
	}
	if !b.closed {
		b.closed = true
		close(b.changed)
	}
}

func (b *lineBuf) snapshot() []logLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]logLine(nil), b.lines...)
}

func (b *lineBuf) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[msg]
}

func (b *lineBuf) text() string {
	var sb strings.Builder
	for _, l := range b.snapshot() {
		sb.WriteString(l.raw)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// find waits until a line at index >= from satisfies match, the output ends,
// or the timeout passes. It returns the line, its index and whether found.
func (b *lineBuf) find(from int, timeout time.Duration, match func(logLine) bool) (logLine, int, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for i := from; i < len(b.lines); i++ {
			if match(b.lines[i]) {
				l := b.lines[i]
				b.mu.Unlock()
				return l, i, true
			}
		}
		from = len(b.lines)
		ch, closed := b.changed, b.closed
		b.mu.Unlock()
		if closed {
			return logLine{}, -1, false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return logLine{}, -1, false
		}
	}
}

// waitCount waits until at least n JSON lines with msg were seen.
func (b *lineBuf) waitCount(msg string, n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		c, ch, closed := b.counts[msg], b.changed, b.closed
		b.mu.Unlock()
		if c >= n {
			return true
		}
		if closed {
			return false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// ---------------------------------------------------------------------------
// Running herd

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
	// speak Node's protocol); TestDefaultPolicyRR checks the default.
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
			r.t.Fatalf("no process %q under pid %d", comm, root)
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

// waitLog waits (20 s hang guard) for herd's JSON log record msg with the
// given fields, searching from the start of stderr.
func (r *herdRun) waitLog(msg string, kv ...any) logLine {
	r.t.Helper()
	l, _, ok := r.stderr.find(0, 20*time.Second, func(l logLine) bool { return l.is(msg, kv...) })
	if !ok {
		r.t.Fatalf("no log line msg=%q %v (herd exited: %v)", msg, kv, r.exited())
	}
	return l
}

// waitStdout waits (20 s hang guard) for a stdout line equal to s.
func (r *herdRun) waitStdout(s string) {
	r.t.Helper()
	if _, _, ok := r.stdout.find(0, 20*time.Second, func(l logLine) bool { return l.raw == s }); !ok {
		r.t.Fatalf("no stdout line %q (exited: %v)", s, r.exited())
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

// helperArgv is the argv of a worker that is this test binary in helper mode.
func helperArgv(mode string, args ...string) []string {
	return append([]string{"/usr/bin/env", helperVar + "=" + mode, testBin}, args...)
}

// cmdArgs is herd's argv for running command: ["--", command...].
func cmdArgs(command ...string) []string { return append([]string{"--"}, command...) }

// ---------------------------------------------------------------------------
// /proc, the host's view

type proc struct {
	pid, ppid int
	state     byte
	comm      string
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: ppid, state: f[0][0], comm: s[open+1 : closing]}, true
}

func allProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// descendants returns every descendant of root (not root itself).
func descendants(root int) []proc {
	children := map[int][]proc{}
	for _, p := range allProcs() {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// zombies is the zombie detector: the descendants of root in state Z. The
// positive tests expect none; the negative control R2 expects some.
func zombies(root int) []proc {
	var z []proc
	for _, p := range descendants(root) {
		if p.state == 'Z' {
			z = append(z, p)
		}
	}
	return z
}

// statusField returns a field of /proc/pid/status ("SigIgn", "VmRSS", ...).
func statusField(pid int, key string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// Fields after comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad stat")
	}
	return u + st, nil
}

// fdCount returns the number of open fds of pid.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// sigName is "SIGTERM" for named signals and "SIG34" for real-time ones; the
// sigecho helper prints "got " + sigName(s).
func sigName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("SIG%d", int(s))
}

// sigByName accepts "TERM", "SIGTERM" or a number.
func sigByName(s string) syscall.Signal {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n)
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return unix.SignalNum(s)
}

// ---------------------------------------------------------------------------
// Helpers (run inside re-executed copies of this binary)

func runHelper(mode string, args []string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return helperFailed
	}
	switch mode {
	case "pid1", "exec":
		return fail(helperExec(mode == "pid1", args))
	case "keeper":
		return helperKeeper(args, fail)
	case "nsinit":
		return helperNSInit(args, fail)
	case "sigecho":
		return helperSigecho(args)
	case "selfsig":
		return helperSelfsig(args)
	case "fds":
		return helperFds()
	}
	return fail(fmt.Errorf("unknown helper mode %q", mode))
}

// childEnv is the helper's environment without the harness's own variables.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERD_TEST_") {
			env = append(env, kv)
		}
	}
	return env
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDfl = 0
	sigIgn = 1
)

func setDisposition(sig syscall.Signal, handler uintptr) error {
	sa := kernelSigaction{handler: handler}
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func disposition(sig syscall.Signal) (uintptr, error) {
	var sa kernelSigaction
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0)
	if e != 0 {
		return 0, e
	}
	return sa.handler, nil
}

// cleanSignals resets every ignored signal to SIG_DFL (the test may run
// under a shell that ignores INT/QUIT for background jobs), then ignores
// the signals HERD_TEST_IGNORE names, so herd starts with a known set.
func cleanSignals() error {
	for s := syscall.Signal(1); s <= 64; s++ {
		if s == unix.SIGKILL || s == unix.SIGSTOP {
			continue
		}
		if h, err := disposition(s); err == nil && h == sigIgn {
			if err := setDisposition(s, sigDfl); err != nil {
				return fmt.Errorf("reset %v: %w", s, err)
			}
		}
	}
	if v := os.Getenv("HERD_TEST_IGNORE"); v != "" {
		for _, name := range strings.Split(v, ",") {
			s := sigByName(name)
			if s == 0 {
				return fmt.Errorf("unknown signal %q", name)
			}
			if err := setDisposition(s, sigIgn); err != nil {
				return fmt.Errorf("ignore %v: %w", s, err)
			}
		}
	}
	return nil
}

// closeStrayFds marks every fd from HERD_TEST_FDS up close-on-exec: fds the
// test process itself inherited (from a CI runner, say) do not reach herd;
// only the test's ExtraFiles do.
func closeStrayFds() error {
	from, err := strconv.Atoi(os.Getenv("HERD_TEST_FDS"))
	if err != nil {
		from = 3
	}
	if err := unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= from {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// helperExec (pid1, exec) prepares the process and execs args.
func helperExec(newNS bool, args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	runtime.LockOSThread()
	if dir := os.Getenv("HERD_TEST_CGROUP"); dir != "" {
		// cgroup.procs moves the whole thread group; the pid is read in
		// this process's PID namespace (1 for pid1: itself).
		pid := []byte(strconv.Itoa(os.Getpid()))
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if newNS {
		if err := mountProc(); err != nil {
			return err
		}
		if os.Getenv("HERD_TEST_RO") == "1" {
			if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("remount / read-only: %w", err)
			}
		}
	}
	if os.Getenv("HERD_TEST_NNP") == "1" {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if os.Getenv("HERD_TEST_NOBODY") == "1" {
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(65534); err != nil {
			return fmt.Errorf("setgid: %w", err)
		}
		if err := syscall.Setuid(65534); err != nil {
			return fmt.Errorf("setuid: %w", err)
		}
	}
	if err := cleanSignals(); err != nil {
		return err
	}
	if err := closeStrayFds(); err != nil {
		return err
	}
	// The mask of this (locked) thread is the one herd starts with: the
	// signals HERD_TEST_BLOCK names, or none.
	var mask unix.Sigset_t
	if v := os.Getenv("HERD_TEST_BLOCK"); v != "" {
		for _, name := range strings.Split(v, ",") {
			s := sigByName(name)
			if s <= 0 || s > 64 {
				return fmt.Errorf("unknown signal %q", name)
			}
			mask.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
		}
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &mask, nil); err != nil {
		return fmt.Errorf("sigmask: %w", err)
	}
	prog := args[0]
	if !strings.Contains(prog, "/") {
		p, err := exec.LookPath(prog)
		if err != nil {
			return err
		}
		prog = p
	}
	return fmt.Errorf("exec %s: %w", prog, syscall.Exec(prog, args, childEnv()))
}

// mountProc makes every mount private to this new mount namespace and
// mounts the new PID namespace's /proc.
func mountProc() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

func codeOf(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func startChild(args []string) (*exec.Cmd, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = childEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd, cmd.Start()
}

// helperKeeper is a child subreaper: it starts args, waits for that child
// only (orphans that reach it stay zombies meanwhile: the negative
// control), then reaps everything left and reports how many orphans it got.
func helperKeeper(args []string, fail func(error) int) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(err)
	}
	if err := cleanSignals(); err != nil {
		return fail(err)
	}
	if err := closeStrayFds(); err != nil {
		return fail(err)
	}
	cmd, err := startChild(args)
	if err != nil {
		return fail(err)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(cmd.Process.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(err)
		}
		break
	}
	orphans := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ows unix.WaitStatus
		pid, err := unix.Wait4(-1, &ows, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			break
		}
		if pid > 0 {
			orphans++
			continue
		}
		if time.Now().After(deadline) {
			for _, p := range descendants(os.Getpid()) {
				_ = unix.Kill(p.pid, unix.SIGKILL)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ws.Signaled() {
		fmt.Fprintf(os.Stderr, "keeper: herd killed by signal %d\n", int(ws.Signal()))
	}
	fmt.Fprintf(os.Stderr, "keeper: orphans=%d\n", orphans)
	return codeOf(ws)
}

// helperNSInit is PID 1 of a new PID namespace that reaps every process,
// reports each on stdout ("nsinit reaped PID"), and, when the command
// exits, reports whether the bystander survived, then exits with the
// command's code.
func helperNSInit(args []string, fail func(error) int) int {
	if err := mountProc(); err != nil {
		return fail(err)
	}
	if err := cleanSignals(); err != nil {
		return fail(err)
	}
	if err := closeStrayFds(); err != nil {
		return fail(err)
	}
	bystander := 0
	if os.Getenv("HERD_TEST_BYSTANDER") == "1" {
		b := exec.Command("/bin/sleep", "1000")
		if err := b.Start(); err != nil {
			return fail(err)
		}
		bystander = b.Process.Pid
	}
	cmd, err := startChild(args)
	if err != nil {
		return fail(err)
	}
	mainPid := cmd.Process.Pid
	bystanderAlive := bystander != 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(err)
		}
		switch pid {
		case mainPid:
			fmt.Printf("nsinit reaped %d main\n", pid)
			if bystander != 0 {
				alive := "dead"
				if bystanderAlive && unix.Kill(bystander, 0) == nil {
					alive = "alive"
				}
				fmt.Printf("nsinit bystander %s\n", alive)
				_ = unix.Kill(bystander, unix.SIGKILL)
			}
			return codeOf(ws)
		case bystander:
			bystanderAlive = false
			fmt.Printf("nsinit reaped %d bystander\n", pid)
		default:
			fmt.Printf("nsinit reaped %d orphan\n", pid)
		}
	}
}

// catchable is every signal a process can catch, minus KILL and STOP,
// SIGURG (the Go runtime's preemption signal), SIGCHLD, SIGPROF (the Go
// runtime's; never delivered to os/signal) and 32, 33 and 34 (reserved by
// glibc and musl; Go's runtime installs no handler for them and
// signal.Notify ignores them, so no Go program, herd included, can catch them).
func catchable() []syscall.Signal {
	var out []syscall.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGURG, unix.SIGCHLD, unix.SIGPROF, 32, 33, 34:
			continue
		}
		out = append(out, s)
	}
	return out
}

// helperSigecho prints "ready", then "got SIGNAME" for every signal it
// receives; it exits -code on the -exit signal, or after -after.
func helperSigecho(args []string) int {
	fs := flag.NewFlagSet("sigecho", flag.ContinueOnError)
	exitOn := fs.String("exit", "TERM", "signal that ends the helper")
	code := fs.Int("code", 0, "exit code")
	after := fs.Duration("after", 0, "exit after this long (0: never)")
	quiet := fs.Bool("quiet", false, "do not print signals")
	if err := fs.Parse(args); err != nil {
		return helperFailed
	}
	term := sigByName(*exitOn)
	ch := make(chan os.Signal, 128)
	var sigs []os.Signal
	for _, s := range catchable() {
		sigs = append(sigs, s)
	}
	signal.Notify(ch, sigs...)
	out := bufio.NewWriter(os.Stdout)
	if !*quiet {
		fmt.Fprintln(out, "ready")
		out.Flush()
	}
	var timeout <-chan time.Time
	if *after > 0 {
		timeout = time.After(*after)
	}
	for {
		select {
		case s := <-ch:
			sig := s.(syscall.Signal)
			if !*quiet {
				fmt.Fprintf(out, "got %s\n", sigName(sig))
				out.Flush()
			}
			if sig == term {
				return *code
			}
		case <-timeout:
			return *code
		}
	}
}

// helperSelfsig kills itself with the signal args[0], with its default action.
func helperSelfsig(args []string) int {
	if len(args) != 1 {
		return helperFailed
	}
	sig := sigByName(args[0])
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	signal.Reset()
	if sig != unix.SIGKILL && sig != unix.SIGSTOP {
		if err := setDisposition(sig, sigDfl); err != nil {
			fmt.Fprintln(os.Stderr, "selfsig:", err)
			return helperFailed
		}
	}
	_ = unix.Kill(os.Getpid(), sig)
	time.Sleep(10 * time.Second)
	fmt.Fprintln(os.Stderr, "selfsig: still alive")
	return helperFailed
}

// helperFds prints "fds: 0 1 2 ..." for the fds it inherited through
// execve (those without FD_CLOEXEC), read with raw system calls so the Go
// runtime's poller opens nothing first.
func helperFds() int {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fds:", err)
		return helperFailed
	}
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fds:", err)
			return helperFailed
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var fds []int
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == dir {
			continue
		}
		// The Go runtime's own fds (it keeps cgroup files open) are
		// close-on-exec; an fd that came through execve is not.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		fds = append(fds, fd)
	}
	sort.Ints(fds)
	parts := make([]string, len(fds))
	for i, fd := range fds {
		parts[i] = strconv.Itoa(fd)
	}
	fmt.Printf("fds: %s\n", strings.Join(parts, " "))
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		fmt.Printf("fd %d -> %s\n", fd, target)
	}
	return 0
}

// testdataPath is the absolute path of testdata/name, which must exist.
func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}
