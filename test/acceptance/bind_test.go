package acceptance

// Acceptance of on-demand binds with unprivileged workers: herd runs as
// root (PID 1), its Node workers as uid 65534 (HERD_UID), and an address a
// worker asks for that is not in HERD_LISTEN is bound with the worker's
// rights. What the worker's user may not bind, the worker cannot get through
// herd either: its server reports EACCES and herd logs the refusal. What it
// may bind works as before and belongs to that user; HERD_LISTEN's
// addresses stay herd's. Helpers are prefixed bd.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bdWorkers runs the workers as uid and gid 65534; "/" is a working
// directory they may enter.
var bdWorkers = []string{"HERD_UID=65534", "HERD_GID=65534"}

const bdRefused = "worker's listen refused: its user may not bind the address"

// bdLowPort returns a port below net.ipv4.ip_unprivileged_port_start that
// is free for TCP (every address and 127.0.0.1) and UDP on 127.0.0.1, 81 if
// it can, not handed out before in this run.
func bdLowPort(t *testing.T) int {
	t.Helper()
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	if start <= 1 {
		missing(t, "a privileged port: net.ipv4.ip_unprivileged_port_start is %d", start)
	}
	ndPortMu.Lock()
	defer ndPortMu.Unlock()
	for i := 0; i < start; i++ {
		port := (81 + i) % start
		if port != 0 && !ndPortUsed[port] && ndPortFree(port) {
			ndPortUsed[port] = true
			return port
		}
	}
	missing(t, "a free port below %d", start)
	return 0
}

// bdListenUIDs returns the owner of every socket in LISTEN state on port
// (the kernel's TCP tables; the test shares herd's network namespace).
func bdListenUIDs(port int) []string {
	var out []string
	hexPort := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			p := strings.Fields(line)
			if len(p) > 9 && strings.HasSuffix(p[1], hexPort) && p[3] == "0A" {
				out = append(out, p[7])
			}
		}
	}
	return out
}

// bdAppErrors returns each server's error code (by index) that the worker
// pid reported.
func bdAppErrors(r *herdRun, pid int) map[int]string {
	out := map[int]string{}
	for _, e := range ndEvents(r) {
		if e.Pid == pid && e.Ev == "app" && e.What == "error" {
			out[e.I] = fmt.Sprint(e.Code)
		}
	}
	return out
}

// bdCheckRefused checks that the worker pid's listen on address and port
// (a TCP port, or "" for a unix socket) was refused: the reply to its
// queryServer carries errno -13 (EACCES) and no fd, its server i reported
// EACCES, and herd logged the refusal at WARN, naming the worker, the
// address and the reason.
func bdCheckRefused(t *testing.T, r *herdRun, pid, i int, address, port, logged string) {
	t.Helper()
	if code := bdAppErrors(r, pid)[i]; code != "EACCES" {
		t.Errorf("pid %d: server %d (%s): error %q, want EACCES", pid, i, address, code)
	}
	evs := ndEvents(r)
	asked := false
	for _, e := range evs {
		if e.Pid == pid && e.is("out", "queryServer") && ndStr(e.Msg, "address") == address && (port == "" || ndStr(e.Msg, "port") == port) {
			asked = true
			rep, ok := ndReplyTo(evs, e)
			if !ok || ndStr(rep.Msg, "errno") != "-13" || rep.Handle != nil {
				t.Errorf("pid %d: reply for %s: %v (fd %+v), want errno -13 and no fd", pid, address, rep.Msg, rep.Handle)
			}
		}
	}
	if !asked {
		t.Errorf("pid %d never asked for %s", pid, address)
	}
	id := ndStarted(r)[pid]
	l := r.waitLog(bdRefused, "id", id, "pid", pid, "address", logged, "user", "65534:65534")
	if lv := l.str("level"); lv != "WARN" || !strings.Contains(l.str("err"), "permission denied") {
		t.Errorf("refusal logged at %s with err %q, want WARN and permission denied", lv, l.str("err"))
	}
}

