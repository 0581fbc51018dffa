package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Wire values of the transport layer (lib/internal/child_process.js).
const (
	CmdCluster    = "NODE_CLUSTER"
	CmdHandle     = "NODE_HANDLE"
	CmdHandleAck  = "NODE_HANDLE_ACK"
	CmdHandleNack = "NODE_HANDLE_NACK"
)

// Handle types node's handleConversion knows. Any other type string makes
// the receiving node throw, so SendHandle refuses it.
const (
	TypeNetNative   = "net.Native"   // a raw TCP or pipe wrap; what the cluster layer uses
	TypeNetServer   = "net.Server"   // wrapped in a net.Server and listened on
	TypeNetSocket   = "net.Socket"   // wrapped in a net.Socket
	TypeDgramNative = "dgram.Native" // a raw UDP wrap; what the cluster layer uses
	TypeDgramSocket = "dgram.Socket" // wrapped in a dgram.Socket
)

var (
	ackLine  = []byte(`{"cmd":"NODE_HANDLE_ACK"}`)
	nackLine = []byte(`{"cmd":"NODE_HANDLE_NACK"}`)
)

// Message is one line read from the channel, decoded loosely: node sends
// fields that may be absent, null, a number in one message and a string in
// the next ("addressType": 4 or "udp4"), or false where a number is expected
// ("backlog": false). Only cmd, act, seq and ack are interpreted here;
// everything else stays raw in Fields for the cluster layer.
type Message struct {
	// Raw is the exact line as received, without its '\n'. It is the
	// caller's to keep.
	Raw []byte

	// Cmd and Act are the "cmd" and "act" fields when they are JSON strings,
	// else "".
	Cmd, Act string

	// Seq and Ack are the "seq" and "ack" fields when they are integral JSON
	// numbers, else nil (absent, null, or anything node's cluster layer would
	// not match against its own counters).
	Seq, Ack *int64

	// Fields holds every member of a top-level JSON object, raw; nil when the
	// line is not an object (a user message may be any JSON value).
	Fields map[string]json.RawMessage

	// FD is -1, or an fd that arrived with this NODE_HANDLE line and now
	// belongs to the caller (only with WithKeepHandles; by default herd
	// closes the handles a worker sends and FD stays -1). Always -1 on Inner.
	FD int

	// Type is the "type" of a NODE_HANDLE line ("net.Server", ...).
	Type string

	// Inner is the decoded "msg" of a NODE_HANDLE line: what the app passed
	// to process.send(msg, handle). Nil for other lines.
	Inner *Message
}

// Internal reports whether node would route m to 'internalMessage' rather
// than to the app's 'message' listeners: cmd is a string that starts with
// "NODE_" and is longer than that (isInternal, internal/child_process.js).
func (m *Message) Internal() bool {
	return len(m.Cmd) > 5 && m.Cmd[:5] == "NODE_"
}

// Field returns the raw value of the named field and whether it is present.
func (m *Message) Field(name string) (json.RawMessage, bool) {
	v, ok := m.Fields[name]
	return v, ok
}

// decode parses one line. The line is copied; the caller may reuse it.
func decode(line []byte) (Message, error) {
	m := Message{Raw: bytes.Clone(line), FD: -1}
	if bytes.Equal(line, ackLine) { // hot path: the reply to every newconn
		m.Cmd = CmdHandleAck
		return m, nil
	}
	if err := m.parse(); err != nil {
		return Message{}, err
	}
	if m.Cmd == CmdHandle {
		m.Type = stringField(m.Fields["type"])
		if raw, ok := m.Fields["msg"]; ok {
			inner := Message{Raw: raw, FD: -1}
			if err := inner.parse(); err != nil { // cannot fail: raw came out of a valid object
				return Message{}, err
			}
			m.Inner = &inner
		}
	}
	return m, nil
}

// parse fills Fields, Cmd, Act, Seq and Ack from m.Raw.
func (m *Message) parse() error {
	if !json.Valid(m.Raw) { // top-level strings, numbers, arrays, null are legal too
		var v any
		if err := json.Unmarshal(m.Raw, &v); err != nil {
			return err
		}
		return errors.New("not one JSON value")
	}
	first := skipSpace(m.Raw, 0)
	if m.Raw[first] != '{' {
		return nil
	}
	fields := scanObject(m.Raw)
	m.Fields = fields
	m.Cmd = wireString(fields["cmd"])
	m.Act = wireString(fields["act"])
	seq, hasSeq := wireInt(fields["seq"])
	ack, hasAck := wireInt(fields["ack"])
	if hasSeq || hasAck {
		nums := new([2]int64)
		if hasSeq {
			nums[0] = seq
			m.Seq = &nums[0]
		}
		if hasAck {
			nums[1] = ack
			m.Ack = &nums[1]
		}
	}
	return nil
}

// stringField returns the value of a JSON string, or "" for anything else.
func stringField(raw json.RawMessage) string { return wireString(raw) }
