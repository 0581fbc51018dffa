package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// table prints the results of all setups: one column per setup, one row
// per figure.
type table struct {
	w       io.Writer
	cfg     config
	setups  []setup
	results map[string]*result
}

// labelWidth and cellWidth are the widths of the table's first column and
// of each setup's column (wider when the setup's name needs it).
const labelWidth, cellWidth = 42, 11

// width is the width of setup s's column.
func width(s setup) int { return max(cellWidth, len([]rune(s.name))+1) }

// printTable prints the header, the table of the wrk runs, the resolution
// of its CPU figures, the table of the mixed runs, herd against Node's
// primary and the problems.
func printTable(w io.Writer, e *env, setups []setup, results map[string]*result, busy float64) {
	t := &table{w: w, cfg: e.cfg, setups: setups, results: results}
	t.header(busy)
	t.rows()
	t.resolution()
	if e.cfg.mixed.on {
		t.mixedRows()
	}
	t.ratios()
	t.problems()
}

// header names the versions and the settings, and how busy the CPUs were
// before the start.
func (t *table) header(busy float64) {
	cfg := t.cfg
	nodeV, _ := exec.Command("node", "-v").Output()
	fmt.Fprintf(t.w, "herd benchmark: node %s, %s, %s, %d CPUs, %d workers, wrk -t%d -c%d -d%s, median of %d runs\n",
		strings.TrimSpace(string(nodeV)), wrkVersion(), runtime.Version(), runtime.NumCPU(), cfg.workers,
		cfg.threads, cfg.conns, wrkSeconds(cfg.duration), cfg.runs)
	if busy >= 0 {
		fmt.Fprintf(t.w, "CPUs busy in the second before the start: %.0f%%%s\n", 100*busy, map[bool]string{true: " (other load: noisy figures)"}[busy > otherLimit])
	}
	fmt.Fprintln(t.w)
}

// names is a table's first line: the setups' names.
func (t *table) names(title string) {
	fmt.Fprintf(t.w, "%-*s", labelWidth, title)
	for _, s := range t.setups {
		fmt.Fprintf(t.w, "%*s", width(s), s.name)
	}
	fmt.Fprintln(t.w)
}

// rows is the table of the wrk runs: the setups' names, then a row per
// figure.
func (t *table) rows() {
	t.names("wrk runs")
	conns := t.cfg.conns
	t.row("req/s, keep-alive", figure(kaRPS, "%.0f", false))
	t.row("req/s, Connection: close", figure(clRPS, "%.0f", false))
	t.row("latency ms, keep-alive: p50", figure(latOf(kaLat, p50), "%.2f", false))
	t.row("latency ms, keep-alive: p99", figure(latOf(kaLat, p99), "%.2f", false))
	t.row("latency ms, keep-alive: max", figure(latOf(kaLat, maxLat), "%.2f", false))
	t.row("latency ms, close: p50", figure(latOf(clLat, p50), "%.2f", false))
	t.row("latency ms, close: p99", figure(latOf(clLat, p99), "%.2f", false))
	t.row("latency ms, close: max", figure(latOf(clLat, maxLat), "%.2f", false))
	t.row("primary CPU µs/conn, close (÷ requests)", figure(clPerConn, "%.1f", true))
	t.row("primary wake-ups per conn, close", figure(clWakeUpsPerConn, "%.2f", true))
	t.row(fmt.Sprintf("primary CPU µs/conn, keep-alive (÷ %d)", conns), figure(kaPerConn(conns), "%.1f", true))
	t.row("primary CPU, close (% of one core)", figure(clPercent(t.cfg.duration), "%.1f", true))
	t.row("primary RSS MB (VmRSS after close run)", figure(rssMB, "%.1f", true))
	t.row("keep-alive conns per worker (mid-run)", ranks(kaConnsPerWorker))
	if t.cfg.spread > 0 {
		t.row("spread % per worker (close)", ranks(spreadShares))
		t.row("spread: largest deviation from even", spreadDeviation)
		t.row("spread: connections counted", figure(spreadCounted, "%.0f", false))
	}
	t.row("other processes' CPU during runs (%)", figure(otherPercent, "%.0f", false))
	t.row("errors: socket + non-2xx (sum, all runs)", errorSum)
}

// cell is what a row shows for one setup, from a result that has at least
// one sample.
type cell func(s setup, r *result) string

// row prints label and a cell per setup ("n/a" for a setup without a
// sample).
func (t *table) row(label string, c cell) {
	fmt.Fprintf(t.w, "%-*s", labelWidth, label)
	for _, s := range t.setups {
		r := t.results[s.key]
		v := "n/a"
		if len(r.samples) > 0 {
			v = c(s, r)
		}
		fmt.Fprintf(t.w, "%*s", width(s), v)
	}
	fmt.Fprintln(t.w)
}

