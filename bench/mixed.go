package main

// The mixed workload: fast requests (/) with a small share of slow ones
// (/work?ms=N, N ms of a worker's CPU) among them, from a load generator in
// this process, because wrk cannot tell the two kinds apart.
//
// The generator is a closed loop: -mixed-c clients, each sending its next
// request as soon as the answer to the previous one has arrived, for
// -mixed-d. Each client draws the kind of every request (slow with
// probability -mixed-slow %) from its own random sequence, seeded with its
// index, so every setup gets the same sequence of kinds.
//
// By default each request has a connection of its own (Connection: close).
// That is where the policies differ most: every request is then a fresh
// placement by herd, Node's primary or the kernel, and a placement on a
// worker busy with a slow request makes a fast one wait for it. Under
// keep-alive (-mixed-keepalive) a connection stays on the worker it first
// landed on, so the figures mostly show how the -mixed-c connections were
// spread. A request's latency runs from before the connect (keep-alive:
// the write) to the end of the response's body; the client then waits for
// the server's close before it opens the next connection, so that the
// server, not the client, closes first, as it does for a browser.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mixedConfig is the mixed workload's settings: the -mixed flags.
type mixedConfig struct {
	on        bool
	duration  time.Duration
	conns     int
	slowPct   float64 // share of slow requests, in %
	slowMs    int     // CPU ms of a slow request
	keepAlive bool
}

// slowPath is the slow request's path.
func (mc mixedConfig) slowPath() string { return fmt.Sprintf("/work?ms=%d", mc.slowMs) }

// mixedTimeout bounds one request, connect included.
const mixedTimeout = 10 * time.Second

// mixedStats is what one run of the mixed workload measured.
type mixedStats struct {
	ok                        bool // the run took place
	fastP50, fastP99, fastMax time.Duration
	slowP50, slowP99, slowMax time.Duration
	fast, slow, errs          int64
	rps                       float64 // requests of both kinds answered per second
	other                     float64 // share of the CPUs used by other processes (-1: unknown)
	genCPU                    float64 // the generator's CPU time, µs
	firstErr                  string
	elapsed                   time.Duration
}

// mixedClient is one client of the closed loop, with its connection (nil
// between requests unless kept alive) and what it measured.
type mixedClient struct {
	addr       string
	keepAlive  bool
	rng        *rand.Rand
	conn       net.Conn
	br         *bufio.Reader
	fast, slow []time.Duration
	errs       int64
	firstErr   error
}

// runMixed runs the mixed workload against 127.0.0.1:port and returns its
// figures (other is left to the caller).
func runMixed(ctx context.Context, port int, mc mixedConfig) mixedStats {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	share := mc.slowPct / 100
	cpu0 := selfCPU()
	start := time.Now()
	deadline := start.Add(mc.duration)
	clients := make([]*mixedClient, mc.conns)
	var wg sync.WaitGroup
	for i := range clients {
		c := &mixedClient{addr: addr, keepAlive: mc.keepAlive, rng: rand.New(rand.NewPCG(uint64(i), 0x68657264)),
			br: bufio.NewReaderSize(nil, 4096)}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, deadline, share, mc.slowPath())
		}()
	}
	wg.Wait()
	st := mixedStats{ok: true, elapsed: time.Since(start), genCPU: selfCPU() - cpu0, other: -1}
	var fast, slow []time.Duration
	for _, c := range clients {
		fast = append(fast, c.fast...)
		slow = append(slow, c.slow...)
		st.errs += c.errs
		if c.firstErr != nil && st.firstErr == "" {
			st.firstErr = c.firstErr.Error()
		}
	}
	slices.Sort(fast)
	slices.Sort(slow)
	st.fast, st.slow = int64(len(fast)), int64(len(slow))
	st.fastP50, st.fastP99, st.fastMax = quantile(fast, 0.5), quantile(fast, 0.99), quantile(fast, 1)
	st.slowP50, st.slowP99, st.slowMax = quantile(slow, 0.5), quantile(slow, 0.99), quantile(slow, 1)
	st.rps = float64(st.fast+st.slow) / st.elapsed.Seconds()
	return st
}

// loop sends requests until the deadline; the one under way then is
// finished and counted.
func (c *mixedClient) loop(ctx context.Context, deadline time.Time, share float64, slowPath string) {
	defer c.drop()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		slow := c.rng.Float64() < share
		path := "/"
		if slow {
			path = slowPath
		}
		t0 := time.Now()
		closeAfter, err := c.do(path)
		lat := time.Since(t0)
		if err != nil {
			c.errs++
			if c.firstErr == nil {
				c.firstErr = err
			}
			c.drop()
			time.Sleep(10 * time.Millisecond) // no busy loop against a refusing port
			continue
		}
		if slow {
			c.slow = append(c.slow, lat)
		} else {
			c.fast = append(c.fast, lat)
		}
		if closeAfter {
			c.awaitClose()
		}
	}
}

// do sends one request, on a new connection unless one is kept alive, and
// reads the answer, which must be 200. closeAfter says the connection is
// done with.
func (c *mixedClient) do(path string) (closeAfter bool, err error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, mixedTimeout)
		if err != nil {
			return false, err
		}
		c.conn = conn
		c.br.Reset(conn)
	}
	if err := c.conn.SetDeadline(time.Now().Add(mixedTimeout)); err != nil {
		return false, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + c.addr + "\r\n"
	if !c.keepAlive {
		req += "Connection: close\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: status %s", path, resp.Status)
	}
	return !c.keepAlive || resp.Close, nil
}

