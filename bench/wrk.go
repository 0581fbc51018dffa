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
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s*([0-9.]+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSpread   = regexp.MustCompile(`(?m)^spread (\S+) (\d+)$`)
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
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", wrkSeconds(d)}
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
	if script != "" {
		w.spread = map[string]int64{}
		for _, s := range reSpread.FindAllStringSubmatch(w.output, -1) {
			n, _ := strconv.ParseInt(s[2], 10, 64)
			w.spread[s[1]] += n
		}
	}
	return w, nil
}

// wrkVersion is the first line of wrk -v (which exits 1).
func wrkVersion() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}
