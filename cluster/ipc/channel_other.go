//go:build !linux

package ipc

import "context"

// On a system other than Linux the package keeps its API, so that programs
// importing it build there, but no Channel can be made: Pair and Open
// return ErrNotSupported, and so does everything else that would need one.

// Channel is herd's end of one worker's IPC socket. Outside Linux none can
// be made, and every method returns ErrNotSupported.
type Channel struct{}

// Pair returns ErrNotSupported outside Linux.
func Pair(opts ...Option) (herd *Channel, child int, err error) {
	return nil, -1, ErrNotSupported
}

// Open returns ErrNotSupported outside Linux; fd stays the caller's.
func Open(fd int, opts ...Option) (*Channel, error) { return nil, ErrNotSupported }

// CheckHandle returns ErrNotSupported outside Linux.
func CheckHandle(typ string, fd int) error { return ErrNotSupported }

// FD returns -1 outside Linux.
func (c *Channel) FD() int { return -1 }

// Close returns ErrNotSupported outside Linux.
func (c *Channel) Close() error { return ErrNotSupported }

// Pending reports false outside Linux.
func (c *Channel) Pending() bool { return false }

// Run returns ErrNotSupported outside Linux.
func (c *Channel) Run(ctx context.Context, deliver func(Message)) error {
	return ErrNotSupported
}

// Send returns ErrNotSupported outside Linux.
func (c *Channel) Send(msg any) error { return ErrNotSupported }

// SendHandle returns ErrNotSupported outside Linux; done is never called.
func (c *Channel) SendHandle(typ string, msg any, fd int, done func(acked bool)) error {
	return ErrNotSupported
}

// SendAccepted returns ErrNotSupported outside Linux; done is never called.
func (c *Channel) SendAccepted(typ string, msg any, fd int, done func(acked bool)) error {
	return ErrNotSupported
}

// Reader reads a channel opened WithoutPoller. Outside Linux none can be
// made.
type Reader struct{}

// NewReader returns ErrNotSupported outside Linux.
func (c *Channel) NewReader(deliver func(Message)) (*Reader, error) {
	return nil, ErrNotSupported
}

// ReadReady returns ErrNotSupported outside Linux.
func (r *Reader) ReadReady() error { return ErrNotSupported }
