package cpus

import (
	"errors"
	"math"
	"strings"
)

var (
	errRequest      = errors.New("must be millicores such as 500 (what the Downward API gives with divisor 1m), or a CPU quantity such as 500m, 2, 1.5 or 0.25; not negative")
	errRequestLarge = errors.New("too large: at most 9223372036854775807 millicores")
	errRequestNeg   = errors.New("must not be negative: give millicores such as 500, or a CPU quantity such as 500m, 2, 1.5 or 0.25 (0: none)")
)

// ParseRequest parses HERD_CPU_REQUEST (and HERD_CPU_LIMIT, written the same
// way) into millicores.
//
// A bare whole number of 10 or more is millicores: "500" is half a CPU,
// because that is what the Downward API writes for resourceFieldRef
// {resource: requests.cpu, divisor: 1m}. A Kubernetes CPU quantity is
// accepted too: a number with the suffix m ("500m", "1500m") is millicores,
// a decimal number ("1.5", "0.25", "2.0") is CPUs, and so is a bare digit
// from 1 to 9 ("2" is two CPUs, as in a pod spec). The two readings of a
// bare number meet only below 10 millicores, less than any server asks for;
// write "5m" for five millicores. As in Kubernetes, precision finer than
// one millicore rounds up ("0.0001" is 1m). "", "0", "0m" and "0.0" give 0:
// no request (the Downward API writes 0 for a container without one).
//
// The error says what is allowed; the caller names the setting and value.
func ParseRequest(s string) (millicores int64, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		// A negative amount says so, when the rest is an amount at all.
		if _, err := ParseRequest(rest); err == nil || err == errRequestLarge {
			return 0, errRequestNeg
		}
		return 0, errRequest
	}
	scale := int64(1000) // millicores per unit of the number written
	num := s
	if n, ok := strings.CutSuffix(s, "m"); ok {
		num, scale = n, 1
	}
	whole, frac, dot := strings.Cut(num, ".")
	if !dot && scale == 1000 && !(len(whole) == 1 && whole[0] >= '1' && whole[0] <= '9') {
		scale = 1 // a bare whole number of 10 or more (or 0): millicores
	}
	if (whole == "" && frac == "") || !(whole == "" || digits(whole)) || !(frac == "" || digits(frac)) {
		return 0, errRequest
	}
	var m int64
	for i := 0; i < len(whole); i++ {
		d := int64(whole[i] - '0')
		if m > (math.MaxInt64-d)/10 {
			return 0, errRequestLarge
		}
		m = m*10 + d
	}
	if m > math.MaxInt64/scale {
		return 0, errRequestLarge
	}
	m *= scale
	// The fraction: its first digits fill the millicores the scale leaves,
	// any non-zero digit after them rounds up.
	var part int64
	places := 0
	for s := scale; s > 1; s /= 10 {
		places++
	}
	roundUp := false
	for i := 0; i < len(frac); i++ {
		if i < places {
			part = part*10 + int64(frac[i]-'0')
		} else if frac[i] != '0' {
			roundUp = true
		}
	}
	for i := len(frac); i < places; i++ {
		part *= 10
	}
	if roundUp {
		part++
	}
	if m > math.MaxInt64-part {
		return 0, errRequestLarge
	}
	return m + part, nil
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
