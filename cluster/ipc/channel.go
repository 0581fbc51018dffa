package ipc

import "fmt"

// Defaults for the bounds a Channel enforces.
const (
	DefaultMaxLine       = 16 << 20 // bytes in one received line
	DefaultMaxQueueBytes = 64 << 20 // bytes waiting to be written
	DefaultMaxQueueLen   = 1 << 16  // messages waiting to be written
)

// readBufSize matches libuv's read size, so both sides cut the stream alike.
const readBufSize = 64 << 10

// Option configures a Channel.
type Option func(*config)

type config struct {
	maxLine       int
	maxQueueBytes int
	maxQueueLen   int
	keepHandles   bool
	trace         func(Event)
	noPoller      bool
}

// WithMaxLine sets the longest line Run accepts (bytes, without the '\n');
// a longer one is a KindLineTooLong ProtocolError. Node has no limit of its
// own, so this only protects herd from a misbehaving app. Default 16 MiB.
func WithMaxLine(n int) Option { return func(c *config) { c.maxLine = n } }

// WithMaxQueue bounds what may wait to be written to a worker that stopped
// reading: bytes and number of messages. Past either, Send returns
// ErrBackpressure (one message larger than the byte bound is still taken
// when nothing else waits). Defaults 64 MiB and 65536.
func WithMaxQueue(bytes, messages int) Option {
	return func(c *config) { c.maxQueueBytes, c.maxQueueLen = bytes, messages }
}

// WithKeepHandles makes Run hand the fd of an incoming NODE_HANDLE to the
// caller in Message.FD (the caller must close it) instead of closing it. herd
// as a primary never wants the handles an app sends; a worker-side user of
// this package (newconn, a shared listening socket) does.
func WithKeepHandles() Option { return func(c *config) { c.keepHandles = true } }

// WithoutPoller leaves the channel out of Go's netpoller: the caller waits
// for it to become readable itself (an epoll set of its own, on FD) and
// then calls a Reader's ReadReady; Run is not available. It is for a caller
// that serves many channels from one thread: a channel in the netpoller
// would also wake the runtime's poller thread for every message.
func WithoutPoller() Option { return func(c *config) { c.noPoller = true } }

// WithTrace calls fn for every line written and read, in the order herd
// wrote and parsed them. fn runs synchronously with the channel's lock held: it
// must be quick and must not call the Channel. Event.Line is only valid
// during the call.
func WithTrace(fn func(Event)) Option { return func(c *config) { c.trace = fn } }

// Op is the direction of a traced line.
type Op int

const (
	// OpWrite: the first byte of a line (and its fd, if any) went out in one
	// sendmsg. The rest of a long line may follow later.
	OpWrite Op = iota + 1
	// OpRead: a complete line came in.
	OpRead
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Event is one traced line.
type Event struct {
	Op   Op
	Line []byte // without '\n'
	FD   int    // the fd sent with the line or claimed by it, else -1
}
