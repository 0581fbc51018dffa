package worker

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listenShared makes a net.Listener of fd, a stream socket herd sent: bound
// by herd and maybe already listening. It calls listen(2) if the socket does
// not listen yet (node's worker calls it too) and takes ownership of fd.
func listenShared(fd int) (net.Listener, error) {
	if err := prepareShared(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f, err := newSocketFile(fd, "herd-listener")
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	defer f.Close() // net.FileListener works on its own dup
	return net.FileListener(f)
}

func prepareShared(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("herd sent a socket of type %d, not SOCK_STREAM", typ)
	}
	listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if listening == 0 {
		// The kernel caps the backlog at net.core.somaxconn, as for net.Listen.
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	return nil
}

// fileConn makes a net.Conn of fd, a connection herd accepted, and takes
// ownership of fd. TCP keep-alive is enabled with net.Listen's defaults, so
// connections look the same under every policy.
func fileConn(fd int) (net.Conn, error) {
	f, err := newSocketFile(fd, "herd-conn")
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	conn, err := net.FileConn(f) // a dup; f's fd is closed below
	f.Close()
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	}
	return conn, nil
}

// newSocketFile wraps fd for net.FileListener and net.FileConn, which dup it
// through (*os.File).Fd. O_NONBLOCK lives on the open file description that
// herd and other workers share, and Fd puts a file back into blocking mode
// if os made it non-blocking; os only does that to an fd that arrives
// blocking. So the flag is set here first: os then leaves it alone, and
// nobody's copy ever turns blocking (a blocking socket stalls a node
// worker's event loop, docs/protocol.md §11.1).
func newSocketFile(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// closeFD closes a received fd the worker does not keep (-1: none).
func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
