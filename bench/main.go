// Command bench compares herd with Node's own cluster primary on the same
// small Node HTTP server (app.js: answers "ok" with its pid in X-Pid).
//
// Run it from the repository (it builds herd as the Dockerfile does,
// CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"; needs node and
// wrk on PATH, and fails at once naming what is missing):
//
//	go run ./bench                      # about 2.5 minutes on 2 CPUs
//	go run ./bench -d 5s -n 5 -raw /tmp/wrk.txt
//	go run ./bench -setups herd-rr,node-rr
//	go run ./bench -profile             # where herd rr's time goes
//	go run ./bench -keep                # keep herd's and Node's logs
//
// Five setups, each on 127.0.0.1 only, each on a fresh port:
//
//	herd-rr    HERD_SCHED_POLICY=rr HERD_WORKERS=2 HERD_HEALTH_ADDR=off herd -- node app.js
//	herd-none  the same with HERD_SCHED_POLICY=none (the workers share herd's socket)
//	node-rr    NODE_CLUSTER_SCHED_POLICY=rr node node_primary.js (Node's own primary, 2 workers)
//	node-none  NODE_CLUSTER_SCHED_POLICY=none node node_primary.js
//	single     node app.js (one process, no primary)
//
// Each start of a setup waits until the port answers 200, warms up with
// wrk for -warmup (Connection: close, discarded), then runs wrk -t -c -d
// twice, keep-alive and with "Connection: close", then a short spread run
// (-spread, Connection: close, with spread.lua counting the responses per
// X-Pid), then stops the setup with SIGTERM. The whole is repeated -n times;
// every repetition starts every setup once, in an order rotated by one each
// time, so noise and drift hit all setups alike. The table shows the median
// over the repetitions of each figure, separately.
//
// How to read the table:
//
//   - req/s: wrk's Requests/sec.
//   - primary CPU µs/conn: the primary's (herd's or node_primary.js's)
//     utime+stime from /proc/<pid>/stat just before and just after the wrk
//     run (clock ticks, converted with AT_CLKTCK; one tick is 10 ms, so the
//     note under the table gives the resolution per connection). Under
//     Connection: close it is divided by wrk's request count, which is the
//     number of connections handed off (each request is one connection).
//     Under keep-alive it is divided by wrk's connection count (-c): the
//     primary's whole cost of a keep-alive run, per connection opened.
//   - primary CPU %: the same CPU time over the run's wall time.
//   - primary RSS: VmRSS of the primary at the end of the close run.
//   - keep-alive conns per worker: halfway through the keep-alive run, the
//     established sockets on the port that each worker holds (its fds
//     matched against /proc/net/tcp), largest first; how wrk's -c
//     connections landed, which bounds keep-alive req/s. A primary that
//     still holds client sockets then is listed as a problem.
//   - spread: the share of the spread run's connections each worker answered,
//     largest first, and the largest deviation of a worker from an even share.
//   - other processes' CPU: the machine's user+system time in /proc/stat
//     during the measured runs, less what wrk, the primary and the workers
//     used, as a share of all CPUs (the larger of the two runs; approximate
//     within a few %). Above 10% the run is listed as noisy.
//   - errors: wrk's socket errors plus non-2xx responses over all measured
//     runs of all repetitions (a sum, not a median). Any such error, any line
//     at WARN or ERROR level (or a worker exit) in herd's log, any stderr
//     output from node_primary.js and any crash is listed under the table.
//
// Numbers are medians per figure (each rank of a per-worker list too), so
// a column need not add up. The benchmark warns when the CPUs were busy
// before it started: other load on a 2-CPU machine moves every figure.
//
// Under the table: herd rr against Node's rr primary (CPU per connection,
// requests/s and RSS as ratios), and herd none against Node's none primary.
// The exit status is 1 when a setup could not be started or measured, or
// died during a run.
//
// -profile runs herd rr alone under Connection: close load and shows where
// its time goes: first an untraced run (CPU µs per connection), then one
// under `strace -c -f -p <herd>` (syscalls per connection; strace slows herd
// down a lot, so only the counts are meaningful, not the times), then, when
// perf is installed, one under `perf record -g -p <herd>`: herd's functions
// and the kernel's, inclusive and self, as a share of herd's CPU and in µs
// per connection. herd has no pprof endpoint; perf reads the symbols of the
// freshly built binary.
package main

