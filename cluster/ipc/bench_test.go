//go:build linux

package ipc

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkHandOff is one round-robin hand-off as herd's side sees it:
// SendHandle(newconn) with an fd, the worker's NODE_HANDLE_ACK and
// {ack, accepted} reply read back and delivered. The peer is a raw socket in
// the benchmark goroutine (its recvmsg/close/write are included).
func BenchmarkHandOff(b *testing.B) {
	c, child, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	defer unix.Close(child)
	replies := make(chan Message, 1)
	go c.Run(context.Background(), func(m Message) { replies <- m })
	conn, peer := socketpair(b, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	defer closeFDs([]int{conn, peer})
	key := "null:8080:4:undefined:0"
	answer := []byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n" + `{"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":3}` + "\n")
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.SendHandle(TypeNetNative, ClusterMessage("newconn", int64(i), map[string]any{"key": key}), conn, nil); err != nil {
			b.Fatal(err)
		}
		n, oobn, _, _, err := unix.Recvmsg(child, buf, oob, 0)
		if err != nil || !bytes.HasSuffix(buf[:n], []byte("\n")) {
			b.Fatalf("recvmsg: %d %v", n, err)
		}
		closeFDs(parseRights(oob[:oobn]))
		if _, err := unix.Write(child, answer); err != nil {
			b.Fatal(err)
		}
		if m := <-replies; m.Ack == nil {
			b.Fatalf("got %s", m.Raw)
		}
	}
}

func BenchmarkDecodeReply(b *testing.B) {
	line := []byte(`{"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClusterMessage(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ClusterMessage("newconn", int64(i), map[string]any{"key": "null:8080:4:undefined:0"})
	}
}
