package ipc

import (
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrClosed is returned by every method of a Channel after Close, and by
	// Run when Close ended it.
	ErrClosed = errors.New("ipc: channel closed")

	// ErrBackpressure is returned by Send and SendHandle when the worker has
	// stopped reading and herd's send queue has reached its bound (see
	// WithMaxQueue). The message was not queued.
	ErrBackpressure = errors.New("ipc: send queue full: the worker is not reading its channel")

	// ErrBadHandle is wrapped by the error SendHandle returns for an fd node
	// could not take: not a socket, a blocking socket, a socket kind libuv
	// does not recognise, or a handle type that does not match the socket.
	ErrBadHandle = errors.New("ipc: bad handle")

	// ErrNotSupported is returned by Pair, Open, CheckHandle and every
	// method of a Channel or Reader on a system other than Linux: the
	// channel relies on Linux (see the package documentation). The package
	// builds everywhere, so that a program importing it (through the worker
	// package) builds and runs on a developer's machine too.
	ErrNotSupported = errors.New("ipc: herd's cluster channel needs Linux")
)

// Kind says what rule of the wire protocol the peer broke.
type Kind int

const (
	// KindEmptyLine: a "\n" with nothing before it (node itself dies of one).
	KindEmptyLine Kind = iota + 1
	// KindLineTooLong: a line grew past the channel's maximum (WithMaxLine).
	KindLineTooLong
	// KindInvalidJSON: a line that is not one JSON value.
	KindInvalidJSON
	// KindOrphanFD: an fd that no NODE_HANDLE line claimed (docs/protocol.md §3.3).
	KindOrphanFD
	// KindExtraFD: more than one fd in one read, an fd that arrived while an
	// earlier one was still unclaimed, or a truncated control message.
	KindExtraFD
	// KindUnexpectedAck: NODE_HANDLE_ACK or NODE_HANDLE_NACK while herd had
	// no handle awaiting one.
	KindUnexpectedAck
	// KindStalled: the worker keeps sending handles but does not read the
	// acknowledgements herd owes it; the send queue is full.
	KindStalled
)

var kindNames = map[Kind]string{
	KindEmptyLine:     "empty line",
	KindLineTooLong:   "line too long",
	KindInvalidJSON:   "invalid JSON",
	KindOrphanFD:      "fd without a NODE_HANDLE line",
	KindExtraFD:       "extra fd",
	KindUnexpectedAck: "unexpected handle acknowledgement",
	KindStalled:       "worker not reading",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// maxErrLine is how much of an offending line a ProtocolError keeps.
const maxErrLine = 256

// ProtocolError is what Run returns when the worker broke the wire protocol.
// The channel is unusable afterwards (framing is lost); the supervisor ends
// that worker.
type ProtocolError struct {
	Kind   Kind
	Detail string // human detail, e.g. "line of 17825792 bytes, limit 16777216"
	Line   []byte // at most the first 256 bytes of the offending line, if any
	Err    error  // underlying error, e.g. from encoding/json; may be nil
}

func (e *ProtocolError) Error() string {
	s := "ipc: protocol error: " + e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if len(e.Line) > 0 {
		s += fmt.Sprintf(" (line %q)", e.Line)
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(k Kind, line []byte, err error, format string, args ...any) *ProtocolError {
	e := &ProtocolError{Kind: k, Err: err}
	if format != "" {
		e.Detail = fmt.Sprintf(format, args...)
	}
	if len(line) > 0 {
		n := min(len(line), maxErrLine)
		e.Line = append([]byte(nil), line[:n]...)
	}
	return e
}
