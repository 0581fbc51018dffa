package cpus

import (
	"strconv"
	"testing"
)

var requestVectors = []struct {
	in   string
	want int64
	err  bool
}{
	{in: "500", want: 500}, // the Downward API with divisor 1m
	{in: "2000", want: 2000},
	{in: "10", want: 10},
	{in: "1", want: 1000},
	{in: "2", want: 2000}, // a bare digit is CPUs, as in a pod spec
	{in: "9", want: 9000},
	{in: "5m", want: 5},
	{in: "500m", want: 500},
	{in: "1500m", want: 1500},
	{in: "2.0", want: 2000},
	{in: "2.", want: 2000},
	{in: "1.5", want: 1500},
	{in: "0.25", want: 250},
	{in: ".5", want: 500},
	{in: "0.0001", want: 1}, // finer than 1m rounds up, as in Kubernetes
	{in: "1.2345", want: 1235},
	{in: "1.2340", want: 1234},
	{in: "1.5m", want: 2},
	{in: " 250m\n", want: 250},
	{in: "", want: 0},
	{in: "0", want: 0},
	{in: "0m", want: 0},
	{in: "0.0", want: 0},
	{in: "9223372036854775807", want: 1<<63 - 1},
	{in: "9223372036854775.807", want: 1<<63 - 1},
	{in: "-500", err: true},
	{in: "-0.5", err: true},
	{in: "+500", err: true},
	{in: "abc", err: true},
	{in: "500mm", err: true},
	{in: "m", err: true},
	{in: ".", err: true},
	{in: "1.2.3", err: true},
	{in: "1e3", err: true},
	{in: "2k", err: true},
	{in: "2Gi", err: true},
	{in: "1 000", err: true},
	{in: "0x10", err: true},
	{in: "9223372036854775808", err: true},
	{in: "9223372036854776.0", err: true},
	{in: "9223372036854776000m", err: true},
	{in: "9223372036854775.808", err: true},
}

func TestParseRequest(t *testing.T) {
	for _, v := range requestVectors {
		got, err := ParseRequest(v.in)
		if (err != nil) != v.err || got != v.want {
			t.Errorf("ParseRequest(%q) = %d, %v; want %d, error %v", v.in, got, err, v.want, v.err)
		}
	}
	for in, want := range map[string]string{
		"abc":                   "must be millicores such as 500 (what the Downward API gives with divisor 1m), or a CPU quantity such as 500m, 2, 1.5 or 0.25; not negative",
		"-500m":                 "must not be negative: give millicores such as 500, or a CPU quantity such as 500m, 2, 1.5 or 0.25 (0: none)",
		"-99999999999999999999": "must not be negative: give millicores such as 500, or a CPU quantity such as 500m, 2, 1.5 or 0.25 (0: none)",
		"--5":                   "must be millicores such as 500 (what the Downward API gives with divisor 1m), or a CPU quantity such as 500m, 2, 1.5 or 0.25; not negative",
		"9223372036854775808":   "too large: at most 9223372036854775807 millicores",
	} {
		if _, err := ParseRequest(in); err == nil || err.Error() != want {
			t.Errorf("ParseRequest(%q): error %v, want %q", in, err, want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, v := range requestVectors {
		f.Add(v.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseRequest(s)
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("ParseRequest(%q) = %d", s, m)
		}
		// A number of millicores with the suffix m reads back as itself.
		if back, err := ParseRequest(strconv.FormatInt(m, 10) + "m"); err != nil || back != m {
			t.Fatalf("%d reads back as %d, %v", m, back, err)
		}
	})
}
