package acceptance

// TestChaosFailsOnlyRequestsOfKilledWorkers: herd as PID 1 with 3 real Node
// workers (testdata/node_listen.js, one HTTP server, every connection logged
// with its client port) under steady load, while the test kills, stops and
// signals: about 20 s of chaos, once under rr and once under none. What herd
// must guarantee through all of it:
//
//  1. a request fails only when the test SIGKILLed the worker holding its
//     connection while the request was in flight (and no more of them than
//     that worker held). A request that started after SIGTERM may also be
//     refused, once the socket is closed, and under none be reset by the
//     kernel when no worker accepted it before the last one closed the
//     shared socket: both are counted apart, as not accepted;
//  2. no request waits longer than the SIGSTOP window plus a margin;
//  3. the worker count ends as configured;
//  4. herd exits 0, and every worker the test did not kill exits 0;
//  5. nothing is left behind: before SIGTERM herd's descendants are its
//     live workers and no zombie, and herd itself reaps every worker it
//     started before it exits.
//
// Attribution. Workers die by the test's hand only. Before each SIGKILL
// the test reads which TCP connections on the service's port the worker
// has open (each socket fd is duplicated with pidfd_getfd, asked for its
// peer and closed at once); under none it stops the worker first, so that
// it accepts nothing between that reading and the kill. The client port of
// every request is recorded (loadgen_test.go), node_listen.js logs the
// client port of every connection its server gets, and under rr the trace
// preload logs every connection herd hands over before the worker
// acknowledges it. A failed request is the killed worker's when it was in
// flight at the kill and its connection was among the worker's open ones,
// or the worker had logged it by then. Any other failure is herd's, and is
// reported with the workers that had logged its connection, if any, and
// herd's log lines around it.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	chaosWorkers = 3
	// chaosStopFor is how long one worker is kept stopped (SIGSTOP, then
	// SIGCONT); chaosLatency is the longest any request may take.
	chaosStopFor = 3 * time.Second
	chaosLatency = chaosStopFor + 2*time.Second
	// chaosClientTimeout is far above chaosLatency: a request that hangs
	// shows as a long wait, not as one cut short.
	chaosClientTimeout = 15 * time.Second
	// chaosShutdownTimeout bounds a graceful stop; the disconnect grace is
	// half of it, above chaosStopFor, so a worker asked to stop while it is
	// stopped has the time to finish once it runs again.
	chaosShutdownTimeout = 10 * time.Second
)

// chaosKill is one SIGKILL the test sent to a worker.
type chaosKill struct {
	n      int
	pid    int // in herd's PID namespace (herd's logs, the responses)
	host   int // in the test's
	index  int
	at     time.Time    // just before kill(2)
	held   map[int]bool // client ports of the worker's connections just before the kill
	how    string       // how held was read
	failed []loadRecord // failed requests attributed to this kill
}

// chaosRun is one run of TestChaosFailsOnlyRequestsOfKilledWorkers.
type chaosRun struct {
	t      *testing.T
	r      *herdRun
	policy string
	port   int
	t0     time.Time

	kills    []*chaosKill
	stopped  int // namespace pid of the worker under SIGSTOP, 0 when none
	stopHost int
	stopAt   time.Time
	contAt   time.Time
	events   []chaosEvent // what the test did, for the log
	logged   bool         // the timeline was logged
}

// chaosEvent is a step of the chaos, or a line of herd's log about workers.
type chaosEvent struct {
	at   time.Time
	what string
}

func TestChaosFailsOnlyRequestsOfKilledWorkers(t *testing.T) {
	t.Parallel()
	requireNS(t)
	requireTool(t, "node")
	// One after the other: each run alone is what the machine can carry.
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) { testChaos(t, policy) })
	}
}

