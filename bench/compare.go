package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// result is what the repetitions of one setup gave.
type result struct {
	samples  []sample
	runs     []int // the repetition of each sample
	failures []string
	problems []string
}

// compare runs every setup -n times, in an order rotated by one each
// repetition, reports each run on stderr and prints the table on stdout.
// The exit status is 1 when a run of a setup failed.
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
				fmt.Fprintf(os.Stderr, "[%d/%d] %-14s FAILED: %v\n", rep+1, cfg.runs, s.name, err)
				continue
			}
			r.samples = append(r.samples, smp)
			r.runs = append(r.runs, rep+1)
			progress(rep, cfg.runs, s, smp)
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

// progress reports a run on stderr.
func progress(rep, runs int, s setup, smp sample) {
	fmt.Fprintf(os.Stderr, "[%d/%d] %-14s keep-alive %7.0f req/s p99 %s (conns %s), close %7.0f req/s p99 %s%s, others' CPU %.0f%%\n",
		rep+1, runs, s.name, smp.ka.rps, msNote(smp.ka.lat.p99, smp.ka.lat.ok), joinInts(smp.kaConns),
		smp.cl.rps, msNote(smp.cl.lat.p99, smp.cl.lat.ok), cpuNote(s, smp), 100*smp.other)
	if m := smp.mixed; m.ok {
		fmt.Fprintf(os.Stderr, "%*s mixed %7.0f req/s, fast p50 %s p99 %s max %s, slow p50 %s (%d fast, %d slow), others' CPU %.0f%%\n",
			len(fmt.Sprintf("[%d/%d] ", rep+1, runs))+14, "", m.rps, msNote(m.fastP50, m.fast > 0), msNote(m.fastP99, m.fast > 0),
			msNote(m.fastMax, m.fast > 0), msNote(m.slowP50, m.slow > 0), m.fast, m.slow, 100*m.other)
	}
}

// msNote is a latency in ms for the progress lines.
func msNote(d time.Duration, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}

// joinInts joins xs with "/".
func joinInts(xs []int64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, "/")
}

// cpuNote is the primary's CPU per connection of the close run, for the
// progress line.
func cpuNote(s setup, smp sample) string {
	if !s.primary || smp.cl.requests == 0 {
		return ""
	}
	return fmt.Sprintf(", primary %.1f µs/conn", smp.clCPU/float64(smp.cl.requests))
}
