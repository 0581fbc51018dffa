package listen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nobodyCred is what HERD_UID=65534 HERD_GID=65534 make of the workers.
var nobodyCred = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		listenLacking(t, "switching a thread to another user needs root (euid %d)", os.Geteuid())
	}
}

// privilegedPort returns a free port on 127.0.0.1 (TCP and UDP) below
// net.ipv4.ip_unprivileged_port_start, 81 if it can.
func privilegedPort(t *testing.T) int {
	t.Helper()
	start := unprivilegedPortStart(os.DirFS("/"))
	for p := 81; p < start+81; p++ {
		port := p % start
		if port == 0 {
			continue
		}
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		c.Close()
		return port
	}
	listenLacking(t, "a free port below net.ipv4.ip_unprivileged_port_start (%d)", start)
	return 0
}

// threadIDs reads the uid line (real, effective, saved, file system) or gid
// line of the calling thread.
func threadIDs(t *testing.T, key string) string {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Error(err)
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// TestAsUserThread: f runs with the file-system ids, groups and (no)
// capabilities of the workers' user, and real and effective ids of herd's;
// the caller's thread is untouched.
func TestAsUserThread(t *testing.T) {
	requireRoot(t)
	type ids struct{ uid, gid, groups, capEff string }
	read := func() ids {
		return ids{threadIDs(t, "Uid"), threadIDs(t, "Gid"), threadIDs(t, "Groups"), threadIDs(t, "CapEff")}
	}
	got, err := asUser(nobodyCred, func() (ids, error) { return read(), nil })
	if err != nil {
		t.Fatal(err)
	}
	want := ids{"0 0 0 65534", "0 0 0 65534", "", "0000000000000000"}
	if got != want {
		t.Errorf("in f: %+v, want %+v", got, want)
	}
	if n, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || n != 1 {
		t.Errorf("dumpable after asUser: %d, %v; want 1", n, err)
	}
	// nil and uid 0: as herd, on the caller's goroutine.
	for _, cred := range []*syscall.Credential{nil, {Uid: 0, Gid: 65534}} {
		got, _ := asUser(cred, func() (ids, error) { return read(), nil })
		if got.uid != "0 0 0 0" || got.gid != "0 0 0 0" {
			t.Errorf("cred %+v: ids %+v, want herd's", cred, got)
		}
	}
}

// TestAsUserThreadsDiscarded: many calls at once, and every thread that
// took the workers' ids goes; no other thread ever had them, the main
// thread included.
func TestAsUserThreadsDiscarded(t *testing.T) {
	requireRoot(t)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := asUser(nobodyCred, func() (int, error) {
				time.Sleep(time.Millisecond) // let the runtime start threads meanwhile
				return 0, nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	switched := func() []string {
		var out []string
		tasks, _ := filepath.Glob("/proc/self/task/*/status")
		for _, p := range tasks {
			b, err := os.ReadFile(p)
			if err != nil {
				continue // gone
			}
			if strings.Contains(string(b), "\t65534\n") {
				out = append(out, p)
			}
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second) // hang guard
	for left := switched(); len(left) > 0; left = switched() {
		if time.Now().After(deadline) {
			t.Fatalf("threads still with the workers' ids: %v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile("/proc/self/status")
	if !strings.Contains(string(b), "Uid:\t0\t0\t0\t0\n") {
		t.Errorf("main thread:\n%s", b)
	}
}

// TestBindAsWorker: what the kernel refuses a worker's user, BindAs
// refuses; what it allows belongs to that user.
func TestBindAsWorker(t *testing.T) {
	requireRoot(t)
	t.Run("privileged port", func(t *testing.T) {
		port := privilegedPort(t)
		sp := mustParse(t, "127.0.0.1:"+strconv.Itoa(port))
		if _, err := sp.BindAs(nobodyCred, 0, false); !errors.Is(err, unix.EACCES) {
			t.Errorf("BindAs nobody: %v, want EACCES", err)
		}
		l, err := sp.BindAs(nil, 0, false)
		if err != nil {
			t.Fatalf("BindAs herd: %v", err)
		}
		l.Close()
		if _, err := BindUDP(nobodyCred, "udp4", "127.0.0.1", port); !errors.Is(err, unix.EACCES) {
			t.Errorf("UDP as nobody: %v, want EACCES", err)
		}
	})
	t.Run("reuseport group of the workers' user", func(t *testing.T) {
		a, err := mustParse(t, "127.0.0.1:0").BindAs(nobodyCred, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		sp := mustParse(t, "127.0.0.1:"+strconv.Itoa(a.Port()))
		b, err := sp.BindAs(nobodyCred, 0, true)
		if err != nil {
			t.Fatalf("second socket of the group: %v", err)
		}
		defer b.Close()
		// A group has one owner: herd's own socket cannot join this one.
		if l, err := sp.Bind(0, true); !errors.Is(err, unix.EADDRINUSE) {
			if l != nil {
				l.Close()
			}
			t.Errorf("herd's socket joined the workers' group: %v, want EADDRINUSE", err)
		}
		// The kernel hashes a connection to either socket of the group:
		// with a gone, b takes it.
		a.Close()
		roundTripConn(t, b, "tcp4", sp.Address)
	})
}

// TestBindAsWorkerUnix: a unix socket BindAs makes is created, owned and
// removed as the workers' user.
func TestBindAsWorkerUnix(t *testing.T) {
	requireRoot(t)
	t.Run("unix", func(t *testing.T) {
		root, err := os.MkdirTemp("", "herd-asuser-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		open := filepath.Join(root, "open")
		if err := os.Mkdir(open, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(open, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		closed := mustParse(t, unixListenURL(filepath.Join(root, "app.sock")))
		if _, err := closed.BindAs(nobodyCred, 0, false); !errors.Is(err, unix.EACCES) {
			t.Errorf("socket in root's 0755 directory: %v, want EACCES", err)
		}
		p := filepath.Join(open, "app.sock")
		sp := mustParse(t, unixListenURL(p))
		sp.Mode = 0o666
		l, err := sp.BindAs(nobodyCred, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65534 || st.Gid != 65534 || st.Mode&0o777 != 0o666 {
			t.Errorf("socket file %d:%d %#o, want 65534:65534 0666", st.Uid, st.Gid, st.Mode&0o777)
		}
		roundTripConn(t, l, "unix", p)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if isSocketFile(p) {
			t.Error("Close left the socket file")
		}
	})
}
