package main

import (
	"testing"
	"time"
)

// wrkOutput is wrk 4.1's output with --latency.
const wrkOutput = `Running 2s test @ http://127.0.0.1:40000/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.00us  301.45us   1.02s    88.12%
    Req/Sec    10.11k   812.00    11.50k    70.00%
  Latency Distribution
     50%  540.00us
     75%    1.20ms
     90%    2.50ms
     99%    4.03ms
  40213 requests in 2.00s, 4.18MB read
Requests/sec:  20104.61
Transfer/sec:      2.09MB
`

func TestParseLatency(t *testing.T) {
	got := parseLatency(wrkOutput)
	want := latency{p50: 540 * time.Microsecond, p75: 1200 * time.Microsecond, p90: 2500 * time.Microsecond,
		p99: 4030 * time.Microsecond, max: 1020 * time.Millisecond, ok: true}
	if got != want {
		t.Errorf("parseLatency = %+v, want %+v", got, want)
	}
	if l := parseLatency("Running 2s test\nRequests/sec: 1.00\n"); l.ok {
		t.Errorf("parseLatency without --latency output = %+v, want not ok", l)
	}
}

func TestParseWrkTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"12.50us": 12500 * time.Nanosecond, "3.00ms": 3 * time.Millisecond,
		"1.50s": 1500 * time.Millisecond, "2.00m": 2 * time.Minute, "1.00h": time.Hour,
	} {
		if got, ok := parseWrkTime(in); !ok || got != want {
			t.Errorf("parseWrkTime(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "ms", "12", "-1ms", "1.0xs"} {
		if got, ok := parseWrkTime(in); ok {
			t.Errorf("parseWrkTime(%q) = %v, want not ok", in, got)
		}
	}
}

func TestQuantile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 200; i++ {
		xs = append(xs, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 100, 0.99: 198, 1: 200, 0: 1} {
		if got := quantile(xs, q); got != want {
			t.Errorf("quantile(1..200, %v) = %v, want %v", q, got, want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v, want 0", got)
	}
}
