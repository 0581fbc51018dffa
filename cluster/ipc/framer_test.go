//go:build linux

package ipc

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// read is one recvmsg as the framer sees it.
type read struct {
	data string
	fds  int // how many fresh fds came with it
}

const handleLine = `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":1}}`

func TestFramer(t *testing.T) {
	long := `{"s":"` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name     string
		maxLine  int
		reads    []read
		want     []string // Raw of every line delivered, "fd:" prefixed when it claimed an fd
		wantKind Kind     // 0: no error
	}{
		{name: "one line", reads: []read{{`{"a":1}` + "\n", 0}}, want: []string{`{"a":1}`}},
		{name: "two lines one read", reads: []read{{`{"a":1}` + "\n" + `"just a string"` + "\n", 0}},
			want: []string{`{"a":1}`, `"just a string"`}},
		{name: "split over reads", reads: []read{{`{"a"`, 0}, {`:`, 0}, {`1}` + "\n" + `[1,`, 0}, {`2]` + "\n", 0}},
			want: []string{`{"a":1}`, `[1,2]`}},
		{name: "partial line left", reads: []read{{`{"a":1}` + "\n" + `{"b"`, 0}}, want: []string{`{"a":1}`}},
		{name: "top-level values", reads: []read{{"1\nnull\ntrue\n\"x\"\n[]\n{}\n", 0}},
			want: []string{"1", "null", "true", `"x"`, "[]", "{}"}},
		{name: "CR and spaces are JSON whitespace", reads: []read{{" {\"a\":1} \r\n", 0}}, want: []string{" {\"a\":1} \r"}},
		{name: "utf8 split across reads", reads: []read{{`{"s":"` + "\xc3", 0}, {"\xa9" + `"}` + "\n", 0}}, want: []string{`{"s":"é"}`}},
		{name: "empty line", reads: []read{{`{"a":1}` + "\n\n", 0}}, want: []string{`{"a":1}`}, wantKind: KindEmptyLine},
		{name: "empty first line", reads: []read{{"\n", 0}}, wantKind: KindEmptyLine},
		{name: "whitespace line", reads: []read{{" \n", 0}}, wantKind: KindInvalidJSON},
		{name: "not json", reads: []read{{"not json\n", 0}}, wantKind: KindInvalidJSON},
		{name: "two values on a line", reads: []read{{"{} {}\n", 0}}, wantKind: KindInvalidJSON},
		{name: "truncated object", reads: []read{{`{"a":` + "\n", 0}}, wantKind: KindInvalidJSON},
		{name: "line at the limit", maxLine: len(long), reads: []read{{long + "\n", 0}}, want: []string{long}},
		{name: "line over the limit in one read", maxLine: len(long) - 1, reads: []read{{long + "\n", 0}}, wantKind: KindLineTooLong},
		{name: "line over the limit across reads", maxLine: len(long) - 1, reads: []read{{long[:50], 0}, {long[50:] + "\n", 0}}, wantKind: KindLineTooLong},
		{name: "no newline past the limit", maxLine: 10, reads: []read{{"[1,2,3,4,5,", 0}}, wantKind: KindLineTooLong},

		// fds (docs/protocol.md §3.3)
		{name: "handle with its fd", reads: []read{{handleLine + "\n", 1}}, want: []string{"fd:" + handleLine}},
		{name: "fd with the start of a split handle", reads: []read{{handleLine[:40], 1}, {handleLine[40:] + "\n", 0}},
			want: []string{"fd:" + handleLine}},
		{name: "earlier lines in the fd's read do not claim it", reads: []read{{`{"a":1}` + "\n" + `{"cmd":"NODE_CLUSTER","act":"x"}` + "\n" + handleLine[:10], 1}, {handleLine[10:] + "\n", 0}},
			want: []string{`{"a":1}`, `{"cmd":"NODE_CLUSTER","act":"x"}`, "fd:" + handleLine}},
		{name: "glued tail of an earlier handle line claims it, as in node", reads: []read{{handleLine[:30], 0}, {handleLine[30:] + "\n", 1}},
			want: []string{"fd:" + handleLine}},
		{name: "handle without fd", reads: []read{{handleLine + "\n", 0}}, want: []string{handleLine}},
		{name: "fd with a user line only", reads: []read{{`{"a":1}` + "\n", 1}}, want: []string{`{"a":1}`}, wantKind: KindOrphanFD},
		{name: "fd claimed by nobody in its read", reads: []read{{`{"a":1}` + "\n" + `{"b"`, 1}, {`:2}` + "\n", 0}},
			want: []string{`{"a":1}`, `{"b":2}`}, wantKind: KindOrphanFD},
		{name: "fd outlives its read", reads: []read{{`{"b"`, 1}, {`:2}` + "\n" + handleLine + "\n", 0}},
			want: []string{`{"b":2}`}, wantKind: KindOrphanFD},
		{name: "two fds in one read", reads: []read{{handleLine + "\n", 2}}, wantKind: KindExtraFD},
		{name: "second fd while one unclaimed", reads: []read{{handleLine[:10], 1}, {handleLine[10:20], 1}}, wantKind: KindOrphanFD},
		{name: "pipelined handles keep their own fds", reads: []read{{`{"a":1}` + "\n" + handleLine[:10], 1}, {handleLine[10:] + "\n" + handleLine[:20], 1}, {handleLine[20:] + "\n" + `{"b":2}` + "\n", 0}},
			want: []string{`{"a":1}`, "fd:" + handleLine, "fd:" + handleLine, `{"b":2}`}},
		{name: "pipelined: the older fd's line is not a handle", reads: []read{{`{"a"`, 1}, {`:1}` + "\n" + handleLine + "\n", 1}},
			want: []string{`{"a":1}`}, wantKind: KindOrphanFD},
		{name: "two handles in sequence", reads: []read{{handleLine[:50], 1}, {handleLine[50:] + "\n" + handleLine[:5], 1}, {handleLine[5:] + "\n", 0}},
			want: []string{"fd:" + handleLine, "fd:" + handleLine}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxLine := tt.maxLine
			if maxLine == 0 {
				maxLine = 1 << 20
			}
			f := newFramer(maxLine)
			var got []string
			var sent []int
			var err error
			for _, r := range tt.reads {
				var fds []int
				for range r.fds {
					a, b := socketpair(t, unix.SOCK_STREAM)
					closeFDs([]int{b})
					fds = append(fds, a)
				}
				sent = append(sent, fds...)
				err = f.feed([]byte(r.data), fds, false, func(m Message) error {
					s := string(m.Raw)
					if m.FD >= 0 {
						s = "fd:" + s
						closeFDs([]int{m.FD})
					}
					got = append(got, s)
					return nil
				})
				if err != nil {
					break
				}
			}
			f.closeFD()
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("delivered\n%q\nwant\n%q", got, tt.want)
			}
			if tt.wantKind == 0 {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
			} else {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Kind != tt.wantKind {
					t.Fatalf("error %v, want a ProtocolError of kind %v", err, tt.wantKind)
				}
			}
			for _, fd := range sent {
				if isOpen(fd) {
					t.Errorf("fd %d still open: every fd the framer does not hand on must be closed", fd)
					closeFDs([]int{fd})
				}
			}
		})
	}
}

