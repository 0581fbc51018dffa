//go:build linux

package worker

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/ipc"
)

// TestFromEnv: the variables that make a worker, and node's deleting them.
func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string // "$FD" is replaced by a socketpair's child end
		worker  bool
		id      int
		err     string
		deleted bool
	}{
		{name: "none"},
		{name: "channel without id (child_process.fork)", env: map[string]string{envChannelFD: "$FD"}},
		{name: "id without channel", env: map[string]string{envUniqueID: "3"}},
		{name: "empty id", env: map[string]string{envChannelFD: "$FD", envUniqueID: ""}},
		{name: "worker", env: map[string]string{envChannelFD: "$FD", envUniqueID: "3", envSerialization: "json"},
			worker: true, id: 3, deleted: true},
		{name: "no mode is json", env: map[string]string{envChannelFD: "$FD", envUniqueID: "12"},
			worker: true, id: 12, deleted: true},
		{name: "id not a number is 0, as +v|0", env: map[string]string{envChannelFD: "$FD", envUniqueID: "abc"},
			worker: true, id: 0, deleted: true},
		{name: "advanced", env: map[string]string{envChannelFD: "$FD", envUniqueID: "1", envSerialization: "advanced"},
			err: "NODE_CHANNEL_SERIALIZATION_MODE", deleted: true},
		{name: "bad fd", env: map[string]string{envChannelFD: "three", envUniqueID: "1"},
			err: "want a file descriptor number", deleted: true},
		{name: "not a socket", env: map[string]string{envChannelFD: "$PIPE", envUniqueID: "1"},
			err: "socket operation on non-socket", deleted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			herd, child, err := ipc.Pair()
			if err != nil {
				t.Fatal(err)
			}
			defer herd.Close()
			var pipe [2]int
			if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pipe[0])
			defer unix.Close(pipe[1])

			env := map[string]string{}
			for k, v := range tc.env {
				v = strings.ReplaceAll(v, "$FD", strconv.Itoa(child))
				env[k] = strings.ReplaceAll(v, "$PIPE", strconv.Itoa(pipe[0]))
			}
			var unset []string
			c, err := fromEnv(func(k string) string { return env[k] },
				func(k string) error { unset = append(unset, k); return nil },
				func(int) {})
			if c == nil {
				unix.Close(child) // not taken
			} else {
				defer func() { herd.Close(); <-c.ended }()
			}
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("fromEnv: %v, want an error about %s", err, tc.err)
				}
				t.Log(err)
			case err != nil:
				t.Fatal(err)
			case (c != nil) != tc.worker:
				t.Fatalf("worker %v, want %v", c != nil, tc.worker)
			case c != nil && c.id != tc.id:
				t.Errorf("id %d, want %d", c.id, tc.id)
			}
			slices.Sort(unset)
			want := []string(nil)
			if tc.deleted {
				want = []string{envChannelFD, envSerialization, envUniqueID}
			}
			if !slices.Equal(unset, want) {
				t.Errorf("deleted %v, want %v", unset, want)
			}
		})
	}
}
