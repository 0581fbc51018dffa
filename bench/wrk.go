package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkRun is what one wrk invocation reports.
type wrkRun struct {
	args     []string
	output   string
	requests int64   // "N requests in ..."
	rps      float64 // "Requests/sec:"
	sockErr  [4]int64
	non2xx   int64
	spread   map[string]int64 // from spread.lua: responses per X-Pid
	cpu      float64          // wrk's own CPU time, µs
	lat      latency          // from --latency
}

// latency is wrk's view of a run's response times: the 50%, 75%, 90% and
// 99% lines of its "Latency Distribution" and the Max column of the
// "Latency" line of its thread stats. ok is false unless all five were
// printed and read.
type latency struct {
	p50, p75, p90, p99, max time.Duration
	ok                      bool
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s*([0-9.]+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSpread   = regexp.MustCompile(`(?m)^spread (\S+) (\d+)$`)
	// "    Latency   612.00us  301.45us  12.34ms   88.12%": avg, stdev, max,
	// share within one stdev. [ \t] and not \s: the line "Latency
	// Distribution" must not match across its line end.
	reLatStats = regexp.MustCompile(`(?m)^[ \t]*Latency[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)[ \t]+\S+[ \t]*$`)
	// "     99%    4.03ms", under "  Latency Distribution".
	reLatDist = regexp.MustCompile(`(?m)^[ \t]*(50|75|90|99)%[ \t]+(\S+)[ \t]*$`)
)

// errors sums wrk's socket errors (connect, read, write, timeout).
func (w wrkRun) errors() int64 {
	return w.sockErr[0] + w.sockErr[1] + w.sockErr[2] + w.sockErr[3]
}

// wrkSeconds formats a duration for wrk's -d, which takes whole units only.
func wrkSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10) + "s"
}

// runWrk runs wrk against url; closeConn adds "Connection: close"; script
// is a Lua file or "".
func runWrk(ctx context.Context, url string, threads, conns int, d time.Duration, closeConn bool, script string) (wrkRun, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", wrkSeconds(d), "--latency"}
	if closeConn {
		args = append(args, "-H", "Connection: close")
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	w := wrkRun{args: append([]string{"wrk"}, args...), output: string(out)}
	if ps := cmd.ProcessState; ps != nil {
		w.cpu = float64((ps.UserTime() + ps.SystemTime()).Microseconds())
	}
	if err != nil {
		return w, fmt.Errorf("wrk %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	m := reRequests.FindStringSubmatch(w.output)
	r := reRPS.FindStringSubmatch(w.output)
	if m == nil || r == nil {
		return w, fmt.Errorf("wrk %s: cannot read its output: %s", strings.Join(args, " "), strings.TrimSpace(w.output))
	}
	w.requests, _ = strconv.ParseInt(m[1], 10, 64)
	w.rps, _ = strconv.ParseFloat(r[1], 64)
	if s := reSockErr.FindStringSubmatch(w.output); s != nil {
		for i := range 4 {
			w.sockErr[i], _ = strconv.ParseInt(s[i+1], 10, 64)
		}
	}
	if s := reNon2xx.FindStringSubmatch(w.output); s != nil {
		w.non2xx, _ = strconv.ParseInt(s[1], 10, 64)
	}
	w.lat = parseLatency(w.output)
	if script != "" {
		w.spread = map[string]int64{}
		for _, s := range reSpread.FindAllStringSubmatch(w.output, -1) {
			n, _ := strconv.ParseInt(s[2], 10, 64)
			w.spread[s[1]] += n
		}
	}
	return w, nil
}

// parseLatency reads the latency figures of wrk --latency output: all of
// them, or none. wrk times a request from its write to the end of the
// response; under Connection: close the connect before it is not counted,
// the wait for an accept and a hand-off is.
func parseLatency(out string) latency {
	st := reLatStats.FindStringSubmatch(out)
	dist := reLatDist.FindAllStringSubmatch(out, -1)
	if st == nil || len(dist) != 4 {
		return latency{}
	}
	var l latency
	var ok bool
	if l.max, ok = parseWrkTime(st[3]); !ok {
		return latency{}
	}
	for _, m := range dist {
		v, ok := parseWrkTime(m[2])
		if !ok {
			return latency{}
		}
		switch m[1] {
		case "50":
			l.p50 = v
		case "75":
			l.p75 = v
		case "90":
			l.p90 = v
		case "99":
			l.p99 = v
		}
	}
	l.ok = true
	return l
}

// wrkUnits are the units wrk prints times in (units.c: from µs up, scaled
// by 1000 to s, then by 60), the two-letter ones first: "ms" also ends in
// "s".
var wrkUnits = []struct {
	suffix string
	unit   time.Duration
}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}

// parseWrkTime reads a time as wrk prints it: "612.00us", "4.03ms",
// "1.20s", "2.00m".
func parseWrkTime(s string) (time.Duration, bool) {
	for _, u := range wrkUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 {
				return 0, false
			}
			return time.Duration(v * float64(u.unit)), true
		}
	}
	return 0, false
}

// wrkVersion is the first line of wrk -v (which exits 1).
func wrkVersion() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}