// figure is a cell showing the median of f in format; with primaryOnly, a
// setup without a primary shows "-".
func figure(f func(sample) (float64, bool), format string, primaryOnly bool) cell {
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

// ranks is a cell showing the median of each rank (largest, second, ...)
// of a per-worker list, joined with "/".
func ranks(list func(sample) []float64) cell {
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

// kaRPS is the keep-alive run's requests per second.
func kaRPS(s sample) (float64, bool) { return s.ka.rps, true }

// clRPS is the Connection: close run's requests per second.
func clRPS(s sample) (float64, bool) { return s.cl.rps, true }

// kaLat and clLat are the latency figures of the keep-alive and the close
// run.
func kaLat(s sample) latency { return s.ka.lat }
func clLat(s sample) latency { return s.cl.lat }

// p50, p99 and maxLat pick a figure of wrk's latency.
func p50(l latency) time.Duration    { return l.p50 }
func p99(l latency) time.Duration    { return l.p99 }
func maxLat(l latency) time.Duration { return l.max }

// latOf is a figure of a run's latency, in ms, when wrk reported it.
func latOf(run func(sample) latency, pick func(latency) time.Duration) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) {
		l := run(s)
		return ms(pick(l)), l.ok
	}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// clPerConn is the primary's CPU µs per connection of the close run (each
// request is one connection).
func clPerConn(s sample) (float64, bool) {
	return s.clCPU / float64(s.cl.requests), s.cl.requests > 0
}

// clWakeUpsPerConn is the primary's voluntary context switches (all its
// threads) per connection of the close run.
func clWakeUpsPerConn(s sample) (float64, bool) {
	return float64(s.clWakeUps) / float64(s.cl.requests), s.clWakeUps >= 0 && s.cl.requests > 0
}

// kaPerConn is the primary's CPU µs in the keep-alive run over wrk's conns
// connections.
func kaPerConn(conns int) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return s.kaCPU / float64(conns), true }
}

// clPercent is the primary's CPU time in the close run, of d, as % of one
// core.
func clPercent(d time.Duration) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return 100 * s.clCPU / float64(d.Microseconds()), true }
}

// rssMB is the primary's VmRSS after the close run, in MB.
func rssMB(s sample) (float64, bool) { return float64(s.rssKB) / 1024, true }

// kaConnsPerWorker is the keep-alive connections per worker, largest first.
func kaConnsPerWorker(s sample) []float64 {
	out := make([]float64, len(s.kaConns))
	for i, n := range s.kaConns {
		out[i] = float64(n)
	}
	return out
}

// spreadShares is each worker's share of the spread run's responses in %,
// largest first.
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

// spreadDeviation is a cell showing the largest deviation of a worker's
// share of the spread run from an even share, in % of the even share.
func spreadDeviation(_ setup, r *result) string {
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
}

// spreadCounted is the number of responses the spread run counted.
func spreadCounted(s sample) (float64, bool) {
	var t int64
	for _, n := range s.spread {
		t += n
	}
	return float64(t), true
}

// otherPercent is the share of the CPUs other processes used, in %.
func otherPercent(s sample) (float64, bool) { return 100 * s.other, s.other >= 0 }

// errorSum is a cell showing the errors of all samples: a sum, not a
// median.
func errorSum(_ setup, r *result) string {
	var t int64
	for _, smp := range r.samples {
		t += smp.errs
	}
	return fmt.Sprint(t)
}

// closeRequests is the close run's request count.
func closeRequests(s sample) (float64, bool) { return float64(s.cl.requests), true }

// resolution notes what one clock tick of CPU time amounts to per
// connection, in the first setup's close runs and in the keep-alive runs.
func (t *table) resolution() {
	first := t.setups[0]
	if v, ok := stat(t.results[first.key], closeRequests); ok && v > 0 {
		fmt.Fprintf(t.w, "\nCPU is read in clock ticks of %.0f ms: with %.0f requests per close run (%s), one tick is %.2f µs/conn.\n",
			1000/float64(clockTicks), v, first.name, 1e6/float64(clockTicks)/v)
	}
	fmt.Fprintf(t.w, "Keep-alive CPU is the primary's whole CPU time in the run divided by wrk's %d connections (one tick: %.1f µs/conn).\n",
		t.cfg.conns, 1e6/float64(clockTicks)/float64(t.cfg.conns))
}

// ratios compares herd with Node's primary under the same policy, when
// both ran.
func (t *table) ratios() {
	if t.results["herd-rr"] != nil && t.results["node-rr"] != nil {
		fmt.Fprintf(t.w, "\nherd rr vs node rr:\n")
		t.ratio("herd-rr", "node-rr", "primary CPU per conn, close", clPerConn, " µs", "%.1f")
		t.ratio("herd-rr", "node-rr", "primary wake-ups per conn, close", clWakeUpsPerConn, "", "%.2f")
		t.commonRatios("herd-rr", "node-rr")
		t.targets()
	}
	if t.results["herd-none"] != nil && t.results["node-none"] != nil {
		fmt.Fprintf(t.w, "\nherd none vs node none:\n")
		t.commonRatios("herd-none", "node-none")
	}
}

