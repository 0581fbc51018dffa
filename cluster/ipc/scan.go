package ipc

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// A hand-rolled splitter for the top level of a JSON object. It runs only on
// input json.Valid accepted, so it needs no error handling of its own, and it
// spares the hot path (a newconn reply per connection) the allocations of
// encoding/json's map decoding. FuzzDecode checks it against encoding/json.

// scanObject returns the members of the valid JSON object raw; the values
// are sub-slices of raw.
func scanObject(raw []byte) map[string]json.RawMessage {
	fields := make(map[string]json.RawMessage, 8)
	i := skipSpace(raw, 0) + 1 // past '{'
	for {
		i = skipSpace(raw, i)
		if raw[i] == '}' {
			return fields
		}
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		end := skipString(raw, i)
		name := keyString(raw[i:end])
		i = skipSpace(raw, end) + 1 // past ':'
		i = skipSpace(raw, i)
		vend := skipValue(raw, i)
		fields[name] = raw[i:vend:vend]
		i = vend
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// keyString decodes a quoted JSON string; the names node uses come back
// without an allocation.
func keyString(q []byte) string {
	s := q[1 : len(q)-1]
	switch string(s) {
	case "cmd":
		return "cmd"
	case "act":
		return "act"
	case "seq":
		return "seq"
	case "ack":
		return "ack"
	case "key":
		return "key"
	case "accepted":
		return "accepted"
	case "type":
		return "type"
	case "msg":
		return "msg"
	case "errno":
		return "errno"
	case "data":
		return "data"
	case "index":
		return "index"
	case "address":
		return "address"
	case "port":
		return "port"
	case "addressType":
		return "addressType"
	case "fd":
		return "fd"
	case "flags":
		return "flags"
	case "backlog":
		return "backlog"
	}
	return unquote(q)
}

// unquote decodes a quoted JSON string, cheaply when it has no escapes and
// is valid UTF-8, else as encoding/json does (invalid bytes become U+FFFD).
func unquote(q []byte) string {
	s := q[1 : len(q)-1]
	plain := true
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(s)
	}
	var out string
	json.Unmarshal(q, &out)
	return out
}

// wireString returns a JSON string value, interning node's own cmd and act
// values; "" for anything that is not a string.
func wireString(raw json.RawMessage) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	switch string(raw[1 : len(raw)-1]) {
	case CmdCluster:
		return CmdCluster
	case CmdHandle:
		return CmdHandle
	case CmdHandleAck:
		return CmdHandleAck
	case CmdHandleNack:
		return CmdHandleNack
	case "online":
		return "online"
	case "queryServer":
		return "queryServer"
	case "listening":
		return "listening"
	case "close":
		return "close"
	case "exitedAfterDisconnect":
		return "exitedAfterDisconnect"
	case "newconn":
		return "newconn"
	case "disconnect":
		return "disconnect"
	}
	return unquote(raw)
}

// wireInt returns a JSON number as JSON.parse sees it (a float64) when that
// is integral and within ±2^53 (1, -3, 2.0, 1e3), else ok = false.
func wireInt(raw json.RawMessage) (n int64, ok bool) {
	if len(raw) == 0 {
		return 0, false
	}
	neg, digits := false, raw
	if digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	if len(digits) > 0 && len(digits) <= 15 { // below 2^53: exact
		var v int64
		simple := true
		for _, c := range digits {
			if c < '0' || c > '9' {
				simple = false
				break
			}
			v = v*10 + int64(c-'0')
		}
		if simple {
			if neg {
				v = -v
			}
			return v, true
		}
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// FieldString is a field's value when it is a JSON string, else "".
func FieldString(raw json.RawMessage) string { return wireString(raw) }

// FieldInt is a field's value when it is an integral JSON number.
func FieldInt(raw json.RawMessage) (int64, bool) { return wireInt(raw) }
