package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one setup's process under test: herd, Node's primary or the
// single Node process. Its stdout and stderr go to a log file.
type proc struct {
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
	waitErr error
	stopAt  int64 // size of the log when the stop began (-1: not stopping)
}

func startProc(argv, env []string, dir, logPath string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, and killed if the benchmark dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{}), stopAt: -1}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitStatus describes how the process ended.
func (p *proc) exitStatus() string {
	if p.alive() {
		return "running"
	}
	if p.waitErr == nil {
		return "exit 0"
	}
	return p.waitErr.Error()
}

// logText returns the log up to the moment the stop began (all of it if
// the stop has not begun).
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.logPath)
	if p.stopAt >= 0 && int64(len(b)) > p.stopAt {
		b = b[:p.stopAt]
	}
	return string(b)
}

// stop sends SIGTERM and waits; whatever of the process and its
// descendants is left after the timeout is killed.
func (p *proc) stop(timeout time.Duration) {
	if fi, err := os.Stat(p.logPath); err == nil {
		p.stopAt = fi.Size()
	}
	desc := descendants(p.pid)
	if p.alive() {
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(timeout)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
	}
	for _, d := range desc {
		for running(d) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if running(d) {
			_ = syscall.Kill(d, syscall.SIGKILL)
		}
	}
}

// descendants lists every process below pid, from /proc/<pid>/task/*/children.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != "Z"
}

type procStat struct {
	state        string
	utime, stime uint64 // clock ticks
}

// readStat reads state, utime and stime from /proc/<pid>/stat (the whole
// thread group; children are not included).
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, err
	}
	return procStat{state: f[0], utime: u, stime: s}, nil
}

// cpuMicros is the process's utime+stime in microseconds.
func cpuMicros(pid int) (float64, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.utime+st.stime) * 1e6 / float64(clockTicks), nil
}

// wakeUps is the voluntary context switches of every thread of the
// process, from /proc/<pid>/task/*/status: the times one of its threads
// went to sleep waiting for something (an epoll_wait, a futex) and so was
// woken up again. A thread that exits takes its count with it.
func wakeUps(pid int) (int64, error) {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, d := range dirs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, d.Name()))
		if err != nil {
			continue // the thread has exited
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/task/%s/status: %v", pid, d.Name(), err)
				}
				sum += n
			}
		}
	}
	return sum, nil
}

// vmRSS is VmRSS from /proc/<pid>/status, in kB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// clockTicks is the kernel's USER_HZ (sysconf(_SC_CLK_TCK)), read from
// AT_CLKTCK in /proc/self/auxv; 100 if that cannot be read.
var clockTicks = func() uint64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil {
		for i := 0; i+16 <= len(b); i += 16 {
			k := binary.NativeEndian.Uint64(b[i:])
			v := binary.NativeEndian.Uint64(b[i+8:])
			if k == 17 && v > 0 { // AT_CLKTCK
				return v
			}
		}
	}
	return 100
}()

// freePort asks the kernel for a free port on 127.0.0.1. Every start of a
// setup gets its own, so no TIME_WAIT of an earlier run is in the way.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200, the process exits or the
// timeout passes.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !p.alive() {
			return fmt.Errorf("exited before answering (%s)", p.exitStatus())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s: %v", url, timeout, last)
}

// connsPerProcess counts, for each pid, the established TCP sockets with
// local port port that the process holds (its fds matched by inode against
// /proc/net/tcp and tcp6).
func connsPerProcess(port int, pids []int) map[int]int64 {
	est := tcpSockets(port, "01") // 01: ESTABLISHED
	out := map[int]int64{}
	for _, pid := range pids {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if target, err := os.Readlink(fd); err == nil && est[target] {
				out[pid]++
			}
		}
	}
	return out
}

// tcpSockets is the TCP sockets with local port port in state (hex, as
// in /proc/net/tcp and tcp6), by the name of their fds: "socket:[inode]".
func tcpSockets(port int, state string) map[string]bool {
	out := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != state {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				out["socket:["+fs[9]+"]"] = true
			}
		}
	}
	return out
}

// waitListening polls until n sockets listen on port (0A: LISTEN), the
// process exits or the timeout passes. Under SO_REUSEPORT the kernel
// hashes a connection to one of the sockets listening then: a worker that
// listens late gets none of the connections opened before.
func waitListening(ctx context.Context, p *proc, port, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := len(tcpSockets(port, "0A"))
		switch {
		case got >= n:
			return nil
		case !p.alive():
			return fmt.Errorf("exited before all workers listened (%s)", p.exitStatus())
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d sockets listening on port %d after %s", got, n, port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// machineTicks reads the first line of /proc/stat: the clock ticks all
// CPUs spent running processes (user, nice, system) and in total. Interrupt
// and softirq time is left out of the first: the kernel accounts the
// loopback traffic of the benchmark there, to no process.
func machineTicks() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i <= 2 { // user, nice, system
			busy += v
		}
	}
	return busy, total, true
}

// busyShare samples /proc/stat over d and returns the share of all CPUs'
// time that was not idle (0 to 1), or -1 if it cannot be read.
func busyShare(d time.Duration) float64 {
	b0, t0, ok0 := machineTicks()
	time.Sleep(d)
	b1, t1, ok1 := machineTicks()
	if !ok0 || !ok1 || t1 <= t0 {
		return -1
	}
	return float64(b1-b0) / float64(t1-t0)
}

// treeMicros is the CPU time of the given processes, in microseconds
// (those that are gone count as 0).
func treeMicros(pids []int) float64 {
	var t float64
	for _, pid := range pids {
		if c, err := cpuMicros(pid); err == nil {
			t += c
		}
	}
	return t
}