// awaitClose waits for the server to close the connection (at most a
// second), then closes it.
func (c *mixedClient) awaitClose() {
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, c.br)
	c.drop()
}

// drop closes the connection, if any.
func (c *mixedClient) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// quantile is the q-quantile of sorted by nearest rank (1: the largest), 0
// when it is empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// selfCPU is this process's user and system time, in µs.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

// mixedRun is the trial's mixed run, last: its slow requests leave no
// worker busy during the wrk runs. Like the wrk runs, it reads the CPU time
// of the setup's processes and the machine's around the run, to tell the
// share of the CPUs that went to other processes.
func (t *trial) mixedRun(ctx context.Context) error {
	l, mc := t.l, t.e.cfg.mixed
	tree := append([]int{l.p.pid}, descendants(l.p.pid)...)
	tree0 := treeMicros(tree)
	busy0, total0, ok0 := machineTicks()
	st := runMixed(ctx, l.port, mc)
	busy1, total1, ok1 := machineTicks()
	tree1 := treeMicros(tree)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ok0 && ok1 && total1 > total0 {
		tick := 1e6 / float64(clockTicks)
		ours := (tree1 - tree0) + st.genCPU
		st.other = max(0, (float64(busy1-busy0)*tick-ours)/(float64(total1-total0)*tick))
	}
	fmt.Fprintf(t.e.raw, "=== %s: mixed\n%s\n%s\n", l.s.name, mc.describe(), st.describe())
	if !l.p.alive() {
		return fmt.Errorf("%s died during the mixed run: %s\n%s", l.s.name, l.p.exitStatus(), tail(l.p.logText(), 20))
	}
	if st.errs > 0 {
		t.problems = append(t.problems, fmt.Sprintf("mixed: %d failed requests (of %d), the first: %s", st.errs, st.errs+st.fast+st.slow, st.firstErr))
	}
	t.smp.mixed = st
	return nil
}

// describe is the mixed workload's settings, in words.
func (mc mixedConfig) describe() string {
	conn := "a new connection per request"
	if mc.keepAlive {
		conn = "keep-alive"
	}
	return fmt.Sprintf("%d closed-loop clients for %s, %s, %g%% of the requests %s (%d ms of CPU), the others /",
		mc.conns, mc.duration, conn, mc.slowPct, mc.slowPath(), mc.slowMs)
}

// describe is the run's figures, for the raw output.
func (st mixedStats) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f req/s in %s, %d errors\n", st.rps, st.elapsed.Round(time.Millisecond), st.errs)
	fmt.Fprintf(&b, "fast: %d, p50 %s, p99 %s, max %s\n", st.fast, st.fastP50, st.fastP99, st.fastMax)
	fmt.Fprintf(&b, "slow: %d, p50 %s, p99 %s, max %s", st.slow, st.slowP50, st.slowP99, st.slowMax)
	return b.String()
}

// mixedRows is the table of the mixed runs: a block of its own, with a
// column per setup.
func (t *table) mixedRows() {
	mc := t.cfg.mixed
	fmt.Fprintf(t.w, "\nmixed workload: %s; median of %d runs\n", mc.describe(), t.cfg.runs)
	t.names("mixed runs")
	t.row("req/s (fast and slow)", mixedFigure(func(m mixedStats) (float64, bool) { return m.rps, true }, "%.0f"))
	fast := func(d func(mixedStats) time.Duration) func(mixedStats) (float64, bool) {
		return func(m mixedStats) (float64, bool) { return ms(d(m)), m.fast > 0 }
	}
	t.row("fast (/) latency ms: p50", mixedFigure(fast(func(m mixedStats) time.Duration { return m.fastP50 }), "%.2f"))
	t.row("fast (/) latency ms: p99", mixedFigure(fast(func(m mixedStats) time.Duration { return m.fastP99 }), "%.2f"))
	t.row("fast (/) latency ms: max", mixedFigure(fast(func(m mixedStats) time.Duration { return m.fastMax }), "%.2f"))
	t.row(fmt.Sprintf("slow (%s) latency ms: p50", mc.slowPath()),
		mixedFigure(func(m mixedStats) (float64, bool) { return ms(m.slowP50), m.slow > 0 }, "%.2f"))
	t.row("requests answered: fast", mixedFigure(func(m mixedStats) (float64, bool) { return float64(m.fast), true }, "%.0f"))
	t.row("requests answered: slow", mixedFigure(func(m mixedStats) (float64, bool) { return float64(m.slow), true }, "%.0f"))
	t.row("other processes' CPU during run (%)", mixedFigure(func(m mixedStats) (float64, bool) { return 100 * m.other, m.other >= 0 }, "%.0f"))
	t.row("failed requests (sum, all runs)", func(_ setup, r *result) string {
		var n int64
		for _, smp := range r.samples {
			n += smp.mixed.errs
		}
		return fmt.Sprint(n)
	})
	from := "before its connect"
	if mc.keepAlive {
		from = "its write (a connection's first request: before the connect)"
	}
	fmt.Fprintf(t.w, "A request's latency runs from %s to the end of the answer;\n"+
		"a fast request that lands on a worker busy with a slow one waits for it.\n", from)
}

// mixedFigure is a cell showing the median of a figure of the mixed runs.
func mixedFigure(f func(mixedStats) (float64, bool), format string) cell {
	return figure(mixedOf(f), format, false)
}

// mixedOf is a figure of a sample's mixed run, when it had one.
func mixedOf(f func(mixedStats) (float64, bool)) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) {
		if !s.mixed.ok {
			return 0, false
		}
		return f(s.mixed)
	}
}