// commonRatios prints the ratios of the figures every setup with a
// primary has: requests/s, latency, RSS and, with -mixed, the mixed run's
// requests/s and its fast requests' p99.
func (t *table) commonRatios(a, b string) {
	t.ratio(a, b, "req/s, Connection: close", clRPS, "", "%.0f")
	t.ratio(a, b, "req/s, keep-alive", kaRPS, "", "%.0f")
	t.ratio(a, b, "latency p50, close", latOf(clLat, p50), " ms", "%.2f")
	t.ratio(a, b, "latency p99, close", latOf(clLat, p99), " ms", "%.2f")
	t.ratio(a, b, "latency p99, keep-alive", latOf(kaLat, p99), " ms", "%.2f")
	if t.cfg.mixed.on {
		t.ratio(a, b, "mixed: req/s", mixedOf(func(m mixedStats) (float64, bool) { return m.rps, true }), "", "%.0f")
		t.ratio(a, b, "mixed: fast requests' p99", mixedOf(func(m mixedStats) (float64, bool) { return ms(m.fastP99), m.fast > 0 }), " ms", "%.2f")
	}
	t.ratio(a, b, "primary RSS", rssMB, " MB", "%.1f")
}

// ratio prints the medians of f of setups a and b and their ratio, when
// both have one and b's is not 0.
func (t *table) ratio(a, b, label string, f func(sample) (float64, bool), unit, format string) {
	ra, rb := t.results[a], t.results[b]
	if ra == nil || rb == nil {
		return
	}
	va, oka := stat(ra, f)
	vb, okb := stat(rb, f)
	if !oka || !okb || vb == 0 {
		return
	}
	fmt.Fprintf(t.w, "  %-34s "+format+"%s vs "+format+"%s = %.2f×\n", label, va, unit, vb, unit, va/vb)
}

// targets says whether herd rr meets its targets against node rr: CPU per
// connection at most half node's (set for -c 128), close p50 within 5 %
// of node's (set for -c 1), close req/s at least node's, RSS at most
// 15 MB. Each is judged at this run's -c.
func (t *table) targets() {
	herd, node := t.results["herd-rr"], t.results["node-rr"]
	hc, ok1 := stat(herd, clPerConn)
	nc, ok2 := stat(node, clPerConn)
	hr, ok3 := stat(herd, clRPS)
	nr, ok4 := stat(node, clRPS)
	hm, ok5 := stat(herd, rssMB)
	hp, ok6 := stat(herd, latOf(clLat, p50))
	np, ok7 := stat(node, latOf(clLat, p50))
	if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && nc > 0 {
		fmt.Fprintf(t.w, "  targets at -c %d: CPU/conn ≤ 0.5× node's: %s; close p50 ≤ 1.05× node's: %s; close req/s ≥ node rr's: %s; RSS ≤ 15 MB: %s\n",
			t.cfg.conns, yesNo(hc <= 0.5*nc), yesNo(hp <= 1.05*np), yesNo(hr >= nr), yesNo(hm <= 15))
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// problems lists each setup's failures, problems and noisy runs, or says
// that there were none.
func (t *table) problems() {
	var listed bool
	for _, s := range t.setups {
		r := t.results[s.key]
		noisy := noisyRuns(r)
		if len(r.failures)+len(r.problems)+len(noisy) == 0 {
			continue
		}
		if !listed {
			fmt.Fprintf(t.w, "\nProblems:\n")
			listed = true
		}
		for _, f := range r.failures {
			fmt.Fprintf(t.w, "  %s: FAILED %s\n", s.name, strings.ReplaceAll(f, "\n", "\n      "))
		}
		for _, p := range r.problems {
			fmt.Fprintf(t.w, "  %s: %s\n", s.name, p)
		}
		if len(noisy) > 0 {
			fmt.Fprintf(t.w, "  %s: noisy, other processes used more than %.0f%% of the CPUs (%s)\n", s.name, 100*otherLimit, strings.Join(noisy, ", "))
		}
	}
	if !listed {
		fmt.Fprintf(t.w, "\nNo errors, non-2xx responses, crashes, warnings or noisy runs.\n")
	}
}

// noisyRuns lists the runs of r in which other processes used more than
// otherLimit of the CPUs.
func noisyRuns(r *result) []string {
	var noisy []string
	for i, smp := range r.samples {
		if smp.noisy() > otherLimit {
			noisy = append(noisy, fmt.Sprintf("run %d: %.0f%%", r.runs[i], 100*smp.noisy()))
		}
	}
	return noisy
}

// median is the median of xs, 0 if xs is empty.
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

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