func testChaos(t *testing.T, policy string) {
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := startNode(t, nodeOpts{
		workers: chaosWorkers,
		policy:  policy,
		env:     []string{"HERD_SHUTDOWN_TIMEOUT=" + chaosShutdownTimeout.String()},
		cfg:     map[string]any{"logConns": true, "servers": []any{httpServer(port)}},
		trace:   policy == "rr",
	})
	r.waitListening(chaosWorkers)
	c := &chaosRun{t: t, r: r, policy: policy, port: port}
	t.Cleanup(func() {
		if t.Failed() && !c.logged {
			t.Logf("timeline (ms from the start of the load):\n%s", c.timeline())
		}
	})

	// Load: 8 clients, each request on a new connection. Six ask for an
	// answer after 40 ms, so that every worker has requests in flight at
	// any moment; two ask for immediate answers, paced (10 ms between
	// starts), so that new connections keep arriving between them. About
	// 300 requests a second: enough for every kill to find some in flight,
	// little enough for two CPUs shared with the rest of the package.
	slow := startLoad(t, loadConfig{Addr: addr, Path: "/slow?ms=40", Clients: 6, Timeout: chaosClientTimeout, WorkerHeader: "-"})
	fast := startLoad(t, loadConfig{Addr: addr, Path: "/", Clients: 2, Interval: 10 * time.Millisecond, Timeout: chaosClientTimeout, WorkerHeader: "-"})
	c.t0 = time.Now()
	at := func(d time.Duration) { r.sleepUntil(c.t0.Add(d)) }

	// Three kills, 2 s apart: slot 0, slot 1, then slot 0 again (the
	// replacement, which has served for about 3 s; its restart waits the
	// doubled delay of a slot that failed twice).
	for i, slot := range []int{0, 1, 0} {
		at(time.Second + time.Duration(i)*2*time.Second)
		c.kill(slot)
	}

	// One worker stopped for 3 s; meanwhile two SIGHUPs, the second while
	// the first rolling restart is under way (the roll reaches the
	// stopped worker and asks it to disconnect while it cannot run).
	at(6 * time.Second)
	c.stop()
	at(7 * time.Second)
	rollMark := len(r.stderr.snapshot())
	c.note("SIGHUP")
	r.signal(syscall.SIGHUP)
	at(7500 * time.Millisecond)
	c.note("SIGHUP")
	r.signal(syscall.SIGHUP)
	r.sleepUntil(c.stopAt.Add(chaosStopFor))
	c.cont()
	end, _, err := r.stderr.find(rollMark, 30*time.Second, func(l logLine) bool {
		return l.is("rolling restart done") || l.is("rolling restart abandoned; the remaining workers keep running")
	})
	if err != nil {
		t.Fatalf("the rolling restart did not end: %v", err)
	}
	if end.is("rolling restart abandoned; the remaining workers keep running") {
		t.Errorf("rolling restart abandoned: %s", end.raw)
	}

	// One worker more, then one less.
	r.sleepUntil(chaosLater(c.t0.Add(13*time.Second), time.Now().Add(time.Second)))
	mark := len(r.stderr.snapshot())
	c.note("SIGTTIN")
	r.signal(syscall.SIGTTIN)
	r.waitLogAfter(mark, hangGuard, "workers resized", "from", chaosWorkers, "to", chaosWorkers+1, "reason", "SIGTTIN")
	r.waitLogAfter(mark, hangGuard, "worker listening", "index", chaosWorkers)
	r.sleepUntil(chaosLater(c.t0.Add(15*time.Second), time.Now().Add(time.Second)))
	mark = len(r.stderr.snapshot())
	c.note("SIGTTOU")
	r.signal(syscall.SIGTTOU)
	r.waitLogAfter(mark, hangGuard, "workers resized", "from", chaosWorkers+1, "to", chaosWorkers, "reason", "SIGTTOU")
	removed, _ := r.waitLogAfter(mark, hangGuard, "worker stopping", "reason", "SIGTTOU")
	r.waitLogAfter(mark, hangGuard, "worker exited", "pid", removed.str("pid"))

	// (3) and (5), just before SIGTERM: 4 s after the last resize and 15 s
	// after the last kill, well past any restart delay of slots killed once.
	r.sleepUntil(chaosLater(c.t0.Add(20*time.Second), time.Now().Add(4*time.Second)))
	live := chaosLive(r)
	hostPids := c.checkBeforeStop(live)

	// SIGTERM while the load runs; the load stops once herd has gone.
	sigAt := time.Now()
	c.noteAt(sigAt, "SIGTERM")
	r.signal(syscall.SIGTERM)
	code := r.exitCode(chaosShutdownTimeout + 30*time.Second)
	exitAt := time.Now()
	c.note(fmt.Sprintf("herd exited %d", code))
	time.Sleep(100 * time.Millisecond) // a few requests after herd has gone
	res := mergeLoads(slow.Stop(), fast.Stop())

	t.Logf("timeline (ms from the start of the load; herd's lines about workers):\n%s", c.timeline())
	c.logged = true
	c.checkRequests(res, sigAt, exitAt)

	// (4) herd exits 0, and every worker the test did not kill stopped
	// gracefully (rolling restart, SIGTTOU, shutdown).
	if code != 0 {
		t.Errorf("herd's exit code %d, want 0", code)
	}
	killed := map[string]bool{}
	for _, k := range c.kills {
		killed[strconv.Itoa(k.pid)] = true
	}
	exited := map[string]logLine{}
	for _, l := range r.logs("worker exited") {
		exited[l.str("pid")] = l
		if !killed[l.str("pid")] && l.str("code") != "0" {
			t.Errorf("a worker the test did not kill ended with code %s: %s", l.str("code"), l.raw)
		}
	}
	for _, msg := range []string{"worker did not stop in time; killing it", "shutdown timeout"} {
		for _, l := range r.logs(msg) {
			t.Errorf("herd had to kill a worker it stopped: %s", l.raw)
		}
	}

	// (5) herd reaped every worker it started before it exited (a worker
	// it left running would have been killed by the kernel with the PID
	// namespace, unseen), and nothing it ran is still there.
	for _, l := range r.logs("worker started") {
		if _, ok := exited[l.str("pid")]; !ok {
			t.Errorf("herd exited without reaping worker %s: %s", l.str("pid"), l.raw)
		}
	}
	for _, hp := range hostPids {
		if p, ok := readProc(hp); ok {
			t.Errorf("process %d (%s, state %c) outlived herd", hp, p.comm, p.state)
		}
	}

	rolls := len(r.logs("rolling restart"))
	t.Logf("%s: %s; max latency %v; kills %d (requests failed with their worker: %d), stop %v, "+
		"rolling restarts %d (+%d SIGHUP ignored), crash restarts %d, workers started %d; exit %d",
		policy, res, chaosMaxLatency(res).Round(time.Millisecond), len(c.kills), c.killFailures(), chaosStopFor,
		rolls, len(r.logs("rolling restart already under way; SIGHUP ignored")),
		len(r.logs("worker restart scheduled")), len(r.logs("worker started")), code)
}

