//go:build linux

package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzReader feeds an arbitrary byte stream, cut into writes by cuts (each
// byte: low 7 bits a write's length, high bit "send an fd with it"), through
// a real socketpair into Run. Run must not panic, must end with io.EOF or a
// *ProtocolError, must leave no fd open, and when it reaches EOF must have
// delivered exactly the stream's complete lines, in order, minus the
// NODE_HANDLE lines without an fd that node drops as well.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`+"\n"), []byte{})
	f.Add([]byte(`{"a":1}`+"\n\n"), []byte{3, 4})
	f.Add([]byte(handleLine+"\n"+`"x"`+"\n"), []byte{0x80 | 20, 127})
	f.Add([]byte(`{"cmd":"NODE_HANDLE_ACK"}`+"\n"), []byte{1})
	f.Add([]byte(`{"cmd":"NODE_HANDLE","msg":1}`+"\n"+`{"cmd":"NODE_HANDLE","type":"x"}`+"\n"), []byte{0x85, 0x90})
	f.Add([]byte("not json\n"), []byte{0x81})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		before := countFDs(t)
		c, child, err := Pair(WithMaxLine(4096))
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		done := make(chan error, 1)
		go func() {
			done <- c.Run(context.Background(), func(m Message) {
				if m.FD >= 0 {
					t.Errorf("fd %d delivered without WithKeepHandles", m.FD)
				}
				got = append(got, m.Raw)
			})
		}()
		// A Run that gave up stops reading: don't block on a full buffer.
		tv := unix.Timeval{Sec: 2}
		unix.SetsockoptTimeval(child, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		sentFD, complete, own := false, true, 0
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n, withFD := len(rest), false
			if i < len(cuts) {
				n, withFD = min(int(cuts[i]&0x7f)+1, len(rest)), cuts[i]&0x80 != 0
			}
			var oob []byte
			if withFD {
				a, b := socketpair(t, unix.SOCK_STREAM)
				oob = unix.UnixRights(a)
				defer unix.Close(a) // after the send, at the end of this iteration
				defer unix.Close(b)
				sentFD, own = true, own+2
			}
			if err := unix.Sendmsg(child, rest[:n], oob, nil, unix.MSG_NOSIGNAL); err != nil {
				complete = false // Run gave up
				break
			}
			rest = rest[n:]
		}
		unix.Close(child)
		err = <-done
		c.Close()

		var pe *ProtocolError
		if err != io.EOF && !errors.As(err, &pe) {
			t.Fatalf("Run = %v, want io.EOF or a *ProtocolError", err)
		}
		if err == io.EOF && !complete {
			t.Fatal("Run reached EOF but the stream was not all sent")
		}
		if err == io.EOF && !sentFD {
			var want [][]byte
			lines := bytes.Split(stream, []byte("\n"))
			for _, l := range lines[:len(lines)-1] { // the last piece is partial
				if m, err := decode(l); err == nil && m.Cmd == CmdHandle {
					continue
				}
				want = append(want, l)
			}
			if len(got) != len(want) {
				t.Fatalf("delivered %d lines, the stream holds %d: %q", len(got), len(want), got)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("line %d: delivered %q, sent %q", i, got[i], want[i])
				}
				if !json.Valid(got[i]) || len(got[i]) == 0 || len(got[i]) > 4096 {
					t.Fatalf("line %d delivered but invalid: %q", i, got[i])
				}
			}
		}
		// the deferred closes have not run yet: count what herd left behind
		if after := countFDs(t) - own; after != before {
			t.Fatalf("%d fds open before, %d after (without the test's own)", before, after)
		}
	})
}

