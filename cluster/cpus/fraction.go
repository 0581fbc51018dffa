package cpus

import (
	"encoding/json"
	"math"
	"math/bits"
	"strconv"
)

// Fraction is an exact non-negative rational number of CPUs, Num/Den.
//
// A Fraction with Den 0 is zero when Num is 0 (the zero value) and invalid
// otherwise. Fractions are compared by cross-multiplying into 128-bit
// products, so no quota or period that fits in 64 bits can overflow and no
// rounding error can turn 2.5 CPUs into 2.4999.
type Fraction struct {
	Num uint64 `json:"num"`
	Den uint64 `json:"den"`
}

// Whole returns n CPUs.
func Whole(n uint64) Fraction { return Fraction{n, 1} }

// newFraction returns num/den in lowest terms; den must not be 0.
func newFraction(num, den uint64) Fraction {
	if num == 0 {
		return Fraction{0, 1}
	}
	g := gcd(num, den)
	return Fraction{num / g, den / g}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// valid reports whether f is a number: Den > 0, or the zero value.
func (f Fraction) valid() bool { return f.Den != 0 || f.Num == 0 }

// norm turns the zero value into 0/1 so arithmetic can divide by Den.
func (f Fraction) norm() Fraction {
	if f.Den == 0 {
		return Fraction{0, 1}
	}
	return f
}

// IsZero reports whether f is zero.
func (f Fraction) IsZero() bool { return f.Num == 0 }

// Cmp returns -1, 0 or +1 as f is less than, equal to or greater than g.
// Both must be valid. It compares f.Num*g.Den with g.Num*f.Den as 128-bit
// products.
func (f Fraction) Cmp(g Fraction) int {
	f, g = f.norm(), g.norm()
	ah, al := bits.Mul64(f.Num, g.Den)
	bh, bl := bits.Mul64(g.Num, f.Den)
	switch {
	case ah < bh, ah == bh && al < bl:
		return -1
	case ah == bh && al == bl:
		return 0
	}
	return 1
}

// Less reports whether f < g.
func (f Fraction) Less(g Fraction) bool { return f.Cmp(g) < 0 }

// split returns the whole part of f and the remainder of Num over Den.
func (f Fraction) split() (whole, rem, den uint64) {
	f = f.norm()
	return f.Num / f.Den, f.Num % f.Den, f.Den
}

// String renders f for people as a decimal with at most two places,
// rounded half up, without trailing zeros: "2.5", "0.83", "1", "0". An
// invalid Fraction renders as "num/0".
func (f Fraction) String() string {
	if !f.valid() {
		return strconv.FormatUint(f.Num, 10) + "/0"
	}
	whole, rem, den := f.split()
	// hundredths = round(rem*100/den); rem < den, so hi < den and Div64
	// cannot overflow.
	hi, lo := bits.Mul64(rem, 100)
	h, r := bits.Div64(hi, lo, den)
	if r >= den-r {
		h++
	}
	if h == 100 {
		whole, h = whole+1, 0
	}
	s := strconv.FormatUint(whole, 10)
	switch {
	case h == 0:
		return s
	case h%10 == 0:
		return s + "." + strconv.FormatUint(h/10, 10)
	case h < 10:
		return s + ".0" + strconv.FormatUint(h, 10)
	}
	return s + "." + strconv.FormatUint(h, 10)
}

// Float returns f as a float64, for metrics and display only: never compare
// budgets through it. An invalid Fraction gives +Inf.
func (f Fraction) Float() float64 {
	if !f.valid() {
		return math.Inf(1)
	}
	f = f.norm()
	whole, rem, den := f.split()
	return float64(whole) + float64(rem)/float64(den)
}

// MarshalJSON writes {"num":5,"den":2,"cpus":"2.5"}; the cpus member is
// String, for people, and is ignored when reading the value back.
func (f Fraction) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Num  uint64 `json:"num"`
		Den  uint64 `json:"den"`
		CPUs string `json:"cpus"`
	}{f.Num, f.Den, f.String()})
}

// sub returns f-g for g < f, exactly when the result fits in 64 bits.
// Otherwise (only possible with periods far beyond the kernel's 1 s
// maximum) it works in millionths of a CPU, rounding f down and g up, so
// the result is never more than the exact difference.
func (f Fraction) sub(g Fraction) Fraction {
	f, g = f.norm(), g.norm()
	d := gcd(f.Den, g.Den)
	fs, gs := g.Den/d, f.Den/d // scale of f's and g's numerators
	hiDen, den := bits.Mul64(f.Den, fs)
	hiA, a := bits.Mul64(f.Num, fs)
	hiB, b := bits.Mul64(g.Num, gs)
	if hiDen == 0 && hiA == 0 && hiB == 0 {
		return newFraction(a-b, den)
	}
	const micro = 1_000_000
	a, b = f.scaled(micro, false), g.scaled(micro, true)
	if b >= a {
		return Fraction{0, 1}
	}
	return newFraction(a-b, micro)
}

// scaled returns f*unit rounded down, or up when ceil is set, saturating at
// the largest uint64.
func (f Fraction) scaled(unit uint64, ceil bool) uint64 {
	hi, lo := bits.Mul64(f.Num, unit)
	if hi >= f.Den {
		return math.MaxUint64
	}
	q, r := bits.Div64(hi, lo, f.Den)
	if ceil && r != 0 && q < math.MaxUint64 {
		q++
	}
	return q
}

// Per is f shared among n (n at least 1): the CPUs each of n workers gets.
func (f Fraction) Per(n int) Fraction {
	if n < 1 {
		n = 1
	}
	if f.Den == 0 || f.Den > math.MaxUint64/uint64(n) {
		return f
	}
	return newFraction(f.Num, f.Den*uint64(n))
}

// Ceil is f rounded up to a whole number.
func (f Fraction) Ceil() uint64 {
	whole, rem, _ := f.split()
	if rem > 0 {
		whole++
	}
	return whole
}
