package cpus

import (
	"strings"
	"testing"
)

// The cpu.max and v1 vectors of docs/workers.md.
var cpuMaxVectors = []struct {
	in       string
	ok       bool
	err      bool
	b        Bandwidth
	num, den uint64
}{
	{in: "max 100000\n"},
	{in: "max"},
	{in: "150000 100000\n", ok: true, b: Bandwidth{150000, 100000, false}, num: 3, den: 2},
	{in: "500000", ok: true, b: Bandwidth{500000, 100000, true}, num: 5, den: 1},
	{in: "250000 300000\n", ok: true, b: Bandwidth{250000, 300000, false}, num: 5, den: 6},
	{in: "1000 100000\n", ok: true, b: Bandwidth{1000, 100000, false}, num: 1, den: 100},
	{in: "9223372036854775807 9223372036854775807\n", ok: true, b: Bandwidth{1<<63 - 1, 1<<63 - 1, false}, num: 1, den: 1},
	{in: "250000 0\n", err: true},
	{in: "250000 100000 100\n", err: true},
	{in: "asdf 100000", err: true},
	{in: "500000 njn", err: true},
	{in: "", err: true},
	{in: "\n", err: true},
	{in: "0 100000\n", err: true},
	{in: "-1 100000\n", err: true},
	{in: "+5 100000\n", err: true},
	{in: "max 0\n", err: true},
	{in: "max njn\n", err: true},
	{in: "9223372036854775808 100000\n", err: true},
	{in: "100000 9223372036854775808\n", err: true},
}

func TestParseCPUMax(t *testing.T) {
	for _, v := range cpuMaxVectors {
		b, ok, err := ParseCPUMax(v.in)
		if (err != nil) != v.err || ok != v.ok || b != v.b {
			t.Errorf("ParseCPUMax(%q) = %+v, %v, %v; want %+v, %v, error %v", v.in, b, ok, err, v.b, v.ok, v.err)
			continue
		}
		if ok && b.CPUs() != (Fraction{v.num, v.den}) {
			t.Errorf("ParseCPUMax(%q).CPUs() = %v, want %d/%d", v.in, b.CPUs(), v.num, v.den)
		}
		if err != nil && !strings.Contains(err.Error(), "cpu.max") {
			t.Errorf("ParseCPUMax(%q) error %q does not name the file", v.in, err)
		}
	}
}

var v1Vectors = []struct {
	quota, period string
	ok, err       bool
	b             Bandwidth
}{
	{quota: "-1\n", period: "100000\n"},
	{quota: "-1\n", period: "abc"}, // the period is not needed
	{quota: "600000\n", period: "100000\n", ok: true, b: Bandwidth{QuotaUS: 600000, PeriodUS: 100000}},
	{quota: "150000", period: "100000", ok: true, b: Bandwidth{QuotaUS: 150000, PeriodUS: 100000}},
	{quota: "600000\n", period: "0", err: true},
	{quota: "600000\n", period: "abc", err: true},
	{quota: "600000\n", period: "", err: true},
	{quota: "abc", period: "100000", err: true},
	{quota: "0", period: "100000", err: true},
	{quota: "-2", period: "100000", err: true},
	{quota: "", period: "100000", err: true},
}

func TestParseV1Quota(t *testing.T) {
	for _, v := range v1Vectors {
		b, ok, err := ParseV1Quota(v.quota, v.period)
		if (err != nil) != v.err || ok != v.ok || b != v.b {
			t.Errorf("ParseV1Quota(%q, %q) = %+v, %v, %v; want %+v, %v, error %v", v.quota, v.period, b, ok, err, v.b, v.ok, v.err)
		}
	}
	b, _, _ := ParseV1Quota("600000\n", "100000\n")
	if got := b.CPUs(); got != Whole(6) {
		t.Errorf("600000/100000 = %v CPUs, want 6", got)
	}
}

func FuzzParseCPUMax(f *testing.F) {
	for _, v := range cpuMaxVectors {
		f.Add(v.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, ok, err := ParseCPUMax(s)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if !ok {
			if b != (Bandwidth{}) {
				t.Fatalf("no limit but bandwidth %+v", b)
			}
			return
		}
		if b.QuotaUS <= 0 || b.PeriodUS <= 0 {
			t.Fatalf("non-positive bandwidth %+v", b)
		}
		c := b.CPUs()
		if c.Den == 0 || c.Num == 0 {
			t.Fatalf("bandwidth %+v gives %d/%d", b, c.Num, c.Den)
		}
	})
}

func FuzzParseV1Quota(f *testing.F) {
	for _, v := range v1Vectors {
		f.Add(v.quota, v.period)
	}
	f.Fuzz(func(t *testing.T, quota, period string) {
		b, ok, err := ParseV1Quota(quota, period)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if ok && (b.QuotaUS <= 0 || b.PeriodUS <= 0) {
			t.Fatalf("non-positive bandwidth %+v", b)
		}
	})
}