func chaosLater(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (c *chaosRun) ms(at time.Time) string {
	return fmt.Sprintf("%+7.0f", ms(at.Sub(c.t0)))
}

func (c *chaosRun) note(what string) { c.noteAt(time.Now(), what) }

func (c *chaosRun) noteAt(at time.Time, what string) {
	c.events = append(c.events, chaosEvent{at, "test: " + what})
}

// timeline merges the test's steps with herd's log lines about workers.
func (c *chaosRun) timeline() string {
	evs := append([]chaosEvent(nil), c.events...)
	for _, l := range c.r.stderr.snapshot() {
		switch l.msg() {
		case "worker started", "worker listening", "worker exited", "worker stopping", "worker restart scheduled",
			"rolling restart", "rolling restart done", "rolling restart already under way; SIGHUP ignored",
			"rolling restart abandoned; the remaining workers keep running", "workers resized", "shutdown",
			"worker did not stop in time; killing it", "shutdown timeout", "herd exiting":
			var kv []string
			for _, k := range []string{"id", "index", "pid", "code", "status", "delay", "reason", "signal", "from", "to"} {
				if v := l.str(k); v != "" {
					kv = append(kv, k+"="+v)
				}
			}
			evs = append(evs, chaosEvent{l.time(), "herd: " + l.msg() + " " + strings.Join(kv, " ")})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s\n", c.ms(e.at), e.what)
	}
	return b.String()
}

// chaosLive maps the workers herd says are listening, and has not begun to
// stop and has not seen exit, to their slots (pids in herd's namespace).
func chaosLive(r *herdRun) map[int]int {
	live := map[int]int{}
	for _, l := range r.stderr.snapshot() {
		if l.fields == nil {
			continue
		}
		pid, _ := l.num("pid")
		switch l.msg() {
		case "worker listening":
			live[pid], _ = l.num("index")
		case "worker stopping", "worker exited":
			delete(live, pid)
		}
	}
	return live
}

// pick chooses a live worker: the one in slot index if there is one, else
// the one in the lowest slot; never the stopped one.
func (c *chaosRun) pick(index int) (pid, slot int) {
	c.t.Helper()
	best, bestSlot := 0, -1
	for p, i := range chaosLive(c.r) {
		if p == c.stopped {
			continue
		}
		if i == index {
			return p, i
		}
		if bestSlot < 0 || i < bestSlot {
			best, bestSlot = p, i
		}
	}
	if best == 0 {
		c.t.Fatalf("no listening worker to pick (herd exited: %v)", c.r.exited())
	}
	return best, bestSlot
}

// kill reads which connections a live worker (slot index if it has one)
// holds and SIGKILLs it, then waits until herd has seen it exit. Under
// none the worker is stopped first (SIGSTOP, until every thread is), so
// that it accepts nothing between the reading and the kill; under rr herd
// hands connections over, and the trace preload logs each one before the
// worker acknowledges it, so the kill is a plain one: stopping the worker
// first would give herd time to read what the worker last wrote on its
// channel, and hide a hand-off that goes wrong when a worker dies.
func (c *chaosRun) kill(index int) {
	t := c.t
	t.Helper()
	pid, slot := c.pick(index)
	host := c.r.hostPID(pid)
	k := &chaosKill{n: len(c.kills) + 1, pid: pid, host: host, index: slot}
	if c.policy == "none" {
		if err := unix.Kill(host, unix.SIGSTOP); err != nil {
			t.Fatalf("kill(%d, SIGSTOP): %v", host, err)
		}
		if err := waitStopped(host, 5*time.Second); err != nil {
			t.Fatalf("worker %d (host pid %d) did not stop within 5 s of SIGSTOP: %v", pid, host, err)
		}
	}
	held, how, err := chaosHeld(host, c.port)
	if err != nil {
		t.Fatalf("connections of worker %d (host pid %d): %v", pid, host, err)
	}
	k.held, k.how = held, how
	k.at = time.Now()
	if err := unix.Kill(host, unix.SIGKILL); err != nil {
		t.Fatalf("kill(%d, SIGKILL): %v", host, err)
	}
	c.kills = append(c.kills, k)
	stopped := ""
	if c.policy == "none" {
		stopped = "stopped, then "
	}
	c.noteAt(k.at, fmt.Sprintf("%sSIGKILL worker %d (slot %d), holding %d connections %v", stopped, pid, slot, len(held), chaosPorts(held)))
	c.r.waitLogAfter(0, hangGuard, "worker exited", "pid", pid)
}

// stop sends SIGSTOP to a live worker (slot 0's if it has one).
func (c *chaosRun) stop() {
	t := c.t
	t.Helper()
	pid, slot := c.pick(0)
	host := c.r.hostPID(pid)
	c.stopAt = time.Now()
	if err := unix.Kill(host, unix.SIGSTOP); err != nil {
		t.Fatalf("kill(%d, SIGSTOP): %v", host, err)
	}
	c.stopped, c.stopHost = pid, host
	c.noteAt(c.stopAt, fmt.Sprintf("SIGSTOP worker %d (slot %d)", pid, slot))
}

func (c *chaosRun) cont() {
	c.t.Helper()
	c.contAt = time.Now()
	if err := unix.Kill(c.stopHost, unix.SIGCONT); err != nil {
		c.t.Errorf("kill(%d, SIGCONT): %v", c.stopHost, err)
	}
	c.noteAt(c.contAt, fmt.Sprintf("SIGCONT worker %d", c.stopped))
	c.stopped = 0
}

// chaosHeld returns the client ports of the TCP connections on port that
// process pid (the test's view) has open. Each socket fd is duplicated into
// the test with pidfd_getfd (close-on-exec), asked for its addresses and
// closed at once, so the connection's fate stays the worker's; where
// pidfd_getfd is not available, the socket inodes are looked up in the
// kernel's TCP tables instead (slower: more time between the reading and
// the kill, which the worker's own connection log covers).
func chaosHeld(pid, port int) (map[int]bool, string, error) {
	held := map[int]bool{}
	socks := socketInodes(pid)
	pfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(pfd)
		for fd := range socks {
			dup, err := unix.PidfdGetfd(pfd, fd, 0)
			if errors.Is(err, unix.EBADF) {
				continue // closed meanwhile
			}
			if err != nil {
				return chaosHeldTables(socks, port)
			}
			local, lerr := unix.Getsockname(dup)
			peer, perr := unix.Getpeername(dup)
			unix.Close(dup)
			if lerr == nil && perr == nil && chaosSockPort(local) == port {
				if p := chaosSockPort(peer); p > 0 {
					held[p] = true
				}
			}
		}
		return held, "pidfd_getfd", nil
	}
	if errors.Is(err, unix.ESRCH) {
		return nil, "", err
	}
	return chaosHeldTables(socks, port)
}

// chaosHeldTables finds the sockets (by inode) in /proc/net/tcp and tcp6:
// an established one with local port port gives its remote port.
func chaosHeldTables(socks map[int]string, port int) (map[int]bool, string, error) {
	inodes := map[string]bool{}
	for _, ino := range socks {
		inodes[ino] = true
	}
	held := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			p := strings.Fields(line)
			if len(p) < 10 || !inodes[p[9]] || p[3] == "0A" {
				continue
			}
			if chaosHexPort(p[1]) == port {
				held[chaosHexPort(p[2])] = true
			}
		}
	}
	return held, "/proc/net/tcp", nil
}

