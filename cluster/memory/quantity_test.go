package memory

import (
	"math"
	"strings"
	"testing"
)

// The quantity vectors of docs/memory.md: an empty want is an error, whose
// message holds err.
var quantityVectors = []struct {
	in    string
	bytes int64
	err   string
}{
	{in: "268435456", bytes: 268435456},
	{in: "256Mi", bytes: 256 << 20},
	{in: "1Gi", bytes: 1 << 30},
	{in: "512Ki", bytes: 512 << 10},
	{in: "2Ti", bytes: 2 << 40},
	{in: "1Pi", bytes: 1 << 50},
	{in: "7Ei", bytes: 7 << 60},
	{in: "128k", bytes: 128000},
	{in: "500M", bytes: 500e6},
	{in: "1G", bytes: 1e9},
	{in: "3T", bytes: 3e12},
	{in: "2P", bytes: 2e15},
	{in: "9E", bytes: 9e18},
	{in: "1e9", bytes: 1e9},
	{in: "129e6", bytes: 129e6},
	{in: "1E3", bytes: 1000},
	{in: "1e+3", bytes: 1000},
	{in: "1.5E3", bytes: 1500},
	{in: "1000e-3", bytes: 1},
	{in: "1500e-3", err: "whole number of bytes"},
	{in: "1.5Gi", bytes: 3 << 29},
	{in: "0.5Ki", bytes: 512},
	{in: ".5Ki", bytes: 512},
	{in: "2.", bytes: 2},
	{in: "2.0", bytes: 2},
	{in: "0100", bytes: 100},
	{in: " 64Mi\n", bytes: 64 << 20},
	{in: "9223372036854775807", bytes: math.MaxInt64},
	{in: "8191Pi", bytes: 8191 << 50},
	{in: "", bytes: 0},
	{in: "0", bytes: 0},
	{in: "0Mi", bytes: 0},
	{in: "0.0", bytes: 0},
	{in: "0e9", bytes: 0},
	{in: "-1", err: "must not be negative"},
	{in: "-256Mi", err: "must not be negative"},
	{in: "-0.5", err: "must not be negative"},
	{in: "-abc", err: "must be bytes or a quantity"},
	{in: "+1Gi", err: "without a sign"},
	{in: "1.5", err: "whole number of bytes"},
	{in: "0.1Ki", err: "whole number of bytes"},
	{in: "1e-1", err: "whole number of bytes"},
	{in: "1.0001k", err: "whole number of bytes"},
	{in: "500m", err: "thousandths of a byte"},
	{in: "1MB", err: `unknown suffix "MB"`},
	{in: "1K", err: `unknown suffix "K"`},
	{in: "1gi", err: `unknown suffix "gi"`},
	{in: "1KiB", err: `unknown suffix "KiB"`},
	{in: "1Gibibytes", err: "must be bytes or a quantity"},
	{in: "1 Gi", err: "must be bytes or a quantity"},
	{in: "abc", err: "must be bytes or a quantity"},
	{in: "Mi", err: "must be bytes or a quantity"},
	{in: ".", err: "must be bytes or a quantity"},
	{in: "1.2.3", err: "must be bytes or a quantity"},
	{in: "1e", err: "must be bytes or a quantity"},
	{in: "1e+", err: "must be bytes or a quantity"},
	{in: "1e+-3", err: "must be bytes or a quantity"},
	{in: "1e3Mi", err: "must be bytes or a quantity"},
	{in: "1e1.5", err: "must be bytes or a quantity"},
	{in: "0x10", err: "must be bytes or a quantity"},
	{in: "1_000", err: "must be bytes or a quantity"},
	{in: "9223372036854775808", err: "too large"},
	{in: "8Ei", err: "too large"},
	{in: "10E", err: "too large"},
	{in: "1e19", err: "too large"},
	{in: "1e999999999999999999", err: "too large"},
	{in: "1e-999999999999999999", err: "whole number of bytes"},
	{in: "1" + strings.Repeat("0", 70), err: "too long"},
}

func TestParseQuantity(t *testing.T) {
	for _, v := range quantityVectors {
		got, err := ParseQuantity(v.in)
		switch {
		case v.err == "" && (err != nil || got != v.bytes):
			t.Errorf("ParseQuantity(%q) = %d, %v; want %d", v.in, got, err, v.bytes)
		case v.err != "" && (err == nil || !strings.Contains(err.Error(), v.err)):
			t.Errorf("ParseQuantity(%q) = %d, %v; want an error saying %q", v.in, got, err, v.err)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("ParseQuantity(%q): error spans lines: %q", v.in, err)
		}
	}
}

func TestFormatQuantity(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, ""}, {1, "1"}, {1000, "1k"}, {1024, "1Ki"}, {268435456, "256Mi"}, {1 << 30, "1Gi"},
		{300000000, "300M"}, {299999232, "292968Ki"}, {299999233, "299999233"}, {3 << 29, "1536Mi"}, {math.MaxInt64, "9223372036854775807"},
	} {
		got := FormatQuantity(c.n)
		if got != c.want {
			t.Errorf("FormatQuantity(%d) = %q, want %q", c.n, got, c.want)
		}
		if back, err := ParseQuantity(got); err != nil || back != c.n {
			t.Errorf("ParseQuantity(FormatQuantity(%d) = %q) = %d, %v", c.n, got, back, err)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {512, "512B"}, {1023, "1023B"}, {1024, "1KiB"}, {1536, "1.5KiB"}, {268435456, "256MiB"},
		{3 << 29, "1.5GiB"}, {25276157952, "23.54GiB"}, {299999232, "286.1MiB"}, {(1 << 30) - 1, "1GiB"},
		{1<<20 + 5<<10, "1MiB"}, {1<<20 + 6<<10, "1.01MiB"}, {math.MaxInt64, "8EiB"}, {7 << 60, "7EiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, v := range quantityVectors {
		f.Add(v.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseQuantity(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("%d with an error", n)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 200 {
				t.Fatalf("error %q", msg)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseQuantity(%q) = %d", s, n)
		}
		// What is accepted reads back the same through FormatQuantity.
		if back, err := ParseQuantity(FormatQuantity(n)); err != nil || back != n {
			t.Fatalf("%q: %d formats as %q, which reads %d, %v", s, n, FormatQuantity(n), back, err)
		}
		Bytes(n)
	})
}
