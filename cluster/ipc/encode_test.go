//go:build linux

package ipc

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Lines from docs/protocol.md §10: Node v20's own primary (§10.1, strace) and its
// workers, and the Go prototype's replies that node accepted (§10.2-10.13).
// The encoders must produce exactly these bytes.
func TestEncodersMatchTranscripts(t *testing.T) {
	ticket := json.RawMessage(`{"ticketKeys":"c6d02938fab6f16b02995e137aa737cb9e39fac05a2baa72e85e04005c7a9c57a6cf02886e829652cfb748fbad2019bd"}`)
	sockname := map[string]any{"address": "::", "family": "IPv6", "port": 8094}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		// herd (primary) → worker
		{"§10.1 shared queryServer reply (inner)",
			Reply(1, 0, map[string]any{"errno": 0, "key": "null:8093:4:undefined:0", "data": nil}),
			`{"cmd":"NODE_CLUSTER","errno":0,"key":"null:8093:4:undefined:0","ack":1,"data":null,"seq":0}`},
		{"§10.1 rr queryServer reply",
			Reply(1, 0, map[string]any{"errno": nil, "key": "null:8094:4:undefined:0", "data": nil, "sockname": sockname}),
			`{"cmd":"NODE_CLUSTER","errno":null,"key":"null:8094:4:undefined:0","ack":1,"data":null,"sockname":{"address":"::","family":"IPv6","port":8094},"seq":0}`},
		{"§10.1 newconn (inner)",
			ClusterMessage("newconn", 2, map[string]any{"key": "null:8094:4:undefined:0"}),
			`{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:8094:4:undefined:0","seq":2}`},
		{"§10.1 disconnect",
			ClusterMessage("disconnect", 2, nil),
			`{"cmd":"NODE_CLUSTER","act":"disconnect","seq":2}`},
		{"§10.6 error reply",
			Reply(1, 0, map[string]any{"errno": -98, "key": "/srv/app/app.sock:-1:-1:undefined:0", "data": nil}),
			`{"cmd":"NODE_CLUSTER","errno":-98,"key":"/srv/app/app.sock:-1:-1:undefined:0","ack":1,"data":null,"seq":0}`},
		{"§10.9 exitedAfterDisconnect ack",
			Reply(4, 2, nil),
			`{"cmd":"NODE_CLUSTER","ack":4,"seq":2}`},
		{"§10.11 TLS data echoed",
			Reply(1, 1, map[string]any{"errno": nil, "key": "null:8443:4:undefined:0", "data": ticket,
				"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 8443}}),
			`{"cmd":"NODE_CLUSTER","errno":null,"key":"null:8443:4:undefined:0","ack":1,"data":{"ticketKeys":"c6d02938fab6f16b02995e137aa737cb9e39fac05a2baa72e85e04005c7a9c57a6cf02886e829652cfb748fbad2019bd"},"sockname":{"address":"::","family":"IPv6","port":8443},"seq":1}`},
		{"§10.10 UDP reply (inner)",
			Reply(1, 0, map[string]any{"errno": 0, "key": "0.0.0.0:9999:udp4:-1:0", "data": nil}),
			`{"cmd":"NODE_CLUSTER","errno":0,"key":"0.0.0.0:9999:udp4:-1:0","ack":1,"data":null,"seq":0}`},

		// worker → primary (what herd's Go worker package sends)
		{"§10.1 online", ClusterMessage("online", 0, nil), `{"cmd":"NODE_CLUSTER","act":"online","seq":0}`},
		{"§10.1 queryServer",
			ClusterMessage("queryServer", 1, map[string]any{"index": 0, "data": nil, "address": nil, "port": 8093, "addressType": 4, "backlog": 0}),
			`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8093,"addressType":4,"backlog":0,"seq":1}`},
		{"§10.12 queryServer with host",
			ClusterMessage("queryServer", 1, map[string]any{"index": 0, "data": nil, "address": "127.0.0.1", "port": 18081, "addressType": 4, "flags": 0, "backlog": false}),
			`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":18081,"addressType":4,"flags":0,"backlog":false,"seq":1}`},
		{"§10.10 UDP queryServer",
			ClusterMessage("queryServer", 1, map[string]any{"index": 0, "data": nil, "address": "0.0.0.0", "port": 9999, "addressType": "udp4", "fd": -1, "flags": 0}),
			`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"0.0.0.0","port":9999,"addressType":"udp4","fd":-1,"flags":0,"seq":1}`},
		{"§10.1 newconn reply", Reply(2, 3, map[string]any{"accepted": true}), `{"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3}`},
		{"§10.1 close", ClusterMessage("close", 3, map[string]any{"key": "null:8093:4:undefined:0"}),
			`{"cmd":"NODE_CLUSTER","act":"close","key":"null:8093:4:undefined:0","seq":3}`},
		{"§10.9 exitedAfterDisconnect", ClusterMessage("exitedAfterDisconnect", 4, nil),
			`{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":4}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", tt.got, tt.want)
			}
		})
	}
}

// TestHandleLineMatchesTranscripts: the whole NODE_HANDLE line on the wire.
func TestHandleLineMatchesTranscripts(t *testing.T) {
	c, p := newPair(t)
	run(t, c)
	h, hpeer := socketpair(t, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer closeFDs([]int{h, hpeer})
	cases := []struct {
		typ  string
		msg  []byte
		want string
	}{
		{TypeNetNative, ClusterMessage("newconn", 2, map[string]any{"key": "null:8094:4:undefined:0"}),
			`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:8094:4:undefined:0","seq":2}}`},
		{TypeNetNative, Reply(1, 0, map[string]any{"errno": 0, "key": "null:8093:4:undefined:0", "data": nil}),
			`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"null:8093:4:undefined:0","ack":1,"data":null,"seq":0}}`},
	}
	for _, cs := range cases {
		must(t, c.SendHandle(cs.typ, cs.msg, h, nil))
		l := p.expectLine(cs.want, 1)
		closeFDs(l.fds)
		p.write(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	}
}

func TestEncodeFieldRules(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		// the encoder owns cmd, act, seq (and ack in Reply)
		{string(ClusterMessage("x", 7, map[string]any{"cmd": "evil", "seq": 1, "act": "y"})), `{"cmd":"NODE_CLUSTER","act":"x","seq":7}`},
		{string(Reply(1, 2, map[string]any{"ack": 9, "cmd": "evil"})), `{"cmd":"NODE_CLUSTER","ack":1,"seq":2}`},
		// ack only when given
		{string(ClusterMessage("x", 1, map[string]any{"ack": 3})), `{"cmd":"NODE_CLUSTER","act":"x","ack":3,"seq":1}`},
		// unknown fields after known ones, sorted
		{string(ClusterMessage("x", 1, map[string]any{"zeta": 1, "alpha": 2, "key": "k"})), `{"cmd":"NODE_CLUSTER","act":"x","key":"k","alpha":2,"zeta":1,"seq":1}`},
		// values JSON cannot carry become null, as JSON.stringify does for NaN
		{string(Reply(1, 1, map[string]any{"a": math.NaN(), "b": math.Inf(1), "c": make(chan int), "d": json.RawMessage("{bad"), "e": json.RawMessage(nil)})),
			`{"cmd":"NODE_CLUSTER","ack":1,"a":null,"b":null,"c":null,"d":null,"e":null,"seq":1}`},
		// raw JSON is compacted: no newline can reach the wire
		{string(Reply(1, 1, map[string]any{"data": json.RawMessage("{\n  \"k\": [1,\n 2]\n}")})), `{"cmd":"NODE_CLUSTER","ack":1,"data":{"k":[1,2]},"seq":1}`},
		// strings: escaped, U+2028 too, invalid UTF-8 replaced, no HTML escaping
		{string(ClusterMessage("a\"b\\c\n\u2028\xff<&>", 1, nil)), `{"cmd":"NODE_CLUSTER","act":"a\"b\\c\n\u2028\ufffd<&>","seq":1}`},
		{string(ClusterMessage("x", -1, map[string]any{"f": 1.5, "u": uint64(1 << 63), "s": []string{"a"}})), `{"cmd":"NODE_CLUSTER","act":"x","f":1.5,"s":["a"],"u":9223372036854775808,"seq":-1}`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got\n%s\nwant\n%s", tt.got, tt.want)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\x00\x01\x1f\x7f", "é☃😀", "\xc3", "a\xffb", "\u2028\u2029", "<script>&", "\b\f\n\r\t\"\\/"} {
		if got, want := string(appendString(nil, s)), stdlibString(s); got != want {
			t.Errorf("appendString(%q) = %s, encoding/json says %s", s, got, want)
		}
	}
}

func stdlibString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
