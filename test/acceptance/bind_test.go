package acceptance

// Acceptance of on-demand binds with unprivileged workers: herd runs as
// root (PID 1), its Node workers as uid 65534 (HERD_UID), and an address a
// worker asks for that is not in HERD_LISTEN is bound with the worker's
// rights. What the worker's user may not bind, the worker cannot get through
// herd either: its server reports EACCES and herd logs the refusal. What it
// may bind works as before and belongs to that user; HERD_LISTEN's
// addresses stay herd's.

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// unprivilegedWorkers runs the workers as uid and gid 65534; "/" is a working
// directory they may enter.
var unprivilegedWorkers = []string{"HERD_UID=65534", "HERD_GID=65534"}

const refusedLog = "worker's listen refused: its user may not bind the address"

// checkRefused checks that the worker pid's listen on address and port
// (a TCP port, or "" for a unix socket) was refused: the reply to its
// queryServer carries errno -13 (EACCES) and no fd, its server i reported
// EACCES, and herd logged the refusal at WARN, naming the worker, the
// address and the reason.
func checkRefused(t *testing.T, r *herdRun, pid, i int, address, port, logged string) {
	t.Helper()
	if code := appErrors(r, pid)[i]; code != "EACCES" {
		t.Errorf("pid %d: server %d (%s): error %q, want EACCES", pid, i, address, code)
	}
	evs := events(r)
	asked := false
	for _, e := range evs {
		if e.Pid == pid && e.is("out", "queryServer") && jsonStr(e.Msg, "address") == address && (port == "" || jsonStr(e.Msg, "port") == port) {
			asked = true
			rep, ok := replyTo(evs, e)
			if !ok || jsonStr(rep.Msg, "errno") != "-13" || rep.Handle != nil {
				t.Errorf("pid %d: reply for %s: %v (fd %+v), want errno -13 and no fd", pid, address, rep.Msg, rep.Handle)
			}
		}
	}
	if !asked {
		t.Errorf("pid %d never asked for %s", pid, address)
	}
	id := r.workerIDs()[pid]
	l := r.waitLog(refusedLog, "id", id, "pid", pid, "address", logged, "user", "65534:65534")
	if lv := l.str("level"); lv != "WARN" || !strings.Contains(l.str("err"), "permission denied") {
		t.Errorf("refusal logged at %s with err %q, want WARN and permission denied", lv, l.str("err"))
	}
}

