package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The environment a cluster primary gives its workers (docs/protocol.md §2).
const (
	envChannelFD     = "NODE_CHANNEL_FD"
	envSerialization = "NODE_CHANNEL_SERIALIZATION_MODE"
	envUniqueID      = "NODE_UNIQUE_ID"
)

var (
	// ErrNotWorker is returned by Send when the process is not a worker.
	ErrNotWorker = errors.New("worker: not a herd or node cluster worker (NODE_CHANNEL_FD or NODE_UNIQUE_ID unset)")

	// ErrDisconnected is returned (wrapped) once the worker has been told to
	// stop, has disconnected, or has lost its channel to herd.
	ErrDisconnected = errors.New("worker: disconnected from herd")
)

// The process's one channel to herd, opened on first use. It is process
// state by nature, like the fd and the environment it comes from.
var std struct {
	once sync.Once
	c    *client // nil outside herd
	err  error   // the environment says worker, but the channel is unusable
}

func get() (*client, error) {
	std.once.Do(func() {
		std.c, std.err = fromEnv(os.Getenv, os.Unsetenv, os.Exit)
	})
	return std.c, std.err
}

// fromEnv opens the channel the environment names, deleting the three
// variables as node does so that children do not inherit them. Neither a
// channel nor an id: (nil, nil), and the environment is left alone.
func fromEnv(getenv func(string) string, unsetenv func(string) error, exit func(int)) (*client, error) {
	fdStr, idStr := getenv(envChannelFD), getenv(envUniqueID)
	if fdStr == "" || idStr == "" {
		return nil, nil
	}
	mode := getenv(envSerialization)
	for _, k := range []string{envChannelFD, envSerialization, envUniqueID} {
		unsetenv(k)
	}
	if mode != "" && mode != "json" {
		return nil, fmt.Errorf("worker: %s=%q: only json is supported", envSerialization, mode)
	}
	fd, err := strconv.Atoi(strings.TrimSpace(fdStr))
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("worker: %s=%q: want a file descriptor number", envChannelFD, fdStr)
	}
	// node reads the id as +v|0: anything that is not a number is 0.
	id, _ := strconv.Atoi(strings.TrimSpace(idStr))
	c, err := newClient(fd, id, exit)
	if err != nil {
		return nil, fmt.Errorf("worker: %s=%d: %w", envChannelFD, fd, err)
	}
	return c, nil
}

// IsWorker reports whether the process is a herd (or node cluster) worker:
// whether NODE_CHANNEL_FD and NODE_UNIQUE_ID were set. The first call of any
// function of this package opens the channel and sends online.
func IsWorker() bool {
	c, err := get()
	return c != nil || err != nil
}

// ID returns the worker id herd gave this process (NODE_UNIQUE_ID, node's
// cluster.worker.id), or 0 outside herd.
func ID() int {
	c, _ := get()
	if c == nil {
		return 0
	}
	return c.id
}

// Listen returns a listener for network "tcp", "tcp4", "tcp6" or "unix" and
// an address as net.Listen takes it (":8080", "127.0.0.1:0", "/run/x.sock").
// Under herd it asks herd for the socket, as a node worker's listen() does,
// and works with every scheduling policy (see the package documentation);
// outside herd it is net.Listen. Other networks are bound by the process
// itself, under herd or not.
//
// Errors are reported as net.Listen reports them: a *net.OpError, whose
// bind error herd chose (errors.Is(err, syscall.EADDRINUSE)). When the
// environment names a channel that cannot be used, Listen fails rather than
// bind the port behind herd's back.
func Listen(network, address string) (net.Listener, error) {
	c, err := get()
	if err != nil {
		return nil, err
	}
	if c == nil {
		return net.Listen(network, address)
	}
	return c.listen(network, address)
}

// Send sends msg to herd as a user message (node's process.send): msg is
// encoded with encoding/json, as JSON.stringify would encode it; a
// json.RawMessage goes as it is and must be one valid JSON value. herd
// treats a message whose cmd starts with "NODE_" as its own.
func Send(msg any) error {
	c, err := get()
	switch {
	case err != nil:
		return err
	case c == nil:
		return ErrNotWorker
	}
	return c.send(msg)
}

func (c *client) send(msg any) error {
	if _, ok := msg.(json.RawMessage); !ok {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // as JSON.stringify
		if err := enc.Encode(msg); err != nil {
			return fmt.Errorf("worker: send: %w", err)
		}
		msg = json.RawMessage(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return ErrDisconnected
	}
	if err := c.ch.Send(msg); err != nil {
		return fmt.Errorf("worker: send: %w", err)
	}
	return nil
}

// Messages returns the user messages herd sends, in order; the channel is
// closed when the channel to herd ends. As in node, messages that arrive
// before the first call are dropped; after it none is, however slowly the
// program reads. Outside herd it returns nil (a channel that never
// delivers).
func Messages() <-chan json.RawMessage {
	c, _ := get()
	if c == nil {
		return nil
	}
	return c.msgs.messages()
}

// Disconnected returns a channel that is closed when the worker has to stop
// serving: herd sent disconnect (a graceful stop: a rolling restart, a scale
// down, herd's own shutdown), Disconnect was called, or the channel ended.
// By then every listener from Listen is closed (Accept returns
// net.ErrClosed); the program should finish in-flight work (for instance
// http.Server.Shutdown), then call Disconnect or exit. Outside herd it
// returns nil (a channel that is never closed).
func Disconnected() <-chan struct{} {
	c, _ := get()
	if c == nil {
		return nil
	}
	return c.disc
}

// Disconnect ends the worker's part in the cluster, as node's
// cluster.worker.disconnect(): it closes every listener (herd is told),
// and if herd did not ask for the stop it tells herd the coming exit is
// planned (exitedAfterDisconnect) and waits for herd's acknowledgement;
// then it closes the channel. herd reads EOF and waits for the process to
// exit. Call it once in-flight work is done; the process keeps running.
// Outside herd, and after the first call, it does nothing.
func Disconnect() error {
	c, _ := get()
	if c == nil {
		return nil
	}
	return c.disconnect()
}
