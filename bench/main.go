// Command bench compares herd with Node's own cluster primary on the same
// small Node HTTP server (app.js: answers "ok" with its pid in X-Pid; on
// /work?ms=N it first spends N ms of CPU in a busy loop).
//
// Run it from the repository (it builds herd as the Dockerfile does,
// CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"; needs node and
// wrk on PATH, and fails at once naming what is missing):
//
//	go run ./bench                      # about 3 minutes on 2 CPUs
//	go run ./bench -d 5s -n 5 -raw /tmp/wrk.txt
//	go run ./bench -setups herd-rr,node-rr
//	go run ./bench -mixed               # and fast requests among slow ones: about 4.5 minutes
//	go run ./bench -mixed -mixed-slow 10 -mixed-ms 50 -mixed-keepalive
//	go run ./bench -profile             # where herd rr's time goes
//	go run ./bench -keep                # keep herd's and Node's logs
//
// Six setups, each on 127.0.0.1 only, each on a fresh port:
//
//	herd-rr         HERD_SCHED_POLICY=rr HERD_WORKERS=2 HERD_HEALTH_ADDR=off herd -- node app.js
//	herd-none       the same with HERD_SCHED_POLICY=none (the workers share herd's socket)
//	herd-reuseport  the same with HERD_SCHED_POLICY=reuseport (one SO_REUSEPORT socket per worker)
//	node-rr         NODE_CLUSTER_SCHED_POLICY=rr node node_primary.js (Node's own primary, 2 workers)
//	node-none       NODE_CLUSTER_SCHED_POLICY=none node node_primary.js
//	single          node app.js (one process, no primary)
//
// Each start of a setup waits until the port answers 200 (under reuseport
// also until every worker's socket listens: the kernel hashes a connection
// only to the sockets listening then), warms up with
// wrk for -warmup (Connection: close, discarded), then runs wrk -t -c -d
// --latency twice, keep-alive and with "Connection: close", then a short
// spread run (-spread, Connection: close, with spread.lua counting the
// responses per X-Pid), then with -mixed the mixed run (below), then stops
// the setup with SIGTERM. The whole is repeated -n times;
// every repetition starts every setup once, in an order rotated by one each
// time, so noise and drift hit all setups alike. The table shows the median
// over the repetitions of each figure, separately.
//
// How to read the table:
//
//   - req/s: wrk's Requests/sec.
//   - latency ms p50, p99: the 50% and 99% lines of wrk's "Latency
//     Distribution"; max: the Max column of its thread stats' "Latency"
//     line, the slowest response of the run (wrk prints us, ms, s or m; all
//     are read). wrk times a request from its write to the end of the
//     response: under Connection: close the wait for herd's or a worker's
//     accept and for the hand-off counts, the TCP connect before the write
//     (done by the kernel) does not. Each is the median over the
//     repetitions, the max too.
//   - primary CPU µs/conn: the primary's (herd's or node_primary.js's)
//     utime+stime from /proc/<pid>/stat just before and just after the wrk
//     run (clock ticks, converted with AT_CLKTCK; one tick is 10 ms, so the
//     note under the table gives the resolution per connection). Under
//     Connection: close it is divided by wrk's request count, which is the
//     number of connections handed off (each request is one connection).
//     Under keep-alive it is divided by wrk's connection count (-c): the
//     primary's whole cost of a keep-alive run, per connection opened.
//   - primary wake-ups per conn: the voluntary context switches of all the
//     primary's threads (/proc/<pid>/task/*/status) around the close run,
//     divided by wrk's request count: how often the primary went to sleep
//     and had to be woken again per connection handed off.
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
//     within a few %). Above 10% in these or in the mixed run, the run is
//     listed as noisy.
//   - errors: wrk's socket errors plus non-2xx responses over all measured
//     runs of all repetitions (a sum, not a median). Any such error, any line
//     at WARN or ERROR level (or a worker exit) in herd's log, any stderr
//     output from node_primary.js and any crash is listed under the table.
//
// With -mixed, a second table: the mixed workload, run last in every start
// of a setup, so that its slow requests disturb none of the wrk runs.
// -mixed-c clients (default 32) in a closed loop (each sends its next
// request when the previous one is answered) for -mixed-d (default 5s);
// -mixed-slow % of the requests (default 5) are /work?ms=<-mixed-ms>
// (default 20: 20 ms of the worker's CPU), the others /. By default each
// request has a connection of its own (Connection: close): every request
// is then placed anew by herd, Node's primary or the kernel, which is where
// the policies differ; -mixed-keepalive keeps each client's connection
// instead. wrk cannot tell the kinds apart, so the generator is bench's own
// (mixed.go), and it times a request from before its connect to the end of
// the answer. The rows: requests/s of both kinds; for the fast requests
// p50, p99 and max (nearest rank over all of a run's fast requests); for
// the slow ones p50; the requests answered of each kind; other processes'
// CPU during the run (the generator's own CPU time counted as ours); failed
// requests (connect, read or non-200; a sum). Every figure is the median
// over the repetitions. With the defaults on 2 CPUs the clients keep the
// workers saturated (a slow request costs the CPU of about a hundred fast
// ones), so a fast request's latency is mostly its wait in a queue: at a
// worker busy with a slow request, or for herd's or Node's hand-off; a
// smaller -mixed-c is a lighter load. -mixed is off by default: it adds
// -mixed-d and a little to every start, about a minute and a half with
// the defaults.
//
// Numbers are medians per figure (each rank of a per-worker list too), so
// a column need not add up. The benchmark warns when the CPUs were busy
// before it started: other load on a 2-CPU machine moves every figure.
//
// Under the table: herd rr against Node's rr primary (CPU and wake-ups per
// connection, requests/s, latency p50 and p99, with -mixed the mixed run's
// requests/s and fast p99, and RSS, each as a ratio, then the targets:
// CPU per connection at most half Node's, close p50 within 5 % of Node's,
// close requests/s at least Node's, RSS at most 15 MB, judged at the run's
// -c), and herd none against Node's none primary.
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
	"slices"
	"strings"
	"syscall"
	"time"
)