func chaosHexPort(addr string) int {
	_, h, ok := strings.Cut(addr, ":")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseUint(h, 16, 16)
	return int(n)
}

func chaosSockPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func chaosPorts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// checkBeforeStop checks (3) and half of (5) before SIGTERM and returns the
// host pids of herd's descendants.
func (c *chaosRun) checkBeforeStop(live map[int]int) []int {
	t := c.t
	t.Helper()
	slots := map[int]int{}
	for pid, i := range live {
		slots[i] = pid
	}
	if len(live) != chaosWorkers || len(slots) != chaosWorkers {
		t.Errorf("(3) %d workers listening before SIGTERM (pid: slot %v), want %d in slots 0..%d",
			len(live), live, chaosWorkers, chaosWorkers-1)
	}
	if rs := c.r.logs("workers resized"); len(rs) == 0 || rs[len(rs)-1].str("to") != strconv.Itoa(chaosWorkers) {
		t.Errorf("(3) the last resize is not to %d workers: %v", chaosWorkers, rawLines(rs))
	}
	// A process that exited this instant may show as a zombie until herd's
	// reaper runs: look again for a second before calling it one.
	var ds []proc
	for deadline := time.Now().Add(time.Second); ; time.Sleep(50 * time.Millisecond) {
		ds = descendants(c.r.root)
		if len(zombies(c.r.root)) == 0 && len(ds) == len(live) || time.Now().After(deadline) {
			break
		}
	}
	var pids []int
	var desc []string
	for _, p := range ds {
		pids = append(pids, p.pid)
		desc = append(desc, fmt.Sprintf("%d %s %c", p.pid, p.comm, p.state))
	}
	if len(ds) != len(live) || len(zombies(c.r.root)) != 0 {
		t.Errorf("(5) herd's descendants before SIGTERM: %v; want its %d live workers and no zombie", desc, len(live))
	}
	c.note(fmt.Sprintf("before SIGTERM: workers listening %v (pid: slot), descendants %v", live, desc))
	return pids
}

