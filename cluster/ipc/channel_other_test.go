//go:build !linux

package ipc

import (
	"context"
	"errors"
	"testing"
)

// Outside Linux the API exists and every call that needs a channel returns
// ErrNotSupported; the encoders work as on Linux.
func TestNotSupported(t *testing.T) {
	if _, child, err := Pair(); !errors.Is(err, ErrNotSupported) || child != -1 {
		t.Errorf("Pair: child %d, %v; want -1, ErrNotSupported", child, err)
	}
	if c, err := Open(3, WithKeepHandles()); c != nil || !errors.Is(err, ErrNotSupported) {
		t.Errorf("Open: %v, %v; want nil, ErrNotSupported", c, err)
	}
	if err := CheckHandle(TypeNetNative, 3); !errors.Is(err, ErrNotSupported) {
		t.Errorf("CheckHandle: %v, want ErrNotSupported", err)
	}
	var c *Channel
	for name, err := range map[string]error{
		"Close":        c.Close(),
		"Run":          c.Run(context.Background(), nil),
		"Send":         c.Send("x"),
		"SendHandle":   c.SendHandle(TypeNetNative, nil, 3, nil),
		"SendAccepted": c.SendAccepted(TypeNetNative, nil, 3, nil),
	} {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s: %v, want ErrNotSupported", name, err)
		}
	}
	if r, err := c.NewReader(nil); r != nil || !errors.Is(err, ErrNotSupported) {
		t.Errorf("NewReader: %v, %v; want nil, ErrNotSupported", r, err)
	}
	var r *Reader
	if err := r.ReadReady(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ReadReady: %v, want ErrNotSupported", err)
	}
	if c.FD() != -1 || c.Pending() {
		t.Errorf("FD %d, Pending %v; want -1, false", c.FD(), c.Pending())
	}
	if got, want := string(ClusterMessage("online", 0, nil)), `{"cmd":"NODE_CLUSTER","act":"online","seq":0}`; got != want {
		t.Errorf("ClusterMessage: %s, want %s", got, want)
	}
}
