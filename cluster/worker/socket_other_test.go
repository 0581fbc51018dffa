//go:build !linux

package worker

import (
	"errors"
	"testing"

	"github.com/herd-sh/herd/cluster/ipc"
)

// Outside Linux the worker environment names a channel that cannot be
// opened: the error says why, and nothing binds the port behind the
// primary's back. Without the environment Listen is net.Listen
// (TestOutsideHerd).
func TestNotSupported(t *testing.T) {
	env := map[string]string{envChannelFD: "3", envUniqueID: "2", envSerialization: "json"}
	exited := false
	c, err := fromEnv(func(k string) string { return env[k] },
		func(k string) error { delete(env, k); return nil },
		func(int) { exited = true })
	if c != nil || !errors.Is(err, ipc.ErrNotSupported) {
		t.Fatalf("fromEnv: %v, %v; want nil, ipc.ErrNotSupported", c, err)
	}
	if len(env) != 0 || exited {
		t.Errorf("environment left %v, exited %v; want it cleared, no exit", env, exited)
	}
	if _, err := listenShared(3); !errors.Is(err, ipc.ErrNotSupported) {
		t.Errorf("listenShared: %v, want ipc.ErrNotSupported", err)
	}
	if _, err := fileConn(3); !errors.Is(err, ipc.ErrNotSupported) {
		t.Errorf("fileConn: %v, want ipc.ErrNotSupported", err)
	}
}