// chaosConn is a connection a worker said it got.
type chaosConn struct {
	pid, index int
	at         time.Time
}

// chaosConns maps each client port to the connections workers logged:
// node_listen.js's conn events (the server got the connection) and, under
// rr, node_trace.js's newconn handles (logged before the worker
// acknowledges the fd, so every connection herd counts as handed over is
// there).
func chaosConns(r *herdRun) map[int][]chaosConn {
	out := map[int][]chaosConn{}
	slots := map[int]int{}
	for _, l := range r.logs("worker started") {
		p, _ := l.num("pid")
		slots[p], _ = l.num("index")
	}
	for _, e := range events(r) {
		port := 0
		switch {
		case e.Ev == "app" && e.What == "conn":
			port = e.Rport
		case e.Ev == "in" && e.cmd() == "NODE_HANDLE" && e.Handle != nil && e.Handle.Peer != nil:
			p, _ := e.Handle.Peer["port"].(float64)
			port = int(p)
		default:
			continue
		}
		cs := out[port]
		if n := len(cs); n > 0 && cs[n-1].pid == e.Pid && e.T-cs[n-1].at.UnixMilli() < 1000 {
			continue // the same connection, handle then conn
		}
		out[port] = append(cs, chaosConn{pid: e.Pid, index: slots[e.Pid], at: time.UnixMilli(e.T)})
	}
	return out
}

