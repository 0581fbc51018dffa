package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	clWakeUps    int64   // the primary's voluntary context switches around the close run (-1: unknown)
	rssKB        int64
	spread       []int64 // responses per worker, largest first, padded with zeros
	kaConns      []int64 // keep-alive connections per worker halfway through the run, largest first
	held         int64   // of those, held by the primary itself
	errs         int64
	other        float64 // the larger share of the CPUs used by other processes in the two measured runs
	mixed        mixedStats
}

// noisy is the larger share of the CPUs that other processes used in the
// sample's measured runs and its mixed run.
func (s sample) noisy() float64 {
	if s.mixed.ok {
		return max(s.other, s.mixed.other)
	}
	return s.other
}

// otherLimit is the share of the CPUs other processes may use during a
// measured run before the run is called noisy.
const otherLimit = 0.10

// once starts setup s for repetition rep, measures it (warm-up, keep-alive,
// Connection: close, spread, mixed) and stops it. Besides the sample it returns
// what went wrong short of a failure (the setup's log included) and the
// failure, if any.
func (e *env) once(ctx context.Context, s setup, rep int) (sample, []string, error) {
	l, err := e.start(ctx, s, fmt.Sprintf("%s-%d", s.key, rep+1))
	if err != nil {
		return sample{}, nil, err
	}
	t := &trial{e: e, l: l, want: e.cfg.workers}
	if !s.primary {
		t.want = 1
	}
	err = t.run(ctx)
	l.p.stop(10 * time.Second)
	t.problems = append(t.problems, logProblems(s, l.p.logText())...)
	return t.smp, t.problems, err
}

// trial is one start of a setup under measurement: what it measured so far
// and the problems seen.
type trial struct {
	e        *env
	l        *launch
	want     int // worker processes expected
	smp      sample
	problems []string
}

// run runs the warm-up and the measured runs, in order, and stops at the
// first that fails.
func (t *trial) run(ctx context.Context) error {
	cfg := t.e.cfg
	if cfg.warmup > 0 {
		w, _, err := t.e.measure(ctx, t.l, "warm-up", cfg.warmup, true, "")
		if err != nil {
			return err
		}
		t.note("warm-up (not in the table)", w)
	}
	if err := t.keepAliveRun(ctx); err != nil {
		return err
	}
	if err := t.closeRun(ctx); err != nil {
		return err
	}
	t.smp.errs = t.smp.ka.errors() + t.smp.ka.non2xx + t.smp.cl.errors() + t.smp.cl.non2xx
	if cfg.spread > 0 {
		if err := t.spreadRun(ctx); err != nil {
			return err
		}
	}
	if cfg.mixed.on {
		return t.mixedRun(ctx)
	}
	return nil
}

// note lists wrk's socket errors and non-2xx responses of a run as a
// problem.
func (t *trial) note(label string, w wrkRun) {
	if w.errors() > 0 || w.non2xx > 0 {
		t.problems = append(t.problems, fmt.Sprintf("%s: socket errors connect %d, read %d, write %d, timeout %d; non-2xx %d (of %d requests)",
			label, w.sockErr[0], w.sockErr[1], w.sockErr[2], w.sockErr[3], w.non2xx, w.requests))
	}
}

// keepAliveRun is the keep-alive run; halfway through it counts the client
// connections each worker holds, and checks that they are all found there.
func (t *trial) keepAliveRun(ctx context.Context) error {
	smp := &t.smp
	countConns := func() { smp.kaConns, smp.held = connsPerWorker(t.l) }
	var other float64
	var err error
	if smp.ka, smp.kaCPU, other, err = t.e.measureMid(ctx, t.l, "keep-alive", t.e.cfg.duration, false, "", countConns); err != nil {
		return err
	}
	smp.other = max(smp.other, other)
	t.note("keep-alive", smp.ka)
	if smp.held > 0 {
		t.problems = append(t.problems, fmt.Sprintf("keep-alive: halfway through, the primary itself held %d of the client connections", smp.held))
	}
	var found int64
	for _, n := range smp.kaConns {
		found += n
	}
	if found+smp.held != int64(t.e.cfg.conns) {
		t.problems = append(t.problems, fmt.Sprintf("keep-alive: halfway through, %d of wrk's %d connections were found established in the workers and the primary", found+smp.held, t.e.cfg.conns))
	}
	if len(smp.kaConns) != t.want {
		t.problems = append(t.problems, fmt.Sprintf("keep-alive: %d worker processes found, %d expected", len(smp.kaConns), t.want))
	}
	return nil
}

// connsPerWorker counts the established client connections that each
// worker of the launch holds, largest first (a single process is its own
// worker), and those that the primary itself holds.
func connsPerWorker(l *launch) (perWorker []int64, held int64) {
	workers := []int{l.p.pid}
	pids := workers
	if l.s.primary {
		workers = descendants(l.p.pid)
		pids = append(slices.Clone(workers), l.p.pid)
	}
	counts := connsPerProcess(l.port, pids)
	for _, pid := range workers {
		perWorker = append(perWorker, counts[pid])
	}
	if l.s.primary {
		held = counts[l.p.pid]
	}
	slices.Sort(perWorker)
	slices.Reverse(perWorker)
	return perWorker, held
}

// closeRun is the Connection: close run, and the primary's RSS after it.
func (t *trial) closeRun(ctx context.Context) error {
	smp := &t.smp
	var other float64
	var err error
	smp.clWakeUps = -1
	var w0 int64
	err0 := errors.New("no primary")
	if t.l.s.primary {
		w0, err0 = wakeUps(t.l.p.pid)
	}
	if smp.cl, smp.clCPU, other, err = t.e.measureMid(ctx, t.l, "Connection: close", t.e.cfg.duration, true, "", nil); err != nil {
		return err
	}
	if err0 == nil {
		if w1, err1 := wakeUps(t.l.p.pid); err1 == nil {
			smp.clWakeUps = w1 - w0
		}
	}
	smp.other = max(smp.other, other)
	t.note("Connection: close", smp.cl)
	if t.l.s.primary {
		if smp.rssKB, err = vmRSS(t.l.p.pid); err != nil {
			return err
		}
	}
	return nil
}

// spreadRun is the spread run: the responses per worker, largest first, with
// a zero for each expected worker that answered none.
func (t *trial) spreadRun(ctx context.Context) error {
	w, _, err := t.e.measure(ctx, t.l, "spread", t.e.cfg.spread, true, t.e.file("spread.lua"))
	if err != nil {
		return err
	}
	t.note("spread", w)
	t.smp.errs += w.errors() + w.non2xx
	for _, n := range w.spread {
		t.smp.spread = append(t.smp.spread, n)
	}
	slices.Sort(t.smp.spread)
	slices.Reverse(t.smp.spread)
	for len(t.smp.spread) < t.want {
		t.smp.spread = append(t.smp.spread, 0)
	}
	return nil
}
