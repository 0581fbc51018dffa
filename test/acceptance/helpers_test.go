package acceptance

// The helper processes: copies of this test binary, re-executed with
// HERD_TEST_HELPER naming what to be.
//
//	pid1    started with CLONE_NEWPID|CLONE_NEWNS: makes mounts private, mounts
//	        a fresh /proc, optionally drops privileges and leaves chosen
//	        signals ignored or blocked, then execs herd (which becomes PID 1
//	        and stays the test's direct child).
//	exec    the same without a new namespace (herd is the test's child).
//	        Both first join the cgroup spec.cgroup names, if any, so herd
//	        runs inside it from its first instruction (docs/acceptance.md C8).
//	keeper  a child subreaper that starts herd, waits for herd only, and reaps
//	        the rest after herd exited (subreaper mode, negative control).
//	nsinit  PID 1 of a new PID namespace that reaps everything (like pause);
//	        herd runs as its child, not PID 1 (shared process namespace).
//	sigecho a worker that prints "got SIGNAME" for every signal it receives.
//	selfsig a worker that kills itself with a signal.
//	fds     a worker that prints its open file descriptors.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helperArgv is the argv of a worker that is this test binary in helper mode.
func helperArgv(mode string, args ...string) []string {
	return append([]string{"/usr/bin/env", helperVar + "=" + mode, testBin}, args...)
}

// sigechoWorker prints "ready" once its signal handlers are in place, exits 0
// on SIGTERM and only reports every other signal (SIGHUP included, should
// herd pass it on).
func sigechoWorker() []string { return cmdArgs(helperArgv("sigecho")...) }

// waitSigechoReady waits until every worker herd logged as started has printed
// "ready", so a signal sent now reaches its handler, not its default action.
func waitSigechoReady(t testing.TB, r *herdRun) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, l := range r.stdout.snapshot() {
			if l.raw == "ready" {
				ready++
			}
		}
		started := r.stderr.count("worker started")
		if ready >= started {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d started workers ready after 20 s", ready, started)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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

// catchable is every signal a process can catch, minus KILL and STOP, SIGURG
// (the Go runtime's preemption signal), SIGCHLD, SIGPROF (the Go runtime's;
// never delivered to os/signal) and 32, 33 and 34 (reserved by glibc and
// musl; Go's runtime installs no handler for them and signal.Notify ignores
// them, so no Go program, herd included, can catch them).
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
