package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runProfile measures herd rr under Connection: close load: an untraced
// run, one under strace -c, one under perf record (when installed).
func runProfile(ctx context.Context, e *env) (int, error) {
	_, errStrace := exec.LookPath("strace")
	_, errPerf := exec.LookPath("perf")
	if errStrace != nil && errPerf != nil {
		return 1, errors.New("-profile needs strace or perf on PATH (Debian: apt-get install strace linux-perf)")
	}
	d := e.cfg.profileDuration
	if busy := busyShare(time.Second); busy > otherLimit {
		fmt.Fprintf(os.Stderr, "bench: WARNING: %.0f%% of the CPUs were busy during the second before the start: the figures will be noisy\n", 100*busy)
	}
	l, err := e.start(ctx, allSetups[0], "profile")
	if err != nil {
		return 1, err
	}
	defer l.p.stop(10 * time.Second)
	if e.cfg.warmup > 0 {
		if _, _, err := e.measure(ctx, l, "warm-up", e.cfg.warmup, true, ""); err != nil {
			return 1, err
		}
	}
	out := os.Stdout
	fmt.Fprintf(out, "herd rr, %d workers, wrk -t%d -c%d -d%s -H 'Connection: close'\n\n", e.cfg.workers, e.cfg.threads, e.cfg.conns, wrkSeconds(d))

	w, cpu, err := e.measure(ctx, l, "untraced", d, true, "")
	if err != nil {
		return 1, err
	}
	base := cpu / float64(max(w.requests, 1))
	fmt.Fprintf(out, "untraced: %.0f req/s, %d connections, herd %.1f µs CPU per connection (%.0f%% of one core)\n",
		w.rps, w.requests, base, 100*cpu/float64(time.Duration(d).Microseconds()))
	if w.errors()+w.non2xx > 0 {
		fmt.Fprintf(out, "  errors: socket %v, non-2xx %d\n", w.sockErr, w.non2xx)
	}

	if errStrace == nil {
		if err := straceRun(ctx, e, l, d); err != nil {
			return 1, err
		}
	} else {
		fmt.Fprintf(out, "\nstrace not installed: no syscall counts\n")
	}
	if errPerf == nil {
		if err := perfRun(ctx, e, l, d); err != nil {
			return 1, err
		}
	} else {
		fmt.Fprintf(out, "\nperf not installed: no CPU profile\n")
	}
	if probs := logProblems(l.s, l.p.logText()); len(probs) > 0 {
		fmt.Fprintf(out, "\nProblems:\n  %s\n", strings.Join(probs, "\n  "))
	}
	return 0, nil
}

// attach starts a tracer on herd (argv without the pid) and waits a moment
// for it to attach to every thread.
func attach(ctx context.Context, argv []string, logPath string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(700 * time.Millisecond)
	return cmd, nil
}

func detach(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

var reStraceRow = regexp.MustCompile(`^\s*([0-9.]+)\s+([0-9.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\S+)\s*$`)

func straceRun(ctx context.Context, e *env, l *launch, d time.Duration) error {
	sum := filepath.Join(e.dir, "strace.txt")
	cmd, err := attach(ctx, []string{"strace", "-c", "-f", "-o", sum, "-p", strconv.Itoa(l.p.pid)}, filepath.Join(e.dir, "strace.log"))
	if err != nil {
		return err
	}
	w, _, err := e.measure(ctx, l, "under strace -c", d, true, "")
	detach(cmd)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(sum)
	if err != nil {
		return fmt.Errorf("strace: %v", err)
	}
	type row struct {
		name          string
		calls, errors int64
	}
	var rows []row
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		m := reStraceRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		calls, _ := strconv.ParseInt(m[4], 10, 64)
		errs, _ := strconv.ParseInt(m[5], 10, 64)
		if m[6] == "total" {
			total = calls
			continue
		}
		rows = append(rows, row{m[6], calls, errs})
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.calls - a.calls) })
	n := float64(max(w.requests, 1))
	out := os.Stdout
	fmt.Fprintf(out, "\nunder strace -c -f (herd slowed down: %.0f req/s): syscalls of herd per connection, %d connections\n", w.rps, w.requests)
	fmt.Fprintf(out, "  %-18s %10s %10s %10s\n", "syscall", "calls", "per conn", "errors")
	for _, r := range rows {
		fmt.Fprintf(out, "  %-18s %10d %10.2f %10d\n", r.name, r.calls, float64(r.calls)/n, r.errors)
	}
	fmt.Fprintf(out, "  %-18s %10d %10.2f\n", "total", total, float64(total)/n)
	fmt.Fprintf(out, "  (the trace also covers 0.7 s idle before the load: timers and the Go scheduler's own calls)\n")
	return nil
}