// during returns the logged connections of port within rec's lifetime
// (the workers' clock has milliseconds).
func during(conns map[int][]chaosConn, rec loadRecord) []chaosConn {
	var out []chaosConn
	for _, cn := range conns[rec.LPort] {
		if !cn.at.Before(rec.Start.Truncate(time.Millisecond)) && !cn.at.After(rec.End.Add(time.Millisecond)) {
			out = append(out, cn)
		}
	}
	return out
}

// attribute returns the kill that took rec down: rec was in flight at the
// kill, and its connection was the killed worker's.
func (c *chaosRun) attribute(rec loadRecord, conns []chaosConn) *chaosKill {
	if rec.LPort == 0 {
		return nil
	}
	for _, k := range c.kills {
		if !rec.Start.Before(k.at) || rec.End.Before(k.at) {
			continue
		}
		if k.held[rec.LPort] {
			return k
		}
		for _, cn := range conns {
			if cn.pid == k.pid && !cn.at.After(k.at.Add(time.Millisecond)) {
				return k
			}
		}
	}
	return nil
}

func (c *chaosRun) killFailures() int {
	n := 0
	for _, k := range c.kills {
		n += len(k.failed)
	}
	return n
}

func chaosMaxLatency(res *loadResult) time.Duration {
	var m time.Duration
	for _, rec := range res.Records {
		m = max(m, rec.End.Sub(rec.Start))
	}
	return m
}

// checkRequests checks (1) and (2).
func (c *chaosRun) checkRequests(res *loadResult, sigAt, exitAt time.Time) {
	t := c.t
	t.Helper()
	conns := chaosConns(c.r)
	if res.OK == 0 {
		t.Fatalf("no request succeeded: %s", res)
	}
	var refusedAfter, queuedAfter, unexplained, slow, rehanded []loadRecord
	for _, rec := range res.Records {
		cs := during(conns, rec)
		if rec.End.Sub(rec.Start) > chaosLatency {
			slow = append(slow, rec)
		}
		if len(chaosPidsOf(cs)) > 1 {
			rehanded = append(rehanded, rec)
		}
		if rec.Kind == loadOK {
			continue
		}
		after := !rec.Start.Before(sigAt)
		switch k := c.attribute(rec, cs); {
		case k != nil:
			k.failed = append(k.failed, rec)
		case after && rec.Kind == loadRefused:
			refusedAfter = append(refusedAfter, rec)
		case after && c.policy == "none" && rec.Kind == loadReset && len(cs) == 0:
			queuedAfter = append(queuedAfter, rec)
		default:
			unexplained = append(unexplained, rec)
		}
	}

	before := res.StartedBefore(sigAt)
	t.Logf("requests started before SIGTERM: %s", before)
	t.Logf("requests started after SIGTERM (herd exited %.0f ms after it): %s", ms(exitAt.Sub(sigAt)), res.StartedFrom(sigAt))
	for _, k := range c.kills {
		var inflight, survived []loadRecord
		for _, rec := range res.Records {
			if rec.LPort != 0 && rec.Start.Before(k.at) && !rec.End.Before(k.at) && k.held[rec.LPort] {
				inflight = append(inflight, rec)
				if rec.Kind == loadOK {
					survived = append(survived, rec)
				}
			}
		}
		t.Logf("kill %d: worker %d (slot %d) held %d connections (%s) %v, %d of them requests in flight; %d requests failed with it",
			k.n, k.pid, k.index, len(k.held), k.how, chaosPorts(k.held), len(inflight), len(k.failed))
		for _, rec := range k.failed {
			t.Logf("  failed: %s", c.describe(rec, conns))
		}
		// Answered all the same: the response was out before the kill, or
		// (rr) the worker had the connection but had not acknowledged it,
		// and herd handed it to another worker.
		for _, rec := range survived {
			t.Logf("  answered: %s", c.describe(rec, conns))
		}
		// Every failure is a distinct connection of the worker's; no more
		// can fail than it held (its fds, or connections it had logged).
		allowed := map[int]bool{}
		for p := range k.held {
			allowed[p] = true
		}
		for _, rec := range k.failed {
			allowed[rec.LPort] = true
		}
		if len(k.failed) > len(allowed) {
			t.Errorf("(1) kill %d: %d requests failed, the worker held %d", k.n, len(k.failed), len(allowed))
		}
	}
	if len(refusedAfter) > 0 {
		t.Logf("refused after SIGTERM (herd's socket closed; not accepted): %d", len(refusedAfter))
	}
	if len(queuedAfter) > 0 {
		// Under none the workers accept: a connection the kernel queued
		// after the last accept of the last worker still holding the
		// socket is reset when that worker closes it on disconnect. No
		// worker had it; herd has no say in it (under rr it takes every
		// queued connection and hands it on, so there this is a failure).
		t.Logf("started after SIGTERM, queued on the shared socket and reset when the last worker closed it, no worker having got it: %d\n%s",
			len(queuedAfter), c.describeAll(queuedAfter, conns))
	}
	if len(unexplained) > 0 {
		t.Errorf("(1) %d failed requests that no SIGKILL of the worker holding them explains:\n%s",
			len(unexplained), c.describeAll(unexplained, conns))
	}
	if len(rehanded) > 0 {
		// Under rr, a worker killed after it got a connection but before
		// it acknowledged it gives it back, and herd hands it on; the
		// request's outcome is judged like any other.
		t.Logf("connections that reached two workers: %d\n%s", len(rehanded), c.describeAll(rehanded, conns))
	}
	if len(slow) > 0 {
		t.Errorf("(2) %d requests took longer than %v (SIGSTOP %v + 2 s); longest %v:\n%s",
			len(slow), chaosLatency, chaosStopFor, chaosMaxLatency(res).Round(time.Millisecond), c.describeAll(slow, conns))
	}
}

