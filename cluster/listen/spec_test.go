package listen

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tcp := func(network, addr, name string) Spec {
		return Spec{Network: network, Address: addr, Name: name, UID: -1, GID: -1}
	}
	for _, tc := range []struct {
		in      string
		want    []Spec
		strings []string
	}{
		{":8080", []Spec{tcp("tcp", ":8080", "tcp-8080")}, []string{"tcp://:8080"}},
		{"0.0.0.0:8080", []Spec{tcp("tcp", "0.0.0.0:8080", "tcp-8080")}, []string{"tcp://0.0.0.0:8080"}},
		{"[::]:8080", []Spec{tcp("tcp", "[::]:8080", "tcp-8080")}, []string{"tcp://[::]:8080"}},
		{"127.0.0.1:0", []Spec{tcp("tcp", "127.0.0.1:0", "tcp-0")}, []string{"tcp://127.0.0.1:0"}},
		{"tcp://:8080", []Spec{tcp("tcp", ":8080", "tcp-8080")}, []string{"tcp://:8080"}},
		{"TCP://:65535", []Spec{tcp("tcp", ":65535", "tcp-65535")}, []string{"tcp://:65535"}},
		{"tcp4://0.0.0.0:8080", []Spec{tcp("tcp4", "0.0.0.0:8080", "tcp4-8080")}, []string{"tcp4://0.0.0.0:8080"}},
		{"tcp4://:8080", []Spec{tcp("tcp4", "0.0.0.0:8080", "tcp4-8080")}, []string{"tcp4://0.0.0.0:8080"}},
		{"tcp6://[::1]:8080", []Spec{tcp("tcp6", "[::1]:8080", "tcp6-8080")}, []string{"tcp6://[::1]:8080"}},
		{"tcp6://:8080", []Spec{tcp("tcp6", "[::]:8080", "tcp6-8080")}, []string{"tcp6://[::]:8080"}},
		{"[0:0::1]:80", []Spec{tcp("tcp", "[::1]:80", "tcp-80")}, []string{"tcp://[::1]:80"}},
		{"[::ffff:127.0.0.1]:80", []Spec{tcp("tcp", "127.0.0.1:80", "tcp-80")}, []string{"tcp://127.0.0.1:80"}},
		{"tcp4://[::ffff:10.0.0.1]:80", []Spec{tcp("tcp4", "10.0.0.1:80", "tcp4-80")}, []string{"tcp4://10.0.0.1:80"}},
		{"[fe80::1%eth0]:80", []Spec{tcp("tcp", "[fe80::1%eth0]:80", "tcp-80")}, []string{"tcp://[fe80::1%eth0]:80"}},
		{":80?name=http", []Spec{tcp("tcp", ":80", "http")}, []string{"tcp://:80"}},
		{"tcp://:80?name=web%20front", []Spec{tcp("tcp", ":80", "web front")}, []string{"tcp://:80"}},
		{
			"unix:///run/app.sock?mode=0660&owner=nobody&group=nogroup&name=web",
			[]Spec{{Network: "unix", Address: "/run/app.sock", Name: "web", Mode: 0o660, UID: 65534, GID: 65534}},
			[]string{"unix:///run/app.sock"},
		},
		{
			"unix:///run/app.sock?owner=1234&group=5678&mode=600",
			[]Spec{{Network: "unix", Address: "/run/app.sock", Name: "unix-app.sock", Mode: 0o600, UID: 1234, GID: 5678}},
			[]string{"unix:///run/app.sock"},
		},
		{"unix:///run/app.sock?owner=root", []Spec{{Network: "unix", Address: "/run/app.sock", Name: "unix-app.sock", UID: 0, GID: -1}}, []string{"unix:///run/app.sock"}},
		{"unix:///run//x/../app.sock", []Spec{tcp("unix", "/run/app.sock", "unix-app.sock")}, []string{"unix:///run/app.sock"}},
		{"unix:///run/my%20app%2Cv2.sock", []Spec{tcp("unix", "/run/my app,v2.sock", "unix-my app,v2.sock")}, []string{"unix:///run/my%20app%2Cv2.sock"}},
		{"unix:///run/a:b.sock", []Spec{tcp("unix", "/run/a:b.sock", "unix-a_b.sock")}, []string{"unix:///run/a:b.sock"}},
		{
			" :8080, unix:///run/a.sock\ttcp6://[::1]:9090 ,,",
			[]Spec{tcp("tcp", ":8080", "tcp-8080"), tcp("unix", "/run/a.sock", "unix-a.sock"), tcp("tcp6", "[::1]:9090", "tcp6-9090")},
			[]string{"tcp://:8080", "unix:///run/a.sock", "tcp6://[::1]:9090"},
		},
		// Distinct addresses on one port, and port 0 twice, do not overlap.
		{"127.0.0.1:80,127.0.0.2:80", []Spec{tcp("tcp", "127.0.0.1:80", "tcp-80"), tcp("tcp", "127.0.0.2:80", "tcp-80")}, nil},
		{"tcp4://:80 tcp6://:80", []Spec{tcp("tcp4", "0.0.0.0:80", "tcp4-80"), tcp("tcp6", "[::]:80", "tcp6-80")}, nil},
		{":0,:0", []Spec{tcp("tcp", ":0", "tcp-0"), tcp("tcp", ":0", "tcp-0")}, nil},
		{"[::1]:80,127.0.0.1:80", []Spec{tcp("tcp", "[::1]:80", "tcp-80"), tcp("tcp", "127.0.0.1:80", "tcp-80")}, nil},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Parse(%q) =\n %#v\nwant\n %#v", tc.in, got, tc.want)
			}
			for i, sp := range got {
				if got[i] != tc.want[i] {
					t.Errorf("spec %d = %#v, want %#v", i, sp, tc.want[i])
				}
				if tc.strings != nil && sp.String() != tc.strings[i] {
					t.Errorf("spec %d String() = %q, want %q", i, sp.String(), tc.strings[i])
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"", "no address; accepted forms: " + Forms + ", several separated by commas"},
		{" , ", "no address"},
		{"ftp://:21", `unknown scheme "ftp": use tcp://, tcp4://, tcp6:// or unix://`},
		{"unix:/run/a.sock", `write the scheme with "://", as in unix://`},
		{"tcp::80", `write the scheme with "://", as in tcp://`},
		{"/run/a.sock", `a unix socket is written unix:///run/a.sock`},
		{"8080", `missing colon: write :8080 for port 8080 on all addresses`},
		{"notaport", "missing port; accepted forms: " + Forms},
		{"localhost", "missing port; accepted forms: " + Forms},
		{strings.Repeat("0", 63) + "80", `missing colon: write :PORT for port PORT on all addresses`},
		{"/" + strings.Repeat("a", 64), `a unix socket is written unix:///PATH`},
		{":" + strings.Repeat("9", 65), `port number out of range`},
		{"tcp://", "missing host:port; accepted forms: " + Forms},
		{":", `missing port: give a number from 0 to 65535 (0: the kernel picks one)`},
		{":http", `bad port "http": give a number from 0 to 65535`},
		{":-1", `bad port "-1"`},
		{":+80", `bad port "+80"`},
		{":65536", `port 65536 out of range: give a number from 0 to 65535`},
		{":99999999999999999999", `out of range`},
		{"localhost:80", `bad host "localhost": give an IP address such as 0.0.0.0, 127.0.0.1, [::] or [::1], or nothing for all addresses (host names are not resolved)`},
		{"1.2.3:80", `bad host "1.2.3"`},
		{"::1:80", `an IPv6 host is written in brackets, as in [::1]:8080`},
		{"[::1]", "not host:port: missing port in address; accepted forms: " + Forms},
		{"a]b:80", "not host:port: unexpected ']' in address; accepted forms: "},
		{"tcp4://[::1]:80", `tcp4 needs an IPv4 host, not ::1: use tcp6:// or tcp://`},
		{"tcp6://127.0.0.1:80", `tcp6 needs an IPv6 host, not 127.0.0.1: use tcp4:// or tcp://`},
		{"tcp6://[::ffff:127.0.0.1]:80", `tcp6 needs an IPv6 host`},
		{"unix://run/app.sock", `unix socket path "run/app.sock" is relative: give an absolute path with three slashes, as in unix:///run/app.sock`},
		{"unix://", `missing path: write unix:///run/app.sock`},
		{"unix://@herd", `abstract unix sockets are not supported`},
		{"unix:///run/", `path "/run/" names a directory`},
		{"uniX:///.", `path "/." names a directory`},
		{"unix:///run/app/..", `path "/run/app/.." names a directory`},
		{"unix:///" + strings.Repeat("a", 107), `path is 108 bytes long: a unix socket path can have at most 107`},
		{"unix:///a%00b", `path contains a NUL byte`},
		{"unix:///a%zz", `bad path "/a%zz"`},
		{":80?foo=1", `unknown option "foo": allowed are name, and for unix sockets mode, owner, group`},
		{":80?mode=0660", `option mode applies to unix sockets only; a TCP address takes only name`},
		{":80?owner=root", `option owner applies to unix sockets only`},
		{":80?name=a&name=b", `option name given 2 times: give it once`},
		{":80?name=", `option name is empty`},
		{":80?name=a;b", `bad options`},
		{"unix:///a?mode=999", `bad mode "999": give octal permission bits from 1 to 0777, such as 0660`},
		{"unix:///a?mode=0", `bad mode "0"`},
		{"unix:///a?mode=01777", `bad mode "01777"`},
		{"unix:///a?mode=rw", `bad mode "rw"`},
		{"unix:///a?owner=no-such-user-herd", `owner: unknown user "no-such-user-herd"`},
		{"unix:///a?group=no-such-group-herd", `group: unknown group "no-such-group-herd"`},
		{"unix:///a?owner=4294967295", `owner: uid 4294967295: out of range`},
		{"unix:///a?name=a:b", `bad name "a:b": a LISTEN_FDNAMES entry is printable ASCII without ':'`},
		{"unix:///a?name=caf%C3%A9", `bad name "café"`},
		{":80?name=" + strings.Repeat("x", 256), `give 1 to 255 characters`},
		{":80,:80", `":80": listens on the same address as ":80": give each address once`},
		{":80,0.0.0.0:80", `"0.0.0.0:80": listens on the same address as ":80"`},
		{"0.0.0.0:80,:80", `same address`},
		{":80,[::]:80", `same address`},
		{":80,[::1]:80", `same address`},
		{":80,127.0.0.1:80", `same address`},
		{"tcp6://:80,[::1]:80", `same address`},
		{"tcp4://:80,127.0.0.1:80", `same address`},
		{"tcp://127.0.0.1:80,tcp4://127.0.0.1:80", `same address`},
		{"unix:///a.sock,unix:///b/../a.sock", `"unix:///b/../a.sock": listens on the same address as "unix:///a.sock"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse(%q) error\n %q\nwant it to contain\n %q", tc.in, err, tc.err)
			}
			// The caller shows the value: one entry is not repeated.
			if !strings.ContainsAny(strings.TrimSpace(tc.in), ", ") && strings.Contains(err.Error(), strconv.Quote(tc.in)) {
				t.Errorf("Parse(%q) error %q repeats the value", tc.in, err)
			}
		})
	}
}

// Of several entries, the error names the bad one, with the same reason
// and forms a single entry gets.
func TestParseErrorNamesEntry(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{":8080,notaport", `"notaport": missing port; accepted forms: ` + Forms},
		{"unix:///a.sock :99999", `":99999": port 99999 out of range`},
		{":80, localhost:80", `"localhost:80": bad host "localhost"`},
	} {
		_, err := Parse(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Parse(%q) error %v, want %q", c.in, err, c.want)
		}
	}
	// Errors that say what to write do not get the list of forms.
	for _, in := range []string{"8080", ":99999", "localhost:80", "/run/a.sock", "ftp://:21", "unix:///a?mode=rw"} {
		if _, err := Parse(in); err == nil || strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("Parse(%q) error %v: want its own advice alone", in, err)
		}
	}
}

// FuzzParse: no input panics, every accepted spec has a valid name,
// and String reads back to the same address.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		":8080", "0.0.0.0:8080", "[::]:8080", "127.0.0.1:0", "tcp://:8080", "tcp4://0.0.0.0:8080",
		"tcp6://[::1]:8080", "unix:///run/app.sock?mode=0660&owner=0&group=0&name=web",
		"unix:///run/my%20app%2C.sock", "[fe80::1%25eth0]:80", ":80,:81 :82", "unix:///a%ff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		specs, err := Parse(s)
		if err != nil {
			return
		}
		for _, sp := range specs {
			if err := checkFDName(sp.Name); err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			back, err := Parse(sp.String())
			if err != nil {
				t.Fatalf("Parse(%q) gave %#v; its String %q does not parse: %v", s, sp, sp.String(), err)
			}
			if len(back) != 1 || back[0].Network != sp.Network || back[0].Address != sp.Address {
				t.Fatalf("Parse(%q) gave %#v; its String %q reads back as %#v", s, sp, sp.String(), back)
			}
		}
	})
}