//go:embed app.js node_primary.js spread.lua
var files embed.FS

// config is the command line: the flags below.
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
	mixed                    mixedConfig
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
	flag.StringVar(&cfg.setups, "setups", "herd-rr,herd-none,herd-reuseport,node-rr,node-none,single", "setups to run, comma-separated")
	flag.StringVar(&cfg.raw, "raw", "", "write every wrk command and its raw output, and each mixed run's figures, to this file")
	flag.StringVar(&cfg.herd, "herd", "", "herd binary to use (default: go build the repository's)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (herd binary, Node files, logs)")
	flag.BoolVar(&cfg.profile, "profile", false, "profile herd rr under Connection: close load (strace -c, and perf when installed) instead of the comparison")
	flag.DurationVar(&cfg.profileDuration, "profile-d", 5*time.Second, "duration of each -profile run")
	flag.BoolVar(&cfg.mixed.on, "mixed", false, "also run the mixed workload (fast requests and a share of slow ones) after the wrk runs of every start")
	flag.DurationVar(&cfg.mixed.duration, "mixed-d", 5*time.Second, "duration of each mixed run")
	flag.IntVar(&cfg.mixed.conns, "mixed-c", 32, "clients of the mixed run (closed loop: each sends its next request when the previous one is answered)")
	flag.Float64Var(&cfg.mixed.slowPct, "mixed-slow", 5, "share of slow requests in the mixed run, in %")
	flag.IntVar(&cfg.mixed.slowMs, "mixed-ms", 20, "CPU time a slow request spends in the worker, in ms")
	flag.BoolVar(&cfg.mixed.keepAlive, "mixed-keepalive", false, "mixed run over keep-alive connections (default: a new connection per request)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench [flags]\n\nRuns a small Node HTTP app under herd rr, none and reuseport, Node's own\ncluster primary (rr, none) and as a single process, with wrk (and with\n-mixed, a mix of fast and slow requests); see go doc ./bench.\n\n")
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

// run checks the flags and what must be installed, writes the Node files
// and herd to a temporary directory, and runs the comparison or the
// profile. It returns the exit status.
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
	if mc := cfg.mixed; mc.duration < 100*time.Millisecond || mc.conns < 1 || mc.slowPct < 0 || mc.slowPct > 100 || mc.slowMs < 0 {
		return 2, fmt.Errorf("-mixed-d must be at least 100ms, -mixed-c at least 1, -mixed-slow between 0 and 100, -mixed-ms not negative")
	}
	setups, err := selectSetups(cfg)
	if err != nil {
		return 2, err
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

// selectSetups picks the setups named by -setups, in that order; -profile
// runs herd rr alone.
func selectSetups(cfg config) ([]setup, error) {
	var setups []setup
	var known []string
	for _, s := range allSetups {
		known = append(known, s.key)
	}
	for _, k := range strings.Split(cfg.setups, ",") {
		i := slices.IndexFunc(allSetups, func(s setup) bool { return s.key == strings.TrimSpace(k) })
		if i < 0 {
			return nil, fmt.Errorf("-setups: unknown setup %q (known: %s)", k, strings.Join(known, ", "))
		}
		setups = append(setups, allSetups[i])
	}
	if cfg.profile {
		setups = allSetups[:1]
	}
	return setups, nil
}
