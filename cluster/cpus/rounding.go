package cpus

import (
	"errors"
	"math"
)

// Rounding turns a fractional CPU budget into a whole number of workers.
type Rounding string

const (
	// Nearest rounds to the nearest whole number, halves up: 2.5 → 3,
	// 2.2 → 2. It is the default.
	Nearest Rounding = "nearest"
	// Floor rounds down: 2.5 → 2. No worker waits for CPU time the quota
	// does not grant, at the cost of leaving part of the quota unused.
	Floor Rounding = "floor"
	// Ceil rounds up: 2.2 → 3. Every bit of quota has a worker, at the cost
	// of throttling when all workers are busy.
	Ceil Rounding = "ceil"
)

// ParseRounding accepts nearest, floor and ceil; the empty string means
// Nearest. Its error says what is allowed; the caller names the setting
// (HERD_CPU_ROUNDING) and the value.
func ParseRounding(s string) (Rounding, error) {
	switch r := Rounding(s); r {
	case "":
		return Nearest, nil
	case Nearest, Floor, Ceil:
		return r, nil
	}
	return "", errors.New("must be nearest, floor or ceil")
}

// Round rounds f to a whole number by r (Nearest for the empty Rounding),
// saturating at the largest int. It does not apply the minimum of one
// worker.
func (r Rounding) Round(f Fraction) int {
	whole, rem, den := f.split()
	switch r {
	case Floor:
	case Ceil:
		if rem != 0 {
			whole++
		}
	default:
		if rem >= den-rem { // rem/den >= 1/2 without overflow
			whole++
		}
	}
	if whole > math.MaxInt {
		return math.MaxInt
	}
	return int(whole)
}
