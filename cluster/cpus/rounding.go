package cpus

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
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

// Set reads s as ParseRounding does, trimmed and in any case: it is the
// setting HERD_CPU_ROUNDING as a flag.Value (and envconfig's Setter).
func (r *Rounding) Set(s string) error {
	v, err := ParseRounding(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rounding) String() string                   { return string(r) }
func (r Rounding) MarshalText() ([]byte, error)     { return []byte(r), nil }
func (r *Rounding) UnmarshalText(text []byte) error { return r.Set(string(text)) }

// UnmarshalJSON reads a scalar of herd's YAML file, which sigs.k8s.io/yaml
// decodes through JSON, as the text a variable would hold: a string as it
// is, a number or a boolean as written (so 2 is refused as "2" is), null as
// the empty text (Nearest). A list or a map is no value.
func (r *Rounding) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("must be a single value")
	}
	switch x := v.(type) {
	case string:
		return r.Set(x)
	case bool:
		return r.Set(strconv.FormatBool(x))
	case json.Number:
		return r.Set(x.String())
	case nil:
		return r.Set("")
	}
	return errors.New("must be a single value, not a list or a map")
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