// TestBindPrivilegedPort: under rr and none, a worker running as uid 65534
// asks for 127.0.0.1:81 (a port below ip_unprivileged_port_start), for a
// free port above it, and for UDP on 127.0.0.1:81. herd, root, could bind
// 81 but refuses it (TCP and UDP) with EACCES, as the kernel would refuse
// the worker; the other port is bound on demand, owned by uid 65534, and
// serves.
func TestBindPrivilegedPort(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			low := bdLowPort(t)
			high := ndFreePort(t, "tcp4", "127.0.0.1")
			r := ndStart(t, ndOpts{workers: 1, policy: policy, trace: true, dir: "/", env: bdWorkers,
				cfg: map[string]any{"servers": []any{ndHTTP(low, "127.0.0.1"), ndHTTP(high, "127.0.0.1"),
					map[string]any{"kind": "udp4", "listen": []any{low, "127.0.0.1"}}}}})
			pid := ndReadyAllowErr(t, r, 1)[0]
			bdCheckRefused(t, r, pid, 0, "127.0.0.1", strconv.Itoa(low), "tcp4://127.0.0.1:"+strconv.Itoa(low))
			bdCheckRefused(t, r, pid, 2, "127.0.0.1", strconv.Itoa(low), "udp4://127.0.0.1:"+strconv.Itoa(low))
			if errs := bdAppErrors(r, pid); len(errs) != 2 {
				t.Errorf("server errors %v, want only servers 0's and 2's", errs)
			}
			// herd's main thread keeps its ids: only a thread of its own,
			// discarded since, took the workers' user.
			for _, key := range []string{"Uid", "Gid"} {
				if v, err := statusField(r.herdPID(), key); err != nil || strings.Join(strings.Fields(v), " ") != "0 0 0 0" {
					t.Errorf("herd's %s: %q (%v), want 0 0 0 0", key, v, err)
				}
			}
			if got := bdListenUIDs(low); len(got) != 0 {
				t.Errorf("sockets listening on port %d, owned by %v: want none", low, got)
			}
			if got := bdListenUIDs(high); len(got) != 1 || got[0] != "65534" {
				t.Errorf("sockets listening on port %d owned by %v, want one of uid 65534", high, got)
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(high))
			for i := 0; i < 3; i++ {
				if res := ndGet("tcp", addr, "/", 5*time.Second); !res.ok() || res.body != strconv.Itoa(pid) {
					t.Errorf("GET %s: %v, want 200 from %d", addr, res, pid)
				}
			}
			if code := ndStop(t, r); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// TestBindUnixSocket: under rr and none, a worker running as uid 65534 asks
// for a socket in a directory of root's with mode 0755 (EACCES, as the
// kernel would tell the worker) and for one in a directory uid 65534 may
// write: that socket file is created by uid 65534, serves, and is removed
// when herd stops.
func TestBindUnixSocket(t *testing.T) {
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
			r := ndStart(t, ndOpts{workers: 1, policy: policy, trace: true, dir: "/", env: bdWorkers,
				cfg: map[string]any{"servers": []any{ndHTTP(denied), ndHTTP(allowed)}}})
			pid := ndReadyAllowErr(t, r, 1)[0]
			bdCheckRefused(t, r, pid, 0, denied, "", "unix://"+denied)
			if errs := bdAppErrors(r, pid); len(errs) != 1 {
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
				if res := ndGet("unix", allowed, "/", 5*time.Second); !res.ok() || res.body != strconv.Itoa(pid) {
					t.Errorf("GET over %s: %v, want 200 from %d", allowed, res, pid)
				}
			}
			if code := ndStop(t, r); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
			if exists(allowed) {
				t.Errorf("%s still exists after herd exited", allowed)
			}
		})
	}
}

// TestBindHerdListenPrivileged: the control. With HERD_LISTEN on a port
// below ip_unprivileged_port_start, workers running as uid 65534 listen on
// it under rr and none: herd bound it itself, before they started, and the
// socket is root's.
func TestBindHerdListenPrivileged(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := bdLowPort(t)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			r := ndStart(t, ndOpts{workers: 2, policy: policy, dir: "/", env: append([]string{"HERD_LISTEN=" + addr}, bdWorkers...),
				cfg: map[string]any{"servers": []any{ndHTTP(port, "127.0.0.1")}}})
			pids := ndReady(t, r, 2)
			if n := r.stderr.count(bdRefused); n != 0 {
				t.Errorf("%d refusals logged, want none", n)
			}
			if got := bdListenUIDs(port); len(got) != 1 || got[0] != "0" {
				t.Errorf("sockets listening on port %d owned by %v, want one of root's", port, got)
			}
			ndBothServe(t, "tcp", addr, pids)
			if code := ndStop(t, r); code != 0 {
				t.Errorf("herd exited %d, want 0", code)
			}
		})
	}
}

// TestBindReuseport: under reuseport, 2 workers running as uid 65534 listen
// on a free port above ip_unprivileged_port_start that is not in
// HERD_LISTEN. herd binds one SO_REUSEPORT socket per slot, each as uid
// 65534 (a group's sockets must share their owner), and both workers serve.
func TestBindReuseport(t *testing.T) {
	t.Parallel()
	port := ndFreePort(t, "tcp4", "127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := ndStart(t, ndOpts{workers: 2, policy: "reuseport", dir: "/", env: bdWorkers,
		cfg: map[string]any{"servers": []any{ndHTTP(port, "127.0.0.1")}}})
	pids := ndReady(t, r, 2)
	if got := bdListenUIDs(port); len(got) != 2 || got[0] != "65534" || got[1] != "65534" {
		t.Errorf("sockets listening on port %d owned by %v, want 2 of uid 65534", port, got)
	}
	ndBothServe(t, "tcp", addr, pids)
	if code := ndStop(t, r); code != 0 {
		t.Errorf("herd exited %d, want 0", code)
	}
}