func chaosPidsOf(cs []chaosConn) map[int]bool {
	m := map[int]bool{}
	for _, cn := range cs {
		m[cn.pid] = true
	}
	return m
}

// describeAll describes up to 10 records, each with its context.
func (c *chaosRun) describeAll(recs []loadRecord, conns map[int][]chaosConn) string {
	var b strings.Builder
	for i, rec := range recs {
		if i == 10 {
			fmt.Fprintf(&b, "  ... %d more\n", len(recs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", c.describe(rec, conns))
		for _, l := range c.herdAround(rec) {
			fmt.Fprintf(&b, "      herd: %s\n", l)
		}
	}
	return b.String()
}

// describe is one line about rec: when, how it ended, who had it.
func (c *chaosRun) describe(rec loadRecord, conns map[int][]chaosConn) string {
	var who []string
	for _, cn := range during(conns, rec) {
		s := fmt.Sprintf("worker %d (slot %d) got it at %s", cn.pid, cn.index, c.ms(cn.at))
		for _, k := range c.kills {
			if k.pid == cn.pid {
				s += fmt.Sprintf(", SIGKILLed by the test at %s (kill %d, held by then: %v)", c.ms(k.at), k.n, k.held[rec.LPort])
			}
		}
		if l, ok := c.exitOf(cn.pid); ok {
			s += fmt.Sprintf(", exited at %s code %s", c.ms(l.time()), l.str("code"))
		}
		who = append(who, s)
	}
	if len(who) == 0 {
		who = append(who, "no worker logged its connection")
	}
	outcome := string(rec.Kind)
	if rec.Kind == loadOK {
		outcome = "answered by " + rec.Worker
	} else {
		outcome += " at " + rec.Stage + ": " + rec.Err
	}
	return fmt.Sprintf("client %d port %d: start %s end %s (%v) %s; %s",
		rec.Client, rec.LPort, c.ms(rec.Start), c.ms(rec.End), rec.End.Sub(rec.Start).Round(time.Millisecond),
		outcome, strings.Join(who, "; "))
}

func (c *chaosRun) exitOf(pid int) (logLine, bool) {
	for _, l := range c.r.logs("worker exited") {
		if p, _ := l.num("pid"); p == pid {
			return l, true
		}
	}
	return logLine{}, false
}

// herdAround returns herd's log lines from 300 ms before rec started to
// 300 ms after it ended (at most 20), as "time-from-t0 msg fields".
func (c *chaosRun) herdAround(rec loadRecord) []string {
	from, to := rec.Start.Add(-300*time.Millisecond), rec.End.Add(300*time.Millisecond)
	var out []string
	for _, l := range c.r.stderr.snapshot() {
		if l.fields == nil {
			continue
		}
		at := l.time()
		if at.Before(from) || at.After(to) {
			continue
		}
		if len(out) == 20 {
			out = append(out, "...")
			break
		}
		out = append(out, c.ms(at)+" "+l.raw)
	}
	return out
}