import (
	"context"
	"embed"
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
	"strings"
	"syscall"
	"time"
)

//go:embed app.js node_primary.js spread.lua
var files embed.FS

type config struct {
	duration, warmup, spread time.Duration
	conns, threads, runs     int
	workers                  int
	setups                   string
	raw                      string
	herd                     string
	keep                     bool
	profile                  bool
	profileDuration          time.Duration
}

type setup struct {
	key, name string
	primary   bool // the started process is a primary (herd or Node's)
	herd      bool
	argv      func(e *env) []string
	vars      func(e *env) []string
}

// env is what every launch needs: the temporary directory with herd and
// the Node files, and the settings.
type env struct {
	cfg     config
	dir     string
	herdBin string
	raw     io.Writer
}

var allSetups = []setup{
	{key: "herd-rr", name: "herd rr", primary: true, herd: true,
		argv: func(e *env) []string { return []string{e.herdBin, "--", "node", e.file("app.js")} },
		vars: func(e *env) []string { return e.herdVars("rr") }},
	{key: "herd-none", name: "herd none", primary: true, herd: true,
		argv: func(e *env) []string { return []string{e.herdBin, "--", "node", e.file("app.js")} },
		vars: func(e *env) []string { return e.herdVars("none") }},
	{key: "node-rr", name: "node rr", primary: true,
		argv: func(e *env) []string { return []string{"node", e.file("node_primary.js")} },
		vars: func(e *env) []string { return e.nodeVars("rr") }},
	{key: "node-none", name: "node none", primary: true,
		argv: func(e *env) []string { return []string{"node", e.file("node_primary.js")} },
		vars: func(e *env) []string { return e.nodeVars("none") }},
	{key: "single", name: "single",
		argv: func(e *env) []string { return []string{"node", e.file("app.js")} },
		vars: func(e *env) []string { return nil }},
}

func (e *env) file(name string) string { return filepath.Join(e.dir, name) }

func (e *env) herdVars(policy string) []string {
	return []string{
		"HERD_SCHED_POLICY=" + policy,
		fmt.Sprintf("HERD_WORKERS=%d", e.cfg.workers),
		"HERD_HEALTH_ADDR=off",
		"HERD_TERMINATION_LOG=off",
	}
}

func (e *env) nodeVars(policy string) []string {
	return []string{
		"NODE_CLUSTER_SCHED_POLICY=" + policy,
		fmt.Sprintf("BENCH_WORKERS=%d", e.cfg.workers),
	}
}

