//go:build linux

package worker

import (
	"encoding/json"
	"testing"
	"time"
)

// TestMessages: user messages both ways, exactly as process.send and
// process.on('message') see them.
func TestMessages(t *testing.T) {
	p, c, _ := start(t)

	// Before Messages is called nothing listens: dropped, as in node. The
	// refused newconn that follows proves the worker has read it.
	p.ch.Send(map[string]string{"early": "dropped"})
	_, fd, _ := tcpConn(t)
	p.newconn("no such key", fd)
	p.next() // accepted:false

	msgs := c.msgs.messages()
	p.ch.Send(map[string]string{"hello": "world"})
	p.ch.Send(json.RawMessage(`{"cmd":"NODE_FOO","x":1}`)) // internal, unknown: not the app's
	p.ch.Send("just a string")
	p.ch.Send(42)
	for _, want := range []string{`{"hello":"world"}`, `"just a string"`, `42`} {
		select {
		case got := <-msgs:
			if string(got) != want {
				t.Errorf("message %s, want %s", got, want)
			}
		case <-time.After(timeout):
			t.Fatalf("no message %s", want)
		}
	}

	for _, tc := range []struct {
		msg  any
		want string
	}{
		{map[string]any{"a": 1, "b": "<x&y>"}, `{"a":1,"b":"<x&y>"}`}, // no HTML escaping, as JSON.stringify
		{json.RawMessage(`[1, 2]`), `[1, 2]`},
		{"s", `"s"`},
		{[]byte("hi"), `"aGk="`}, // encoding/json's []byte
	} {
		if err := c.send(tc.msg); err != nil {
			t.Fatal(err)
		}
		p.expect(tc.want)
	}
	if err := c.send(json.RawMessage(`{"a":`)); err == nil {
		t.Error("Send of invalid raw JSON succeeded")
	}
	if err := c.send(func() {}); err == nil {
		t.Error("Send of a func succeeded")
	}

	p.ch.Close()
	select {
	case _, ok := <-msgs:
		if ok {
			t.Error("a message after the channel ended")
		}
	case <-time.After(timeout):
		t.Fatal("Messages not closed after the channel ended")
	}
}
