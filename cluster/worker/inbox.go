package worker

import (
	"encoding/json"
	"sync"
)

// inbox holds the user messages herd sends (anything without a NODE_ cmd)
// for Messages. Like node, which emits them to no one until the app adds a
// 'message' listener, it drops them until Messages is first called; from
// then on none is lost: the reader never waits for the program, the queue
// does.
type inbox struct {
	mu     sync.Mutex
	out    chan json.RawMessage // nil until Messages is called
	queue  []json.RawMessage
	wake   chan struct{} // a put or close happened; capacity 1
	closed bool
}

// messages returns the channel, starting its pump on the first call.
func (b *inbox) messages() <-chan json.RawMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out == nil {
		b.out = make(chan json.RawMessage)
		b.wake = make(chan struct{}, 1)
		go b.pump()
	}
	return b.out
}

func (b *inbox) put(raw []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out == nil || b.closed {
		return
	}
	b.queue = append(b.queue, json.RawMessage(raw))
	b.signal()
}

// close ends the stream: out is closed once the queue is delivered.
func (b *inbox) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.out != nil {
		b.signal()
	}
}

func (b *inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *inbox) pump() {
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.closed {
			b.mu.Unlock()
			<-b.wake
			b.mu.Lock()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			close(b.out)
			return
		}
		m := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		b.mu.Unlock()
		b.out <- m
	}
}