// baseEnv is the benchmark's environment without anything that would
// change how herd or Node's cluster behaves.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "HERD_"), strings.HasPrefix(k, "NODE_CLUSTER_"),
			strings.HasPrefix(k, "NODE_CHANNEL_"), k == "NODE_UNIQUE_ID",
			strings.HasPrefix(k, "LISTEN_"), k == "NOTIFY_SOCKET", strings.HasPrefix(k, "BENCH_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "d", 3*time.Second, "duration of each measured wrk run (whole seconds)")
	flag.IntVar(&cfg.conns, "c", 32, "wrk connections")
	flag.IntVar(&cfg.threads, "t", 2, "wrk threads")
	flag.IntVar(&cfg.runs, "n", 3, "repetitions of every setup; the table shows the medians")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "wrk warm-up after each start, discarded (0: none)")
	flag.DurationVar(&cfg.spread, "spread", 2*time.Second, "duration of the spread run that counts connections per worker (0: none)")
	flag.IntVar(&cfg.workers, "workers", 2, "workers of herd and of Node's primary")
	flag.StringVar(&cfg.setups, "setups", "herd-rr,herd-none,node-rr,node-none,single", "setups to run, comma-separated")
	flag.StringVar(&cfg.raw, "raw", "", "write every wrk command and its raw output to this file")
	flag.StringVar(&cfg.herd, "herd", "", "herd binary to use (default: go build the repository's)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (herd binary, Node files, logs)")
	flag.BoolVar(&cfg.profile, "profile", false, "profile herd rr under Connection: close load (strace -c, and perf when installed) instead of the comparison")
	flag.DurationVar(&cfg.profileDuration, "profile-d", 5*time.Second, "duration of each -profile run")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench [flags]\n\nRuns a small Node HTTP app under herd rr, herd none, Node's own cluster\nprimary (rr, none) and as a single process, with wrk; see go doc ./bench.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments: %s\n", strings.Join(flag.Args(), " "))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, cfg config) (int, error) {
	if cfg.conns < 1 || cfg.threads < 1 || cfg.threads > cfg.conns {
		return 2, fmt.Errorf("-t must be between 1 and -c (got -t %d -c %d)", cfg.threads, cfg.conns)
	}
	if cfg.runs < 1 || cfg.workers < 1 {
		return 2, fmt.Errorf("-n and -workers must be at least 1")
	}
	if cfg.duration < time.Second {
		return 2, fmt.Errorf("-d must be at least 1s (wrk counts whole seconds)")
	}
	var setups []setup
	for _, k := range strings.Split(cfg.setups, ",") {
		i := slices.IndexFunc(allSetups, func(s setup) bool { return s.key == strings.TrimSpace(k) })
		if i < 0 {
			return 2, fmt.Errorf("-setups: unknown setup %q (known: herd-rr, herd-none, node-rr, node-none, single)", k)
		}
		setups = append(setups, allSetups[i])
	}
	if cfg.profile {
		setups = allSetups[:1]
	}

	// What must be installed.
	if _, err := exec.LookPath("node"); err != nil {
		return 1, errors.New("node not found on PATH: install Node.js (Debian: apt-get install nodejs)")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return 1, errors.New("wrk not found on PATH: install it (Debian: apt-get install wrk)")
	}

	dir, err := os.MkdirTemp("", "herd-bench-")
	if err != nil {
		return 1, err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "bench: files and logs in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	for _, name := range []string{"app.js", "node_primary.js", "spread.lua"} {
		b, _ := files.ReadFile(name)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return 1, err
		}
	}
	e := &env{cfg: cfg, dir: dir, raw: io.Discard}
	needHerd := slices.ContainsFunc(setups, func(s setup) bool { return s.herd })
	if needHerd {
		if e.herdBin, err = herdBinary(ctx, cfg.herd, dir, cfg.profile); err != nil {
			return 1, err
		}
	}
	if cfg.raw != "" {
		f, err := os.Create(cfg.raw)
		if err != nil {
			return 1, err
		}
		defer f.Close()
		e.raw = f
	}
	if cfg.profile {
		return runProfile(ctx, e)
	}
	return compare(ctx, e, setups)
}

// herdBinary builds herd from the module that contains the working
// directory, or checks the binary given with -herd. It builds herd as it
// ships (the Dockerfile's flags: static, no cgo, stripped); with symbols
// kept for a profile, perf needs them.
func herdBinary(ctx context.Context, given, dir string, symbols bool) (string, error) {
	if given != "" {
		p, err := filepath.Abs(given)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("-herd: %v", err)
		}
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("cannot find herd's go.mod from here (go env GOMOD: %q, %v): run from the repository or pass -herd", gomod, err)
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if first, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(first) != "module github.com/herd-sh/herd" {
		return "", fmt.Errorf("%s is not herd's module: run from the repository or pass -herd", gomod)
	}
	bin := filepath.Join(dir, "herd")
	// A default build links libc for the net package's resolver, which
	// alone adds over a megabyte to the RSS.
	ldflags := "-s -w"
	if symbols {
		ldflags = ""
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build herd: %v\n%s", err, out)
	}
	return bin, nil
}