func TestDecodeLoose(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	tests := []struct {
		line     string
		cmd, act string
		seq, ack *int64
		typ      string
		inner    string
		innerAct string
		isObject bool
		internal bool
	}{
		{line: `{"cmd":"NODE_CLUSTER","act":"online","seq":0}`, cmd: CmdCluster, act: "online", seq: i(0), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3}`, cmd: CmdCluster, seq: i(3), ack: i(2), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"0.0.0.0","port":9999,"addressType":"udp4","fd":-1,"flags":0,"seq":1}`,
			cmd: CmdCluster, act: "queryServer", seq: i(1), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","act":"queryServer","address":"127.0.0.1","port":18081,"addressType":4,"flags":0,"backlog":false,"seq":1}`,
			cmd: CmdCluster, act: "queryServer", seq: i(1), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","ack":null,"seq":1.0}`, cmd: CmdCluster, seq: i(1), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","ack":"4","seq":1e2}`, cmd: CmdCluster, seq: i(100), isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","ack":1.5,"seq":9007199254740996}`, cmd: CmdCluster, isObject: true, internal: true},
		{line: `{"cmd":"NODE_CLUSTER","seq":9007199254740993}`, cmd: CmdCluster, seq: i(1 << 53), isObject: true, internal: true}, // as JSON.parse rounds it
		{line: `{"cmd":5,"act":["x"]}`, isObject: true},
		{line: `{"cmd":"NODE_"}`, cmd: "NODE_", isObject: true},
		{line: `{"cmd":"NODE_FAKE_INTERNAL"}`, cmd: "NODE_FAKE_INTERNAL", isObject: true, internal: true},
		{line: `{"cmd":"NODE_HANDLE_ACK"}`, cmd: CmdHandleAck, internal: true},
		{line: `{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"x":1}}`, cmd: CmdHandle, typ: "net.Server", inner: `{"x":1}`, isObject: true, internal: true},
		{line: `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":2}}`,
			cmd: CmdHandle, typ: "net.Native", inner: `{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":2}`, innerAct: "newconn", isObject: true, internal: true},
		{line: `"just a string"`},
		{line: `[{"cmd":"NODE_CLUSTER"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			m, err := decode([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Raw) != tt.line || m.Cmd != tt.cmd || m.Act != tt.act || m.Type != tt.typ || m.FD != -1 {
				t.Errorf("got Raw %s Cmd %q Act %q Type %q FD %d", m.Raw, m.Cmd, m.Act, m.Type, m.FD)
			}
			if !eqPtr(m.Seq, tt.seq) || !eqPtr(m.Ack, tt.ack) {
				t.Errorf("got Seq %v Ack %v, want %v %v", str(m.Seq), str(m.Ack), str(tt.seq), str(tt.ack))
			}
			if (m.Fields != nil) != tt.isObject && tt.cmd != CmdHandleAck {
				t.Errorf("Fields %v", m.Fields)
			}
			if m.Internal() != tt.internal {
				t.Errorf("Internal() = %v", m.Internal())
			}
			if tt.inner != "" {
				if m.Inner == nil || string(m.Inner.Raw) != tt.inner || m.Inner.Act != tt.innerAct || m.Inner.FD != -1 {
					t.Errorf("Inner %+v", m.Inner)
				}
			} else if m.Inner != nil {
				t.Errorf("Inner %+v, want nil", m.Inner)
			}
		})
	}
}

func eqPtr(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func str(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}