// FuzzEncode: whatever the act, key, numbers and raw data, the encoders
// write one line of valid JSON with cmd first and seq last, and the values
// survive the round trip.
func FuzzEncode(f *testing.F) {
	f.Add("newconn", "null:8080:4:undefined:0", int64(2), int64(1), 1.5, []byte(`{"ticketKeys":"ab"}`), "x")
	f.Add("", "\n", int64(-1), int64(math.MaxInt64), math.NaN(), []byte("{\n}"), "\u2028\xff")
	f.Fuzz(func(t *testing.T, act, key string, seq, ack int64, num float64, data []byte, extra string) {
		fields := map[string]any{
			"key": key, "errno": num, "data": json.RawMessage(data),
			"sockname": map[string]any{"address": key, "port": seq},
		}
		if _, taken := fields[extra]; !taken {
			fields[extra] = extra
		}
		for _, line := range [][]byte{ClusterMessage(act, seq, fields), Reply(ack, seq, fields), ClusterMessage(act, seq, nil)} {
			if len(line) == 0 || bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
				t.Fatalf("encoder wrote an empty line or a raw newline: %q", line)
			}
			if !json.Valid(line) {
				t.Fatalf("encoder wrote invalid JSON: %q", line)
			}
			if !bytes.HasPrefix(line, []byte(`{"cmd":"NODE_CLUSTER",`)) {
				t.Fatalf("cmd is not first: %q", line)
			}
			m, err := decode(line)
			if err != nil {
				t.Fatal(err)
			}
			if m.Seq == nil && seq > -(1<<53) && seq < 1<<53 || m.Seq != nil && *m.Seq != seq {
				t.Fatalf("seq %d did not survive: %s", seq, line)
			}
			var last struct{ Seq json.Number }
			if i := bytes.LastIndex(line, []byte(`,"seq":`)); i < 0 || json.Unmarshal(append([]byte("{"), line[i+1:]...), &last) != nil || last.Seq.String() != jsonInt(seq) {
				t.Fatalf("seq is not last: %s", line)
			}
			if m.Fields["key"] != nil && stringField(m.Fields["key"]) != validUTF8(key) {
				t.Fatalf("key %q came back as %s", key, m.Fields["key"])
			}
		}
		m, _ := decode(ClusterMessage(act, seq, nil))
		if m.Act != validUTF8(act) {
			t.Fatalf("act %q came back as %q", act, m.Act)
		}
		m, _ = decode(Reply(ack, seq, fields))
		if m.Act != "" && extra != "act" || m.Ack == nil && ack > -(1<<53) && ack < 1<<53 {
			t.Fatalf("reply: act %q ack %v from %s", m.Act, m.Ack, m.Raw)
		}
		// the whole handle line too
		inner := ClusterMessage(act, seq, fields)
		line, err := encodeLine(inner)
		if err != nil || !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("encodeLine(%q) = %q, %v", inner, line, err)
		}
		if key != "" {
			if line, err := encodeLine(key); err != nil || bytes.Count(line, []byte("\n")) != 1 || !json.Valid(line[:len(line)-1]) {
				t.Fatalf("encodeLine(%q) = %q, %v", key, line, err)
			}
		}
	})
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// validUTF8 is s as it comes back from JSON: each invalid byte U+FFFD.
func validUTF8(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

// FuzzDecode checks the hand-rolled object splitter and the loose field
// readers against encoding/json on every line that is valid JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"0.0.0.0","port":9999,"addressType":"udp4","fd":-1,"flags":0,"seq":1}`,
		`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"null:8080:4:undefined:0","seq":2}}`,
		` { "a\"b" : [1, {"}":"]"}] , "seq" : 1e2 , "ack":-0.0,"k\u00e9":"\ud83d\ude00","x":"\xff"} `,
		`"just a string"`, `[1,2]`, `{}`, `{"seq":9007199254740993,"ack":12345678901234567}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := decode(line)
		if !json.Valid(line) {
			if err == nil {
				t.Fatalf("decode accepted invalid JSON %q", line)
			}
			return
		}
		if err != nil {
			t.Fatalf("decode(%q): %v", line, err)
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(line, &want) != nil {
			if m.Fields != nil {
				t.Fatalf("Fields of a non-object: %v", m.Fields)
			}
			return
		}
		if m.Cmd == CmdHandleAck && m.Fields == nil { // the fast path
			return
		}
		if len(m.Fields) != len(want) {
			t.Fatalf("%q: %d fields, encoding/json finds %d", line, len(m.Fields), len(want))
		}
		for k, v := range want {
			if got, ok := m.Fields[k]; !ok || !bytes.Equal(got, v) {
				t.Fatalf("%q: field %q = %q, encoding/json says %q", line, k, got, v)
			}
		}
		ref := map[string]any{}
		for _, name := range []string{"cmd", "act", "seq", "ack"} {
			var v any
			if raw, ok := want[name]; ok {
				json.Unmarshal(raw, &v)
			}
			ref[name] = v
		}
		if s, _ := ref["cmd"].(string); m.Cmd != s {
			t.Fatalf("%q: Cmd %q, want %q", line, m.Cmd, s)
		}
		if s, _ := ref["act"].(string); m.Act != s {
			t.Fatalf("%q: Act %q, want %q", line, m.Act, s)
		}
		for name, p := range map[string]*int64{"seq": m.Seq, "ack": m.Ack} {
			f, isNum := ref[name].(float64)
			exact := isNum && f == math.Trunc(f) && math.Abs(f) <= 1<<53
			if exact != (p != nil) || exact && float64(*p) != f {
				t.Fatalf("%q: %s = %v, encoding/json reads %v", line, name, str(p), f)
			}
		}
	})
}
