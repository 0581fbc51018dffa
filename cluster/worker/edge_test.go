//go:build linux

package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/ipc"
)

// rrListen opens a round-robin listener on :0 whose key is key.
func rrListen(t *testing.T, p *primary, c *client, key string) net.Listener {
	t.Helper()
	r := goListen(c, "tcp", ":0")
	q := p.next()
	p.reply(*q.Seq, map[string]any{"errno": nil, "key": key, "data": nil,
		"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 40000}})
	res := wait(t, r)
	if res.err != nil {
		t.Fatal(res.err)
	}
	p.next() // listening
	return res.l
}

// TestRRBacklogFull: connections Accept has not taken are bounded; past
// the bound herd is told accepted:false and keeps the connection.
func TestRRBacklogFull(t *testing.T) {
	p, c, _ := start(t)
	l := rrListen(t, p, c, "k")
	_, fd, _ := tcpConn(t)
	for range rrBacklog {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !l.(*rrListener).offer(dup) {
			t.Fatal("queue full before the backlog")
		}
	}
	ack := p.newconn("k", fd)
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":false,"seq":3}`, ack))
	if _, err := l.Accept(); err != nil { // one taken: room again
		t.Fatal(err)
	}
	ack = p.newconn("k", fd)
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":true,"seq":4}`, ack))
	l.Close() // closes the queued ones
	p.next()
}

// TestOddReplies: replies herd should not send are errors, and herd is told
// to drop the worker from a key it counted it under.
func TestOddReplies(t *testing.T) {
	t.Run("no key", func(t *testing.T) {
		p, c, _ := start(t)
		r := goListen(c, "tcp", ":0")
		p.next()
		p.reply(1, map[string]any{"errno": nil, "data": nil})
		if res := wait(t, r); res.err == nil {
			t.Fatal("Listen succeeded on a reply without key")
		}
		p.quiet()
	})

	t.Run("UDP socket", func(t *testing.T) {
		p, c, _ := start(t)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		r := goListen(c, "tcp", ":0")
		p.next()
		acked := make(chan bool, 1)
		msg := ipc.Reply(1, p.nextSeq(), map[string]any{"errno": 0, "key": "k", "data": nil})
		if err := p.ch.SendHandle(ipc.TypeDgramNative, json.RawMessage(msg), fd, func(ok bool) { acked <- ok }); err != nil {
			t.Fatal(err)
		}
		if res := wait(t, r); res.err == nil {
			t.Fatal("Listen succeeded on a UDP socket")
		} else {
			t.Log(res.err)
		}
		p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"k","seq":2}`)
	})

	t.Run("duplicate key", func(t *testing.T) {
		p, c, _ := start(t)
		first := rrListen(t, p, c, "same")
		r := goListen(c, "tcp", ":0")
		q := p.next()
		p.reply(*q.Seq, map[string]any{"errno": nil, "key": "same", "data": nil})
		if res := wait(t, r); res.err == nil || !errors.Is(res.err, errDupKey) {
			t.Fatalf("Listen: %v, want the duplicate key refused", res.err)
		}
		p.quiet() // no close: it would drop the first listener
		client, fd, _ := tcpConn(t)
		ack := p.newconn("same", fd)
		p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":true,"seq":4}`, ack))
		conn, err := first.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		echo(t, conn, client, "first still serves")
	})

	t.Run("reply after disconnect", func(t *testing.T) {
		p, c, _ := start(t)
		r := goListen(c, "tcp", ":0")
		p.next()
		p.send(actDisconnect, nil)
		p.reply(1, map[string]any{"errno": nil, "key": "late", "data": nil})
		if res := wait(t, r); !errors.Is(res.err, ErrDisconnected) {
			t.Fatalf("Listen: %v, want ErrDisconnected", res.err)
		}
		p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"late","seq":2}`)
	})
}
