package listen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRemoveStale: the one remover clears a socket file of either type that
// nobody is bound to, and keeps a socket in use of either type and every
// other file.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	if err := RemoveStale(filepath.Join(dir, "none")); err != nil {
		t.Errorf("nothing at the path: %v", err)
	}
	stream := filepath.Join(dir, "stream.sock")
	leaveStaleSocket(t, stream)
	// Go does not unlink a unixgram socket on Close: what a killed process
	// leaves of a datagram socket.
	dgram := filepath.Join(dir, "dgram.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgram, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, p := range []string{stream, dgram} {
		if err := RemoveStale(p); err != nil {
			t.Errorf("stale %s: %v", p, err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s left: %v", p, err)
		}
	}

	live := filepath.Join(dir, "live.sock")
	lc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: live, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	err = RemoveStale(live)
	if want := live + ": address already in use (a process accepts connections on it)"; !errors.Is(err, unix.EADDRINUSE) || err.Error() != want {
		t.Errorf("live datagram socket: %v, want %q", err, want)
	}
	if !isSocketFile(live) {
		t.Error("live datagram socket removed")
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = RemoveStale(file)
	if !errors.Is(err, unix.EADDRINUSE) || !strings.HasSuffix(err.Error(), "("+file+" is a regular file, not a socket; herd removes only stale sockets)") {
		t.Errorf("regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("regular file now %q, %v", b, err)
	}
}