// launch is one start of a setup: the process, its port, its URL.
type launch struct {
	s    setup
	p    *proc
	url  string
	port int
}

func (e *env) start(ctx context.Context, s setup, tag string) (*launch, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := append(baseEnv(), s.vars(e)...)
	vars = append(vars, fmt.Sprintf("BENCH_PORT=%d", port))
	logPath := filepath.Join(e.dir, tag+".log")
	p, err := startProc(s.argv(e), vars, e.dir, logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %v", s.name, err)
	}
	l := &launch{s: s, p: p, port: port, url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := waitHTTP(ctx, p, l.url, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, fmt.Errorf("%s: %v\n%s", s.name, err, tail(p.logText(), 20))
	}
	return l, nil
}

// measure runs wrk once against the launch and reads the primary's CPU
// time around it.
func (e *env) measure(ctx context.Context, l *launch, label string, d time.Duration, closeConn bool, script string) (wrkRun, float64, error) {
	w, cpu, _, err := e.measureMid(ctx, l, label, d, closeConn, script, nil)
	return w, cpu, err
}

// measureMid is measure that also calls mid halfway through the run, and
// also returns the share of the machine's CPU time that went to processes
// other than wrk, the primary and its workers during the run (-1: unknown).
func (e *env) measureMid(ctx context.Context, l *launch, label string, d time.Duration, closeConn bool, script string, mid func()) (wrkRun, float64, float64, error) {
	var before float64
	if l.s.primary {
		c, err := cpuMicros(l.p.pid)
		if err != nil {
			return wrkRun{}, 0, -1, fmt.Errorf("%s died before %s: %s", l.s.name, label, l.p.exitStatus())
		}
		before = c
	}
	tree := append([]int{l.p.pid}, descendants(l.p.pid)...)
	tree0 := treeMicros(tree)
	busy0, total0, ok0 := machineTicks()
	midDone := make(chan struct{})
	go func() {
		defer close(midDone)
		if mid != nil {
			select {
			case <-time.After(d / 2):
				mid()
			case <-ctx.Done():
			}
		}
	}()
	w, err := runWrk(ctx, l.url, e.cfg.threads, e.cfg.conns, d, closeConn, script)
	busy1, total1, ok1 := machineTicks()
	tree1 := treeMicros(tree)
	<-midDone
	fmt.Fprintf(e.raw, "=== %s: %s\n$ %s\n%s\n", l.s.name, label, strings.Join(w.args, " "), w.output)
	if err != nil {
		return w, 0, -1, err
	}
	if !l.p.alive() {
		return w, 0, -1, fmt.Errorf("%s died during %s: %s\n%s", l.s.name, label, l.p.exitStatus(), tail(l.p.logText(), 20))
	}
	var cpu float64
	if l.s.primary {
		after, err := cpuMicros(l.p.pid)
		if err != nil {
			return w, 0, -1, fmt.Errorf("%s died during %s", l.s.name, label)
		}
		cpu = after - before
	}
	other := -1.0
	if ok0 && ok1 && total1 > total0 {
		tick := 1e6 / float64(clockTicks)
		ours := (tree1 - tree0) + w.cpu
		other = max(0, (float64(busy1-busy0)*tick-ours)/(float64(total1-total0)*tick))
	}
	return w, cpu, other, nil
}

// sample is what one start of a setup measured.
type sample struct {
	ka, cl       wrkRun
	kaCPU, clCPU float64 // µs of the primary's CPU during the run
	rssKB        int64
	spread       []int64 // responses per worker, largest first, padded with zeros
	kaConns      []int64 // keep-alive connections per worker halfway through the run, largest first
	held         int64   // of those, held by the primary itself
	errs         int64
	other        float64 // the larger share of the CPUs used by other processes in the two measured runs
}

// otherLimit is the share of the CPUs other processes may use during a
// measured run before the run is called noisy.
const otherLimit = 0.10

func (e *env) once(ctx context.Context, s setup, rep int) (smp sample, problems []string, err error) {
	tag := fmt.Sprintf("%s-%d", s.key, rep+1)
	l, err := e.start(ctx, s, tag)
	if err != nil {
		return smp, nil, err
	}
	defer func() {
		l.p.stop(10 * time.Second)
		problems = append(problems, logProblems(s, l.p.logText())...)
	}()
	note := func(label string, w wrkRun) {
		if w.errors() > 0 || w.non2xx > 0 {
			problems = append(problems, fmt.Sprintf("%s: socket errors connect %d, read %d, write %d, timeout %d; non-2xx %d (of %d requests)",
				label, w.sockErr[0], w.sockErr[1], w.sockErr[2], w.sockErr[3], w.non2xx, w.requests))
		}
	}
	if e.cfg.warmup > 0 {
		w, _, err := e.measure(ctx, l, "warm-up", e.cfg.warmup, true, "")
		if err != nil {
			return smp, problems, err
		}
		note("warm-up (not in the table)", w)
	}
	want := e.cfg.workers
	if !s.primary {
		want = 1
	}
	countConns := func() {
		workers := []int{l.p.pid}
		if s.primary {
			workers = descendants(l.p.pid)
		}
		pids := workers
		if s.primary {
			pids = append(slices.Clone(workers), l.p.pid)
		}
		counts := connsPerProcess(l.port, pids)
		for _, pid := range workers {
			smp.kaConns = append(smp.kaConns, counts[pid])
		}
		if s.primary {
			smp.held = counts[l.p.pid]
		}
		slices.Sort(smp.kaConns)
		slices.Reverse(smp.kaConns)
	}
	var other float64
	if smp.ka, smp.kaCPU, other, err = e.measureMid(ctx, l, "keep-alive", e.cfg.duration, false, "", countConns); err != nil {
		return smp, problems, err
	}
	smp.other = max(smp.other, other)
	note("keep-alive", smp.ka)
	if smp.held > 0 {
		problems = append(problems, fmt.Sprintf("keep-alive: halfway through, the primary itself held %d of the client connections", smp.held))
	}
	var found int64
	for _, n := range smp.kaConns {
		found += n
	}
	if found+smp.held != int64(e.cfg.conns) {
		problems = append(problems, fmt.Sprintf("keep-alive: halfway through, %d of wrk's %d connections were found established in the workers and the primary", found+smp.held, e.cfg.conns))
	}
	if len(smp.kaConns) != want {
		problems = append(problems, fmt.Sprintf("keep-alive: %d worker processes found, %d expected", len(smp.kaConns), want))
	}
	if smp.cl, smp.clCPU, other, err = e.measureMid(ctx, l, "Connection: close", e.cfg.duration, true, "", nil); err != nil {
		return smp, problems, err
	}
	smp.other = max(smp.other, other)
	note("Connection: close", smp.cl)
	if s.primary {
		if smp.rssKB, err = vmRSS(l.p.pid); err != nil {
			return smp, problems, err
		}
	}
	smp.errs = smp.ka.errors() + smp.ka.non2xx + smp.cl.errors() + smp.cl.non2xx
	if e.cfg.spread > 0 {
		w, _, err := e.measure(ctx, l, "spread", e.cfg.spread, true, e.file("spread.lua"))
		if err != nil {
			return smp, problems, err
		}
		note("spread", w)
		smp.errs += w.errors() + w.non2xx
		for _, n := range w.spread {
			smp.spread = append(smp.spread, n)
		}
		slices.Sort(smp.spread)
		slices.Reverse(smp.spread)
		for len(smp.spread) < want {
			smp.spread = append(smp.spread, 0)
		}
	}
	return smp, problems, nil
}

// logProblems picks what in a setup's output (before its stop) says
// something went wrong: herd's WARN and ERROR lines and worker exits, and
// any output at all from Node.
func logProblems(s setup, log string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		if s.herd && !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") &&
			!strings.Contains(line, `msg="worker exited"`) {
			continue
		}
		out = append(out, "log: "+line)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type result struct {
	samples  []sample
	runs     []int // the repetition of each sample
	failures []string
	problems []string
}

func compare(ctx context.Context, e *env, setups []setup) (int, error) {
	cfg := e.cfg
	results := make(map[string]*result)
	for _, s := range setups {
		results[s.key] = &result{}
	}
	busy := busyShare(time.Second)
	if busy > otherLimit {
		fmt.Fprintf(os.Stderr, "bench: WARNING: %.0f%% of the CPUs were busy during the second before the start: the figures will be noisy\n", 100*busy)
	}
	start := time.Now()
	for rep := range cfg.runs {
		for i := range setups {
			s := setups[(i+rep)%len(setups)]
			r := results[s.key]
			smp, problems, err := e.once(ctx, s, rep)
			for _, p := range problems {
				r.problems = append(r.problems, fmt.Sprintf("run %d: %s", rep+1, p))
			}
			if ctx.Err() != nil {
				return 130, errors.New("interrupted")
			}
			if err != nil {
				r.failures = append(r.failures, fmt.Sprintf("run %d: %v", rep+1, err))
				fmt.Fprintf(os.Stderr, "[%d/%d] %-9s FAILED: %v\n", rep+1, cfg.runs, s.name, err)
				continue
			}
			r.samples = append(r.samples, smp)
			r.runs = append(r.runs, rep+1)
			fmt.Fprintf(os.Stderr, "[%d/%d] %-9s keep-alive %7.0f req/s (conns %s), close %7.0f req/s%s, others' CPU %.0f%%\n",
				rep+1, cfg.runs, s.name, smp.ka.rps, joinInts(smp.kaConns), smp.cl.rps, cpuNote(s, smp), 100*smp.other)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d runs in %s\n\n", cfg.runs*len(setups), time.Since(start).Round(time.Second))
	printTable(os.Stdout, e, setups, results, busy)

	code := 0
	for _, s := range setups {
		if len(results[s.key].failures) > 0 {
			code = 1
		}
	}
	return code, nil
}

func joinInts(xs []int64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, "/")
}

func cpuNote(s setup, smp sample) string {
	if !s.primary || smp.cl.requests == 0 {
		return ""
	}
	return fmt.Sprintf(", primary %.1f µs/conn", smp.clCPU/float64(smp.cl.requests))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat is one figure of a setup: the median over its samples; ok is false
// when there is none.
func stat(r *result, f func(sample) (float64, bool)) (float64, bool) {
	var xs []float64
	for _, s := range r.samples {
		if v, ok := f(s); ok {
			xs = append(xs, v)
		}
	}
	return median(xs), len(xs) > 0
}

func spreadShares(s sample) []float64 {
	var total int64
	for _, n := range s.spread {
		total += n
	}
	out := make([]float64, len(s.spread))
	for i, n := range s.spread {
		if total > 0 {
			out[i] = 100 * float64(n) / float64(total)
		}
	}
	return out
}

func printTable(w io.Writer, e *env, setups []setup, results map[string]*result, busy float64) {
	cfg := e.cfg
	nodeV, _ := exec.Command("node", "-v").Output()
	fmt.Fprintf(w, "herd benchmark: node %s, %s, %s, %d CPUs, %d workers, wrk -t%d -c%d -d%s, median of %d runs\n",
		strings.TrimSpace(string(nodeV)), wrkVersion(), runtime.Version(), runtime.NumCPU(), cfg.workers,
		cfg.threads, cfg.conns, wrkSeconds(cfg.duration), cfg.runs)
	if busy >= 0 {
		fmt.Fprintf(w, "CPUs busy in the second before the start: %.0f%%%s\n", 100*busy, map[bool]string{true: " (other load: noisy figures)"}[busy > otherLimit])
	}
	fmt.Fprintln(w)

	const lw = 42
	fmt.Fprintf(w, "%-*s", lw, "")
	for _, s := range setups {
		fmt.Fprintf(w, "%11s", s.name)
	}
	fmt.Fprintln(w)
	row := func(label string, cell func(s setup, r *result) string) {
		fmt.Fprintf(w, "%-*s", lw, label)
		for _, s := range setups {
			r := results[s.key]
			c := "n/a"
			if len(r.samples) > 0 {
				c = cell(s, r)
			}
			fmt.Fprintf(w, "%11s", c)
		}
		fmt.Fprintln(w)
	}
	num := func(f func(sample) (float64, bool), format string, primaryOnly bool) func(setup, *result) string {
		return func(s setup, r *result) string {
			if primaryOnly && !s.primary {
				return "-"
			}
			v, ok := stat(r, f)
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf(format, v)
		}
	}
	rps := func(ka bool) func(sample) (float64, bool) {
		return func(s sample) (float64, bool) {
			if ka {
				return s.ka.rps, true
			}
			return s.cl.rps, true
		}
	}
	clPerConn := func(s sample) (float64, bool) { return s.clCPU / float64(s.cl.requests), s.cl.requests > 0 }
	kaPerConn := func(s sample) (float64, bool) { return s.kaCPU / float64(cfg.conns), true }
	clPct := func(s sample) (float64, bool) { return 100 * s.clCPU / float64(cfg.duration.Microseconds()), true }
	rss := func(s sample) (float64, bool) { return float64(s.rssKB) / 1024, true }

	row("req/s, keep-alive", num(rps(true), "%.0f", false))
	row("req/s, Connection: close", num(rps(false), "%.0f", false))
	row("primary CPU µs/conn, close (÷ requests)", num(clPerConn, "%.1f", true))
	row(fmt.Sprintf("primary CPU µs/conn, keep-alive (÷ %d)", cfg.conns), num(kaPerConn, "%.1f", true))
	row("primary CPU, close (% of one core)", num(clPct, "%.1f", true))
	row("primary RSS MB (VmRSS after close run)", num(rss, "%.1f", true))
	// ranks shows the median of each rank (largest, second, ...) of a
	// per-worker list, joined with "/".
	ranks := func(list func(sample) []float64) func(setup, *result) string {
		return func(s setup, r *result) string {
			var parts []string
			for i := 0; ; i++ {
				v, ok := stat(r, func(s sample) (float64, bool) {
					l := list(s)
					if i < len(l) {
						return l[i], true
					}
					return 0, false
				})
				if !ok {
					break
				}
				parts = append(parts, fmt.Sprintf("%.0f", v))
			}
			return strings.Join(parts, "/")
		}
	}
	row("keep-alive conns per worker (mid-run)", ranks(func(s sample) []float64 {
		out := make([]float64, len(s.kaConns))
		for i, n := range s.kaConns {
			out[i] = float64(n)
		}
		return out
	}))
	if cfg.spread > 0 {
		row("spread % per worker (close)", ranks(spreadShares))
		row("spread: largest deviation from even", func(s setup, r *result) string {
			v, ok := stat(r, func(s sample) (float64, bool) {
				sh := spreadShares(s)
				if len(sh) == 0 {
					return 0, false
				}
				even := 100 / float64(len(sh))
				var dev float64
				for _, x := range sh {
					dev = max(dev, abs(x-even)/even)
				}
				return 100 * dev, true
			})
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf("±%.1f%%", v)
		})
		row("spread: connections counted", num(func(s sample) (float64, bool) {
			var t int64
			for _, n := range s.spread {
				t += n
			}
			return float64(t), true
		}, "%.0f", false))
	}
	row("other processes' CPU during runs (%)", num(func(s sample) (float64, bool) { return 100 * s.other, s.other >= 0 }, "%.0f", false))
	row("errors: socket + non-2xx (sum, all runs)", func(s setup, r *result) string {
		var t int64
		for _, smp := range r.samples {
			t += smp.errs
		}
		return fmt.Sprint(t)
	})

	// The resolution of the CPU figures: one clock tick per connection.
	if v, ok := stat(results[setups[0].key], func(s sample) (float64, bool) { return float64(s.cl.requests), true }); ok && v > 0 {
		fmt.Fprintf(w, "\nCPU is read in clock ticks of %.0f ms: with %.0f requests per close run (%s), one tick is %.2f µs/conn.\n",
			1000/float64(clockTicks), v, setups[0].name, 1e6/float64(clockTicks)/v)
	}
	fmt.Fprintf(w, "Keep-alive CPU is the primary's whole CPU time in the run divided by wrk's %d connections (one tick: %.1f µs/conn).\n",
		cfg.conns, 1e6/float64(clockTicks)/float64(cfg.conns))

	// Ratios.
	ratio := func(a, b string, label string, f func(sample) (float64, bool), unit string, format string, target string) {
		ra, rb := results[a], results[b]
		if ra == nil || rb == nil {
			return
		}
		va, oka := stat(ra, f)
		vb, okb := stat(rb, f)
		if !oka || !okb || vb == 0 {
			return
		}
		fmt.Fprintf(w, "  %-34s "+format+"%s vs "+format+"%s = %.2f×%s\n", label, va, unit, vb, unit, va/vb, target)
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	if results["herd-rr"] != nil && results["node-rr"] != nil {
		fmt.Fprintf(w, "\nherd rr vs node rr:\n")
		ratio("herd-rr", "node-rr", "primary CPU per conn, close", clPerConn, " µs", "%.1f", "")
		ratio("herd-rr", "node-rr", "req/s, Connection: close", rps(false), "", "%.0f", "")
		ratio("herd-rr", "node-rr", "req/s, keep-alive", rps(true), "", "%.0f", "")
		ratio("herd-rr", "node-rr", "primary RSS", rss, " MB", "%.1f", "")
		hc, ok1 := stat(results["herd-rr"], clPerConn)
		nc, ok2 := stat(results["node-rr"], clPerConn)
		hr, ok3 := stat(results["herd-rr"], rps(false))
		nr, ok4 := stat(results["node-rr"], rps(false))
		hm, ok5 := stat(results["herd-rr"], rss)
		if ok1 && ok2 && ok3 && ok4 && ok5 && nc > 0 {
			fmt.Fprintf(w, "  issue 5 targets: CPU/conn ≤ 0.6× node's: %s; close req/s ≥ node rr's: %s; RSS ≤ 15 MB: %s\n",
				yes(hc <= 0.6*nc), yes(hr >= nr), yes(hm <= 15))
		}
	}
	if results["herd-none"] != nil && results["node-none"] != nil {
		fmt.Fprintf(w, "\nherd none vs node none:\n")
		ratio("herd-none", "node-none", "req/s, Connection: close", rps(false), "", "%.0f", "")
		ratio("herd-none", "node-none", "req/s, keep-alive", rps(true), "", "%.0f", "")
		ratio("herd-none", "node-none", "primary RSS", rss, " MB", "%.1f", "")
	}

	var any bool
	for _, s := range setups {
		r := results[s.key]
		var noisy []string
		for i, smp := range r.samples {
			if smp.other > otherLimit {
				noisy = append(noisy, fmt.Sprintf("run %d: %.0f%%", r.runs[i], 100*smp.other))
			}
		}
		if len(r.failures)+len(r.problems)+len(noisy) == 0 {
			continue
		}
		if !any {
			fmt.Fprintf(w, "\nProblems:\n")
			any = true
		}
		for _, f := range r.failures {
			fmt.Fprintf(w, "  %s: FAILED %s\n", s.name, strings.ReplaceAll(f, "\n", "\n      "))
		}
		for _, p := range r.problems {
			fmt.Fprintf(w, "  %s: %s\n", s.name, p)
		}
		if len(noisy) > 0 {
			fmt.Fprintf(w, "  %s: noisy, other processes used more than %.0f%% of the CPUs (%s)\n", s.name, 100*otherLimit, strings.Join(noisy, ", "))
		}
	}
	if !any {
		fmt.Fprintf(w, "\nNo errors, non-2xx responses, crashes, warnings or noisy runs.\n")
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