var rePerfRow = regexp.MustCompile(`^\s*([0-9.]+)%\s+([0-9.]+)%\s+\[(.)\]\s+(.+?)\s*$`)

// perfRow is one symbol of perf report: its inclusive and self share of
// herd's samples, in %.
type perfRow struct {
	total, self float64
	kernel      bool
	sym         string
}

// perfRun measures herd under perf record and shows where its time goes:
// the functions that take most of it, inclusive, herd's own among them,
// and self.
func perfRun(ctx context.Context, e *env, l *launch, d time.Duration) error {
	data := filepath.Join(e.dir, "perf.data")
	cmd, err := attach(ctx, []string{"perf", "record", "-F", "1999", "-g", "-o", data, "-p", strconv.Itoa(l.p.pid)}, filepath.Join(e.dir, "perf.log"))
	if err != nil {
		return err
	}
	w, cpu, err := e.measure(ctx, l, "under perf record", d, true, "")
	detach(cmd)
	if err != nil {
		return err
	}
	rep := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym", "-g", "none", "--percent-limit", "0")
	b, err := rep.Output()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(e.dir, "perf.log"))
		return fmt.Errorf("perf report: %v\n%s", err, log)
	}
	rows := parsePerfReport(b)
	var selfK, selfU float64
	var herdRows []perfRow
	for _, r := range rows {
		if r.kernel {
			selfK += r.self
		} else {
			selfU += r.self
		}
		if strings.HasPrefix(r.sym, "github.com/herd-sh/herd/") {
			herdRows = append(herdRows, r)
		}
	}
	perConn := cpu / float64(max(w.requests, 1))
	out := os.Stdout
	fmt.Fprintf(out, "\nunder perf record -g (%.0f req/s, herd %.1f µs CPU per connection): self time %.0f%% kernel, %.0f%% herd's process in user space\n",
		w.rps, perConn, selfK, selfU)
	inclusive := func(r perfRow) float64 { return r.total }
	self := func(r perfRow) float64 { return r.self }
	showPerfRows(out, "inclusive (the function and what it calls):", rows, inclusive, 2, 45, perConn)
	showPerfRows(out, "herd's own functions, inclusive (the hand-off path):", herdRows, inclusive, 0.5, 25, perConn)
	showPerfRows(out, "self:", rows, self, 0.5, 20, perConn)
	fmt.Fprintf(out, "  (perf samples cpu-clock; in a VM without a PMU, time spent with interrupts off in a context switch shows as finish_task_switch)\n")
	return nil
}

// parsePerfReport reads the rows of perf report --stdio --children.
func parsePerfReport(b []byte) []perfRow {
	var rows []perfRow
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := rePerfRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, _ := strconv.ParseFloat(m[1], 64)
		s, _ := strconv.ParseFloat(m[2], 64)
		rows = append(rows, perfRow{t, s, m[3] == "k", m[4]})
	}
	return rows
}

// showPerfRows prints under title the rows with the largest key, at most n
// of them and none below limit: the share in % and in µs per connection.
func showPerfRows(out io.Writer, title string, rows []perfRow, key func(perfRow) float64, limit float64, n int, perConn float64) {
	fmt.Fprintf(out, "  %s\n  %7s %8s  %s\n", title, "share", "µs/conn", "symbol ([k] kernel)")
	rs := slices.Clone(rows)
	slices.SortStableFunc(rs, func(a, b perfRow) int { return cmp.Compare(key(b), key(a)) })
	for i, r := range rs {
		if i >= n || key(r) < limit {
			break
		}
		sym := r.sym
		if r.kernel {
			sym = "[k] " + sym
		}
		if len(sym) > 100 {
			sym = sym[:100] + "..."
		}
		fmt.Fprintf(out, "  %6.1f%% %8.2f  %s\n", key(r), key(r)*perConn/100, sym)
	}
}
