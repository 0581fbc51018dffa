package worker

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/herd-sh/herd/cluster/ipc"
)

// TestParseQuery: the queryServer node sends for the equivalent listen().
func TestParseQuery(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(cwd, "rel.sock")
	const pre = `{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,`
	for _, tc := range []struct {
		network, address string
		want             string // the line after pre; "" when not sent to herd
		indexesKey       string
	}{
		// listen(8080): the bytes of docs/protocol.md §10.1
		{"tcp", ":8080", `"address":null,"port":8080,"addressType":4,"backlog":0,"seq":1}`, ":8080:4:"},
		{"tcp", "", `"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`, ":0:4:"},
		{"tcp", ":http", `"address":null,"port":80,"addressType":4,"backlog":0,"seq":1}`, ":80:4:"},
		{"tcp", "0.0.0.0:8080", `"address":null,"port":8080,"addressType":4,"backlog":0,"seq":1}`, ":8080:4:"},
		{"tcp", "[::]:8080", `"address":null,"port":8080,"addressType":4,"backlog":0,"seq":1}`, ":8080:4:"},
		{"tcp4", ":8080", `"address":"0.0.0.0","port":8080,"addressType":4,"flags":0,"backlog":0,"seq":1}`, "0.0.0.0:8080:4:"},
		{"tcp6", ":8080", `"address":"::","port":8080,"addressType":6,"flags":1,"backlog":0,"seq":1}`, ":::8080:6:"},
		{"tcp", "127.0.0.1:0", `"address":"127.0.0.1","port":0,"addressType":4,"flags":0,"backlog":0,"seq":1}`, "127.0.0.1:0:4:"},
		{"tcp", "[::1]:0", `"address":"::1","port":0,"addressType":6,"flags":0,"backlog":0,"seq":1}`, "::1:0:6:"},
		{"tcp6", "[::1]:0", `"address":"::1","port":0,"addressType":6,"flags":1,"backlog":0,"seq":1}`, "::1:0:6:"},
		{"tcp", "[fe80::1%lo]:0", `"address":"fe80::1%lo","port":0,"addressType":6,"flags":0,"backlog":0,"seq":1}`, "fe80::1%lo:0:6:"},
		{"tcp4", "localhost:0", `"address":"127.0.0.1","port":0,"addressType":4,"flags":0,"backlog":0,"seq":1}`, "127.0.0.1:0:4:"},
		{"unix", "/run/x.sock", `"address":"/run/x.sock","port":-1,"addressType":-1,"backlog":0,"seq":1}`, "/run/x.sock:-1:-1:"},
		{"unix", "rel.sock", `"address":"` + rel + `","port":-1,"addressType":-1,"backlog":0,"seq":1}`, rel + ":-1:-1:"},
		{"unix", "@abstract", `"address":"\u0000abstract","port":-1,"addressType":-1,"backlog":0,"seq":1}`, "\x00abstract:-1:-1:"},
		// Bound by the process itself.
		{"udp", ":53", "", ""},
		{"unixpacket", "/run/p.sock", "", ""},
		{"unix", "", "", ""},
	} {
		t.Run(tc.network+" "+tc.address, func(t *testing.T) {
			q, ok, err := parseQuery(tc.network, tc.address)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want != "") {
				t.Fatalf("sent to herd: %v, want %v", ok, tc.want != "")
			}
			if !ok {
				return
			}
			if got := string(ipc.ClusterMessage(actQueryServer, 1, q.fields(0, q.port))); got != pre+tc.want {
				t.Errorf("queryServer\n\t%s\nwant\n\t%s", got, pre+tc.want)
			}
			if got := q.indexesKey(); got != tc.indexesKey {
				t.Errorf("indexesKey %q, want %q", got, tc.indexesKey)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, tc := range [][2]string{
		{"tcp4", "[::1]:0"},
		{"tcp", ":99999"},
		{"tcp", "8080"},
		{"tcp", ":nosuchservice"},
	} {
		_, _, err := parseQuery(tc[0], tc[1])
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "listen" {
			t.Errorf("parseQuery(%q, %q): %v, want a listen *net.OpError", tc[0], tc[1], err)
		}
	}
}
