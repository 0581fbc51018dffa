package ipc

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// ServerKey returns the key node's primary gives the server a queryServer
// message asks for (primary.js):
//
//	`${address}:${port}:${addressType}:${fd}:${index}`
//
// with each field rendered as a JS template literal renders it: null as
// "null", an absent field as "undefined", numbers as JS prints them, strings
// as they are. For example null:8080:4:undefined:0, :::18082:6:undefined:0
// and 0.0.0.0:9999:udp4:-1:0. The key is opaque (it contains colons); the
// worker echoes it in close, and asserts it is unique per server within it.
func ServerKey(q Message) string {
	var b strings.Builder
	for i, name := range [...]string{"address", "port", "addressType", "fd", "index"} {
		if i > 0 {
			b.WriteByte(':')
		}
		raw, ok := q.Fields[name]
		if !ok {
			b.WriteString("undefined")
			continue
		}
		b.WriteString(jsString(raw))
	}
	return b.String()
}

// jsString renders a JSON value as JS's String(value) would.
func jsString(raw json.RawMessage) string {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "undefined"
	}
	return jsValueString(v, false)
}

// jsValueString is String(v); inArray applies Array.prototype.join's rule
// that null (and undefined) elements become "".
func jsValueString(v any, inArray bool) string {
	switch x := v.(type) {
	case nil:
		if inArray {
			return ""
		}
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !math.IsInf(f, 0) {
			return string(x)
		}
		return jsNumber(f)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = jsValueString(e, true)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		return "[object Object]"
	}
	return "undefined"
}

// jsNumber formats f as JS's Number.prototype.toString() does (ECMA-262
// Number::toString): the shortest digits that round-trip, in plain notation
// for exponents from -7 to 20, else d.ddde±n.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	es := "+"
	if n-1 < 0 {
		es = "-"
	}
	m := digits[:1]
	if k > 1 {
		m += "." + digits[1:]
	}
	return sign + m + "e" + es + strconv.Itoa(abs(n-1))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
