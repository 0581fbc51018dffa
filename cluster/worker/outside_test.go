package worker

import (
	"errors"
	"net"
	"os"
	"testing"
)

// TestOutsideHerd: without the environment, the package is net.Listen and
// nothing else.
func TestOutsideHerd(t *testing.T) {
	if os.Getenv(envChannelFD) != "" {
		t.Skip("the test itself runs as a cluster worker")
	}
	if IsWorker() || ID() != 0 {
		t.Fatalf("IsWorker() = %v, ID() = %d outside herd", IsWorker(), ID())
	}
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.(*net.TCPListener); !ok {
		t.Errorf("Listen returned a %T, want net.Listen's *net.TCPListener", l)
	}
	if err := Send("x"); !errors.Is(err, ErrNotWorker) {
		t.Errorf("Send: %v, want ErrNotWorker", err)
	}
	if Messages() != nil || Disconnected() != nil {
		t.Error("Messages or Disconnected not nil outside herd")
	}
	if err := Disconnect(); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}
