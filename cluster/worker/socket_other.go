//go:build !linux

package worker

import (
	"net"

	"github.com/herd-sh/herd/cluster/ipc"
)

// Outside Linux ipc.Open refuses every channel (ipc.ErrNotSupported), so
// no client exists and no socket ever arrives from herd: the process is a
// worker only in name, and Listen reports the error rather than bind the
// port itself. Without the worker environment, Listen is net.Listen.

func listenShared(fd int) (net.Listener, error) { return nil, ipc.ErrNotSupported }

func fileConn(fd int) (net.Conn, error) { return nil, ipc.ErrNotSupported }

func closeFD(fd int) {}