// TestUnprivilegedWorkerCannotGetPrivilegedPort: under rr and none, a worker
// running as uid 65534 asks for 127.0.0.1:81 (a port below
// ip_unprivileged_port_start), for a free port above it, and for UDP on
// 127.0.0.1:81. herd, root, could bind 81 but refuses it (TCP and UDP) with
// EACCES, as the kernel would refuse the worker; the other port is bound on
// demand, owned by uid 65534, and serves.
func TestUnprivilegedWorkerCannotGetPrivilegedPort(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			low := lowPort(t)
			high := freePort(t)
			r := startNode(t, nodeOpts{workers: 1, policy: policy, trace: true, dir: "/", env: unprivilegedWorkers,
				cfg: map[string]any{"servers": []any{httpServer(low, "127.0.0.1"), httpServer(high, "127.0.0.1"),
					map[string]any{"kind": "udp4", "listen": []any{low, "127.0.0.1"}}}}})
			pid := waitAppReadyAllowErr(t, r, 1)[0]
			checkRefused(t, r, pid, 0, "127.0.0.1", strconv.Itoa(low), "tcp4://127.0.0.1:"+strconv.Itoa(low))
			checkRefused(t, r, pid, 2, "127.0.0.1", strconv.Itoa(low), "udp4://127.0.0.1:"+strconv.Itoa(low))
			if errs := appErrors(r, pid); len(errs) != 2 {
				t.Errorf("server errors %v, want only servers 0's and 2's", errs)
			}
			// herd's main thread keeps its ids: only a thread of its own,
			// discarded since, took the workers' user.
			for _, key := range []string{"Uid", "Gid"} {
				if v, err := statusField(r.herdPID(), key); err != nil || strings.Join(strings.Fields(v), " ") != "0 0 0 0" {
					t.Errorf("herd's %s: %q (%v), want 0 0 0 0", key, v, err)
				}
			}
			if got := listenUIDs(low); len(got) != 0 {
				t.Errorf("sockets listening on port %d, owned by %v: want none", low, got)
			}
			if got := listenUIDs(high); len(got) != 1 || got[0] != "65534" {
				t.Errorf("sockets listening on port %d owned by %v, want one of uid 65534", high, got)
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(high))
			for i := 0; i < 3; i++ {
				if res := request("tcp", addr, "/", 5*time.Second); !res.ok() || res.body != strconv.Itoa(pid) {
					t.Errorf("GET %s: %v, want 200 from %d", addr, res, pid)
				}
			}
			if code := r.terminate(); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// TestUnixSocketBoundWithWorkerRights: under rr and none, a worker running
// as uid 65534 asks for a socket in a directory of root's with mode 0755
// (EACCES, as the kernel would tell the worker) and for one in a directory
// uid 65534 may write: that socket file is created by uid 65534, serves, and
// is removed when herd stops.
func TestUnixSocketBoundWithWorkerRights(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			if os.Geteuid() != 0 {
				missing(t, "root (euid %d)", os.Geteuid())
			}
			// Under /tmp, not t.TempDir (0700): uid 65534 must reach both.
			root, err := os.MkdirTemp("", "herd-bind-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			mine := filepath.Join(root, "nobody")
			if err := os.Mkdir(mine, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(mine, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			denied := filepath.Join(root, "app.sock")
			allowed := filepath.Join(mine, "app.sock")
			r := startNode(t, nodeOpts{workers: 1, policy: policy, trace: true, dir: "/", env: unprivilegedWorkers,
				cfg: map[string]any{"servers": []any{httpServer(denied), httpServer(allowed)}}})
			pid := waitAppReadyAllowErr(t, r, 1)[0]
			checkRefused(t, r, pid, 0, denied, "", "unix://"+denied)
			if errs := appErrors(r, pid); len(errs) != 1 {
				t.Errorf("server errors %v, want only server 0's", errs)
			}
			if exists(denied) {
				t.Errorf("%s exists", denied)
			}
			var st unix.Stat_t
			if err := unix.Lstat(allowed, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("%s: mode %#o, owner %d:%d; want a socket of 65534:65534", allowed, st.Mode, st.Uid, st.Gid)
			}
			for i := 0; i < 3; i++ {
				if res := request("unix", allowed, "/", 5*time.Second); !res.ok() || res.body != strconv.Itoa(pid) {
					t.Errorf("GET over %s: %v, want 200 from %d", allowed, res, pid)
				}
			}
			if code := r.terminate(); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
			if exists(allowed) {
				t.Errorf("%s still exists after herd exited", allowed)
			}
		})
	}
}

// TestHerdListenPrivilegedPortServesUnprivilegedWorkers: the control. With
// HERD_LISTEN on a port below ip_unprivileged_port_start, workers running as
// uid 65534 listen on it under rr and none: herd bound it itself, before
// they started, and the socket is root's.
func TestHerdListenPrivilegedPortServesUnprivilegedWorkers(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := lowPort(t)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			r := startNode(t, nodeOpts{workers: 2, policy: policy, dir: "/", env: append([]string{"HERD_LISTEN=" + addr}, unprivilegedWorkers...),
				cfg: map[string]any{"servers": []any{httpServer(port, "127.0.0.1")}}})
			pids := waitAppReady(t, r, 2)
			if n := r.stderr.count(refusedLog); n != 0 {
				t.Errorf("%d refusals logged, want none", n)
			}
			if got := listenUIDs(port); len(got) != 1 || got[0] != "0" {
				t.Errorf("sockets listening on port %d owned by %v, want one of root's", port, got)
			}
			bothServe(t, "tcp", addr, pids)
			if code := r.terminate(); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// TestReuseportSocketsBelongToWorkerUser: under reuseport, 2 workers running
// as uid 65534 listen on a free port above ip_unprivileged_port_start that
// is not in HERD_LISTEN. herd binds one SO_REUSEPORT socket per slot, each
// as uid 65534 (a group's sockets must share their owner), and both workers
// serve.
func TestReuseportSocketsBelongToWorkerUser(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{workers: 2, policy: "reuseport", dir: "/", env: unprivilegedWorkers,
		cfg: map[string]any{"servers": []any{httpServer(port, "127.0.0.1")}}})
	pids := waitAppReady(t, r, 2)
	if got := listenUIDs(port); len(got) != 2 || got[0] != "65534" || got[1] != "65534" {
		t.Errorf("sockets listening on port %d owned by %v, want 2 of uid 65534", port, got)
	}
	bothServe(t, "tcp", addr, pids)
	if code := r.terminate(); code != 0 {
		t.Errorf("herd exited %d, want 0", code)
	}
}
