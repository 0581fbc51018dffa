package ipc

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// fieldRank is the order in which node's cluster code writes the fields it
// knows (JSON.stringify keeps insertion order; sendHelper puts cmd first
// and seq last, internal/cluster/utils.js):
//
//	queryServer   act, index, data, address, port, addressType, fd, flags, backlog, readableAll, writableAll
//	its reply     errno, key, ack, data, sockname   (primary.js: {errno, key, ack, data, ...reply})
//	newconn       act, key
//	its reply     ack, accepted
//	close         act, key
//
// One order satisfies all of them. Other fields follow, sorted by name.
var fieldRank = map[string]int{
	"act": 1, "errno": 2, "key": 3, "ack": 4, "accepted": 5, "index": 6,
	"data": 7, "address": 8, "port": 9, "addressType": 10, "fd": 11,
	"flags": 12, "backlog": 13, "readableAll": 14, "writableAll": 15,
	"sockname": 16,
}

// ClusterMessage encodes a cluster-layer message the way node's sendHelper
// does: {"cmd":"NODE_CLUSTER","act":act,<fields>,"seq":seq}, cmd first, seq
// last, and the fields in the order node's cluster code writes them: act,
// errno, key, ack, accepted, index, data, address, port, addressType, fd,
// flags, backlog, readableAll, writableAll, sockname, then any others by
// name. Fields named cmd, act or seq are ignored: the encoder owns them; ack
// appears only if fields has it. The result is one line of valid JSON
// without the '\n' (Send adds it); values JSON cannot hold become null.
//
//	ClusterMessage("newconn", 2, map[string]any{"key": "null:8094:4:undefined:0"})
//	→ {"cmd":"NODE_CLUSTER","act":"newconn","key":"null:8094:4:undefined:0","seq":2}
func ClusterMessage(act string, seq int64, fields map[string]any) []byte {
	return encodeCluster(&act, nil, seq, fields)
}

// Reply encodes a cluster-layer reply to the message whose seq was ack:
// {"cmd":"NODE_CLUSTER",<fields with "ack" in node's place>,"seq":seq}, in
// ClusterMessage's field order. Fields named cmd, ack or seq are ignored.
//
//	Reply(1, 0, map[string]any{"errno": 0, "key": "null:8093:4:undefined:0", "data": nil})
//	→ {"cmd":"NODE_CLUSTER","errno":0,"key":"null:8093:4:undefined:0","ack":1,"data":null,"seq":0}
//	Reply(4, 2, nil)
//	→ {"cmd":"NODE_CLUSTER","ack":4,"seq":2}
func Reply(ack, seq int64, fields map[string]any) []byte {
	return encodeCluster(nil, &ack, seq, fields)
}

func encodeCluster(act *string, ack *int64, seq int64, fields map[string]any) []byte {
	type kv struct {
		name string
		rank int
		val  any
	}
	kvs := make([]kv, 0, len(fields)+2)
	for name, v := range fields {
		switch name {
		case "cmd", "seq":
			continue
		case "act":
			if act != nil {
				continue
			}
		case "ack":
			if ack != nil {
				continue
			}
		}
		kvs = append(kvs, kv{name, fieldRank[name], v})
	}
	if act != nil {
		kvs = append(kvs, kv{"act", fieldRank["act"], *act})
	}
	if ack != nil {
		kvs = append(kvs, kv{"ack", fieldRank["ack"], *ack})
	}
	slices.SortFunc(kvs, func(a, b kv) int {
		ra, rb := a.rank, b.rank
		if ra == 0 {
			ra = math.MaxInt
		}
		if rb == 0 {
			rb = math.MaxInt
		}
		if ra != rb {
			return ra - rb
		}
		return compareStrings(a.name, b.name)
	})
	b := make([]byte, 0, 64+16*len(kvs))
	b = append(b, `{"cmd":"NODE_CLUSTER"`...)
	for _, f := range kvs {
		b = append(b, ',')
		b = appendString(b, f.name)
		b = append(b, ':')
		b = appendValue(b, f.val)
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, '}')
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// appendValue appends v as JSON. Values JSON cannot carry (NaN, ±Inf, a
// channel, a func, invalid json.RawMessage) become null, as JSON.stringify
// turns NaN into null: the encoders cannot fail and never emit invalid JSON.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10)
	case json.RawMessage:
		return appendRaw(b, x)
	case []byte:
		// Not base64 like encoding/json: a []byte here is encoded JSON, as in Send.
		return appendRaw(b, x)
	}
	out, err := json.Marshal(v) // escapes <>& too; node decodes the same string either way
	if err != nil {
		return append(b, "null"...)
	}
	return appendRaw(b, out)
}

// appendRaw appends raw JSON compacted (so no newline from it ever reaches
// the wire), or null if it is not valid JSON.
func appendRaw(b []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return append(b[:len(b):len(b)], "null"...)
	}
	return buf.Bytes()
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping off: quote, backslash and control characters escaped,
// U+2028 and U+2029 escaped (JSONP-safe), invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
