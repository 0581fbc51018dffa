//go:build linux

package ipc

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// Keys from docs/protocol.md §5.1 and §10.
func TestServerKeyTranscripts(t *testing.T) {
	tests := []struct{ query, want string }{
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8093,"addressType":4,"backlog":0,"seq":1}`, "null:8093:4:undefined:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`, "null:0:4:undefined:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"/srv/app/app.sock","port":-1,"addressType":-1,"backlog":0,"seq":1}`, "/srv/app/app.sock:-1:-1:undefined:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"0.0.0.0","port":9999,"addressType":"udp4","fd":-1,"flags":0,"seq":1}`, "0.0.0.0:9999:udp4:-1:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":18081,"addressType":4,"flags":0,"backlog":false,"seq":1}`, "127.0.0.1:18081:4:undefined:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"::","port":18082,"addressType":6,"flags":1,"backlog":0,"seq":2}`, ":::18082:6:undefined:0"},
		{`{"cmd":"NODE_CLUSTER","act":"queryServer","index":1,"data":null,"address":null,"port":null,"addressType":null,"fd":5}`, "null:null:null:5:1"},
	}
	for _, tt := range tests {
		m, err := decode([]byte(tt.query))
		if err != nil {
			t.Fatal(err)
		}
		if got := ServerKey(m); got != tt.want {
			t.Errorf("ServerKey(%s) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

// TestServerKeyMatchesNode renders odd values (numbers JS prints its own way,
// arrays, objects, escapes) and compares with node's template literal.
func TestServerKeyMatchesNode(t *testing.T) {
	node := requireNode(t)
	queries := []string{
		`{}`,
		`{"address":null,"port":8080,"addressType":4,"index":0}`,
		`{"address":"a:b","port":-0,"addressType":"udp6","fd":-1,"index":0}`,
		`{"address":"\u0000name","port":1e21,"addressType":1.5,"fd":1e-7,"index":123456789012345678901234}`,
		`{"address":"é\n\u2028","port":0.000001,"addressType":1e300,"fd":-1.25e-10,"index":2e400}`,
		`{"address":true,"port":false,"addressType":[1,null,[2,3],{}],"fd":{"a":1},"index":[]}`,
		`{"address":"x","port":100000000000000000000,"addressType":123456789.125,"fd":0.1,"index":5e-324}`,
		`{"address":[null],"port":"8080","addressType":"4","fd":"","index":1.0}`,
	}
	cmd := exec.Command(node, "testdata/serverkey.js")
	cmd.Stdin = strings.NewReader(strings.Join(queries, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(queries) {
		t.Fatalf("node printed %d keys for %d queries", len(lines), len(queries))
	}
	for i, q := range queries {
		var want string
		if err := json.Unmarshal([]byte(lines[i]), &want); err != nil {
			t.Fatal(err)
		}
		m, err := decode([]byte(q))
		if err != nil {
			t.Fatal(err)
		}
		if got := ServerKey(m); got != want {
			t.Errorf("ServerKey(%s)\n = %q\nnode %q", q, got, want)
		}
	}
}
