package memory

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// quantityForms says how an amount of memory is written.
const quantityForms = "bytes or a quantity such as 268435456, 256Mi, 1Gi, 500M or 1e9"

var (
	errQuantity = errors.New("must be " + quantityForms)
	errNegative = errors.New("must not be negative: " + quantityForms + " (0: none)")
	errTooLarge = errors.New("too large: at most 9223372036854775807 bytes (8Ei less one byte)")
	errFraction = errors.New("must be a whole number of bytes: " + quantityForms)
	errMilli    = errors.New("the suffix m is thousandths of a byte: write M for 10^6 bytes or Mi for 2^20")
	errSign     = errors.New("must be written without a sign: " + quantityForms)
	errTooLong  = errors.New("too long: " + quantityForms)
)

// unknownSuffix is the error of a suffix that is no Kubernetes one, such
// as MB or K.
const unknownSuffix = "unknown suffix %s: use Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000)"

// maxQuantityLen bounds the text ParseQuantity reads: a real quantity is
// a few characters long, and the bound keeps the arithmetic small.
const maxQuantityLen = 64

// suffixes are the Kubernetes quantity suffixes of memory, by their
// multiplier.
var suffixes = map[string]int64{
	"":  1,
	"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

// ParseQuantity parses an amount of memory as Kubernetes writes it, into
// bytes: what the Downward API gives for limits.memory (a bare number of
// bytes with divisor 1, or of the divisor's units) and what a user writes
// in a pod spec.
//
//	268435456            bytes
//	256Mi, 1Gi, 512Ki    powers of 1024: Ki Mi Gi Ti Pi Ei
//	500M, 1G, 128k       powers of 1000: k M G T P E
//	1e9, 129e6, 1.5E3    a power of ten
//	1.5Gi, 0.5Ki         a decimal number, when the bytes come out whole
//	"", 0, 0Mi           0: none
//
// It refuses a sign ("-1Gi" as negative), a fraction of a byte ("1.5",
// "0.1Ki"), the suffix m (thousandths: "500m" is half a byte), any other
// suffix ("MB", "K"), more than 9223372036854775807 bytes and text longer
// than 64 bytes. The error says what is allowed; the caller names the
// setting and the value.
func ParseQuantity(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, nil
	case len(s) > maxQuantityLen:
		return 0, errTooLong
	case s[0] == '-':
		// A negative amount says so, when the rest is an amount at all.
		if _, err := ParseQuantity(s[1:]); err == nil || err == errTooLarge || err == errFraction {
			return 0, errNegative
		}
		return 0, errQuantity
	case s[0] == '+':
		return 0, errSign
	}
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	whole, frac, _ := strings.Cut(s[:end], ".")
	if whole == "" && frac == "" || strings.Contains(frac, ".") {
		return 0, errQuantity
	}
	mult, exp, err := suffix(s[end:])
	if err != nil {
		return 0, err
	}
	return scale(whole+frac, exp-len(frac), mult)
}

// suffix reads what follows the number: a multiplier, or a power of ten.
func suffix(sfx string) (mult int64, exp int, err error) {
	if m, ok := suffixes[sfx]; ok {
		return m, 0, nil
	}
	if sfx == "m" {
		return 0, 0, errMilli
	}
	if sfx[0] == 'e' || sfx[0] == 'E' {
		e := sfx[1:]
		sign := 1
		if strings.HasPrefix(e, "-") {
			sign = -1
		}
		e = strings.TrimLeft(e, "+-")
		if e == "" || len(sfx)-len(e) > 2 || strings.IndexFunc(e, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return 0, 0, errQuantity
		}
		// Any exponent past 99 overflows or leaves a fraction, whatever
		// the digits before it (at most 64 of them).
		n, err := strconv.Atoi(e)
		if err != nil || n > 99 {
			n = 99
		}
		return 1, sign * n, nil
	}
	if len(sfx) <= 4 && strings.IndexFunc(sfx, func(r rune) bool { return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') }) < 0 {
		return 0, 0, fmt.Errorf(unknownSuffix, strconv.Quote(sfx))
	}
	return 0, 0, errQuantity
}

// scale returns digits × 10^exp × mult as a whole number of bytes.
func scale(digits string, exp int, mult int64) (int64, error) {
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return 0, errQuantity
	}
	if n.Sign() == 0 {
		return 0, nil
	}
	n.Mul(n, big.NewInt(mult))
	ten := big.NewInt(10)
	if exp > 0 {
		n.Mul(n, new(big.Int).Exp(ten, big.NewInt(int64(exp)), nil))
	} else if exp < 0 {
		var rem big.Int
		n.QuoRem(n, new(big.Int).Exp(ten, big.NewInt(int64(-exp)), nil), &rem)
		if rem.Sign() != 0 {
			return 0, errFraction
		}
	}
	if !n.IsInt64() {
		return 0, errTooLarge
	}
	return n.Int64(), nil
}

// FormatQuantity writes n bytes as the shortest exact quantity that
// ParseQuantity reads back: "256Mi", "1Gi", "500M", "268435457"; "" for 0.
func FormatQuantity(n int64) string {
	if n <= 0 {
		return ""
	}
	best := strconv.FormatInt(n, 10)
	for _, u := range []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"} {
		m := suffixes[u]
		if n%m == 0 {
			if s := strconv.FormatInt(n/m, 10) + u; len(s) < len(best) || len(s) == len(best) && u[len(u)-1] == 'i' {
				best = s
			}
		}
	}
	return best
}

// Bytes writes n bytes for people, in the largest binary unit that is at
// most n, with at most two decimal places: "512B", "256MiB", "1.5GiB",
// "23.54GiB". Exact values read exactly; others are rounded half up.
func Bytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	i := 0
	for v := n; v >= 1024 && i < len(units)-1; v /= 1024 {
		i++
	}
	unit := uint64(1) << (10 * i)
	whole, rem := uint64(n)/unit, uint64(n)%unit
	// Hundredths of the unit, rounded half up: rem×100 + unit/2 takes 128
	// bits, and its high word (at most 50) is below unit, as Div64 needs.
	hi, lo := bits.Mul64(rem, 100)
	lo, carry := bits.Add64(lo, unit/2, 0)
	hundredths, _ := bits.Div64(hi+carry, lo, unit)
	if hundredths == 100 {
		whole, hundredths = whole+1, 0
	}
	if whole == 1024 && i < len(units)-1 {
		whole, i = 1, i+1 // 1023.999MiB rounds to 1GiB
	}
	s := strconv.FormatUint(whole, 10)
	if hundredths > 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", hundredths), "0")
	}
	return s + units[i]
}
