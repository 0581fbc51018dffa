package cpus

import (
	"encoding/json"
	"math"
	"testing"
)

const maxI = 1<<63 - 1

func TestFractionString(t *testing.T) {
	for _, c := range []struct {
		f    Fraction
		want string
	}{
		{Fraction{5, 2}, "2.5"},
		{Fraction{250000, 300000}, "0.83"},
		{Fraction{1, 1}, "1"},
		{Fraction{0, 1}, "0"},
		{Fraction{}, "0"},
		{Fraction{1, 100}, "0.01"},
		{Fraction{1, 3}, "0.33"},
		{Fraction{2, 3}, "0.67"},
		{Fraction{1, 200}, "0.01"}, // 0.005 rounds half up
		{Fraction{1, 201}, "0"},
		{Fraction{999, 1000}, "1"},
		{Fraction{1995, 1000}, "2"},
		{Fraction{1994, 1000}, "1.99"},
		{Fraction{21, 20}, "1.05"},
		{Fraction{11, 5}, "2.2"},
		{Fraction{17, 2}, "8.5"},
		{Fraction{maxI, maxI}, "1"},
		{Fraction{math.MaxUint64, 1}, "18446744073709551615"},
		{Fraction{math.MaxUint64, math.MaxUint64 - 1}, "1"},
		{Fraction{math.MaxUint64 - 1, math.MaxUint64}, "1"},
		{Fraction{1, math.MaxUint64}, "0"},
		{Fraction{3, 0}, "3/0"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%d/%d: String() = %q, want %q", c.f.Num, c.f.Den, got, c.want)
		}
	}
}

func TestFractionCmp(t *testing.T) {
	for _, c := range []struct {
		a, b Fraction
		want int
	}{
		{Fraction{3, 2}, Fraction{150000, 100000}, 0},
		{Fraction{250000, 300000}, Fraction{5, 6}, 0},
		{Fraction{1, 2}, Fraction{2, 3}, -1},
		{Fraction{4, 1}, Fraction{2, 1}, 1},
		{Fraction{}, Fraction{0, 7}, 0},
		{Fraction{}, Fraction{1, maxI}, -1},
		// Products overflow 64 bits: floats would call these equal.
		{Fraction{maxI, maxI - 1}, Fraction{maxI - 1, maxI - 2}, -1},
		{Fraction{math.MaxUint64, math.MaxUint64 - 1}, Fraction{math.MaxUint64 - 1, math.MaxUint64 - 2}, -1},
		{Fraction{maxI, maxI}, Whole(1), 0},
	} {
		if got := c.a.Cmp(c.b); got != c.want {
			t.Errorf("%v.Cmp(%v) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := c.b.Cmp(c.a); got != -c.want {
			t.Errorf("%v.Cmp(%v) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	// Why never floats: float64 cannot tell these apart, Cmp can.
	a, b := Fraction{maxI, maxI - 1}, Fraction{maxI - 1, maxI - 2}
	if a.Float() != b.Float() || a.Cmp(b) == 0 {
		t.Errorf("float64 %v vs %v, Cmp %d", a.Float(), b.Float(), a.Cmp(b))
	}
}

func TestFractionFloat(t *testing.T) {
	for _, c := range []struct {
		f    Fraction
		want float64
	}{
		{Fraction{5, 2}, 2.5}, {Fraction{}, 0}, {Fraction{1, 4}, 0.25}, {Fraction{maxI, maxI}, 1},
	} {
		if got := c.f.Float(); got != c.want {
			t.Errorf("%v.Float() = %v, want %v", c.f, got, c.want)
		}
	}
	if !math.IsInf(Fraction{1, 0}.Float(), 1) {
		t.Error("1/0 is not +Inf")
	}
}

func TestFractionSub(t *testing.T) {
	for _, c := range []struct {
		a, b, want Fraction
	}{
		{Fraction{5, 2}, Fraction{1, 2}, Whole(2)},
		{Fraction{5, 6}, Fraction{1, 3}, Fraction{1, 2}},
		{Whole(8), Fraction{1, 4}, Fraction{31, 4}},
		{Fraction{7, 3}, Fraction{}, Fraction{7, 3}},
		// The exact denominator would overflow: millionths, rounding the
		// difference down.
		{Fraction{maxI, maxI - 1}, Fraction{1, maxI - 2}, Fraction{999999, 1000000}},
		{Fraction{2*maxI - 1, maxI}, Fraction{1, maxI - 2}, Fraction{999999, 500000}},
	} {
		if got := c.a.sub(c.b); got != c.want {
			t.Errorf("%d/%d - %d/%d = %d/%d, want %d/%d", c.a.Num, c.a.Den, c.b.Num, c.b.Den, got.Num, got.Den, c.want.Num, c.want.Den)
		}
	}
}

func TestFractionJSON(t *testing.T) {
	b, err := json.Marshal(Fraction{5, 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"num":5,"den":2,"cpus":"2.5"}` {
		t.Errorf("marshal: %s", b)
	}
	var f Fraction
	if err := json.Unmarshal(b, &f); err != nil || f != (Fraction{5, 2}) {
		t.Errorf("unmarshal: %v, %v", f, err)
	}
}

func TestRound(t *testing.T) {
	for _, c := range []struct {
		f                    Fraction
		nearest, floor, ceil int
	}{
		{Fraction{0, 1}, 0, 0, 0},
		{Fraction{1, 100}, 0, 0, 1},
		{Fraction{1, 2}, 1, 0, 1}, // halves up
		{Fraction{5, 6}, 1, 0, 1},
		{Fraction{3, 2}, 2, 1, 2},
		{Fraction{5, 2}, 3, 2, 3},
		{Fraction{11, 5}, 2, 2, 3},
		{Fraction{17, 2}, 9, 8, 9},
		{Whole(4), 4, 4, 4},
		{Fraction{maxI, maxI}, 1, 1, 1},
		{Fraction{maxI / 2, maxI}, 0, 0, 1},   // just under one half
		{Fraction{maxI/2 + 1, maxI}, 1, 0, 1}, // just over
		{Fraction{math.MaxUint64, 1}, math.MaxInt, math.MaxInt, math.MaxInt},
	} {
		for _, r := range []struct {
			r    Rounding
			want int
		}{{Nearest, c.nearest}, {"", c.nearest}, {Floor, c.floor}, {Ceil, c.ceil}} {
			if got := r.r.Round(c.f); got != r.want {
				t.Errorf("%q.Round(%d/%d) = %d, want %d", r.r, c.f.Num, c.f.Den, got, r.want)
			}
		}
	}
}

func TestParseRounding(t *testing.T) {
	for in, want := range map[string]Rounding{"": Nearest, "nearest": Nearest, "floor": Floor, "ceil": Ceil} {
		if got, err := ParseRounding(in); err != nil || got != want {
			t.Errorf("ParseRounding(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"round", "Nearest", "CEIL", " floor", "up"} {
		_, err := ParseRounding(in)
		if err == nil || err.Error() != "must be nearest, floor or ceil" {
			t.Errorf("ParseRounding(%q) error %v", in, err)
		}
	}
}

func FuzzFraction(f *testing.F) {
	f.Add(uint64(5), uint64(2), uint64(1), uint64(3))
	f.Add(uint64(maxI), uint64(maxI-1), uint64(maxI-1), uint64(maxI-2))
	f.Add(uint64(math.MaxUint64), uint64(1), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, an, ad, bn, bd uint64) {
		if ad == 0 || bd == 0 {
			return
		}
		a, b := Fraction{an, ad}, Fraction{bn, bd}
		c := a.Cmp(b)
		if c != -b.Cmp(a) || a.Cmp(a) != 0 || a.Cmp(newFraction(an, ad)) != 0 {
			t.Fatalf("Cmp(%v, %v) inconsistent", a, b)
		}
		_ = a.String()
		if c > 0 {
			d := a.sub(b)
			if d.Den == 0 || a.Less(d) {
				t.Fatalf("%d/%d - %d/%d = %d/%d", an, ad, bn, bd, d.Num, d.Den)
			}
		}
		fl, n, ce := Floor.Round(a), Nearest.Round(a), Ceil.Round(a)
		if fl > n || n > ce || ce-fl > 1 {
			t.Fatalf("round(%d/%d): floor %d nearest %d ceil %d", an, ad, fl, n, ce)
		}
	})
}
