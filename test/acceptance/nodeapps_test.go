package acceptance

// Node apps under herd (testdata/node_*.js, testdata/npm/), and what
// they write: every worker's "@@ {json}" event lines on stdout, from the
// trace preload (testdata/node_trace.js: the worker's side of the cluster
// channel, every message and every fd that came with one) and from the
// apps themselves (testdata/node_listen.js: listening, errors, requests,
// connections).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireNpm needs the packages test.sh installs in testdata/npm (npm ci)
// for the apps there: missing packages fail the test under CI=true.
func requireNpm(t *testing.T) {
	t.Helper()
	for _, pkg := range []string{"ws", "express"} {
		if _, err := os.Stat(filepath.Join("testdata", "npm", "node_modules", pkg)); err != nil {
			missing(t, "npm package %s in test/acceptance/testdata/npm (npm ci --prefix test/acceptance/testdata/npm): %v", pkg, err)
		}
	}
}

// nodeOpts describes one run of herd with node workers.
type nodeOpts struct {
	workers int
	policy  string   // HERD_SCHED_POLICY; "default": not set at all
	env     []string // more of herd's environment
	script  string   // testdata file (default node_listen.js; npm/... needs requireNpm)
	cfg     any      // node_listen.js's configuration (argv[2], as JSON)
	args    []string // script arguments (instead of cfg)
	trace   bool     // preload node_trace.js
	mode    runMode  // asPID1 unless set
	strace  string   // run herd under strace -f, writing this file (mode underNSInit)
	dir     string   // herd's (and so the workers') working directory
}

// startNode starts herd with node workers as o says.
func startNode(t *testing.T, o nodeOpts) *herdRun {
	t.Helper()
	node := requireTool(t, "node")
	if o.script == "" {
		o.script = "node_listen.js"
	}
	argv := []string{node}
	if o.trace {
		argv = append(argv, "-r", testdataPath(t, "node_trace.js"))
	}
	argv = append(argv, testdataPath(t, o.script))
	if o.cfg != nil {
		b, err := json.Marshal(o.cfg)
		if err != nil {
			t.Fatal(err)
		}
		argv = append(argv, string(b))
	}
	argv = append(argv, o.args...)
	env := []string{"HERD_WORKERS=" + strconv.Itoa(max(o.workers, 1))}
	var unset []string
	switch o.policy {
	case "":
	case "default":
		unset = []string{"HERD_SCHED_POLICY", "NODE_CLUSTER_SCHED_POLICY"}
	default:
		env = append(env, "HERD_SCHED_POLICY="+o.policy)
	}
	env = append(env, o.env...)
	s := spec{mode: o.mode, env: env, args: cmdArgs(argv...), dir: o.dir, unset: unset}
	if o.strace != "" {
		st := requireTool(t, "strace")
		s.mode = underNSInit
		s.wrap = []string{st, "-f", "-Y", "--seccomp-bpf", "-qq", "-xx", "-s", "8192",
			"-e", "trace=sendmsg,recvmsg,close", "-o", o.strace}
	}
	return start(t, s)
}

// httpServer is a node_listen.js server entry: an http server listening with
// args.
func httpServer(args ...any) map[string]any { return map[string]any{"kind": "http", "listen": args} }

// event is one "@@ {json}" line a worker wrote on stdout.
type event struct {
	raw    string
	Ev     string         `json:"ev"`
	Pid    int            `json:"pid"`
	T      int64          `json:"t"`
	Msg    map[string]any `json:"msg"`
	Handle *handle        `json:"handle"`
	// start
	IsWorker   bool    `json:"isWorker"`
	ID         *int    `json:"id"`
	State      string  `json:"state"`
	EnvUnique  *string `json:"env_unique"`
	EnvChannel *string `json:"env_channel"`
	ChannelFD  *int    `json:"channelFd"`
	// exit
	Code any `json:"code"`
	// app
	What    string         `json:"what"`
	I       int            `json:"i"`
	Address map[string]any `json:"address"`
	Path    string         `json:"path"`
	Rport   int            `json:"rport"`
	Index   string         `json:"index"`
}

// handle describes an fd that came or went with a message.
type handle struct {
	Type     string         `json:"type"`
	Wraps    string         `json:"wraps"`
	FD       int            `json:"fd"`
	Flags    string         `json:"flags"`
	Link     string         `json:"link"`
	Sockname map[string]any `json:"sockname"`
	Peer     map[string]any `json:"peer"`
	TCPState *string        `json:"tcpState"`
}

// nonblocking reports whether the fd's open file description had O_NONBLOCK.
func (h *handle) nonblocking() bool {
	f, err := strconv.ParseUint(h.Flags, 8, 64)
	return err == nil && f&unix.O_NONBLOCK != 0
}

func parseEvent(raw string) (event, bool) {
	s, ok := strings.CutPrefix(raw, "@@ ")
	if !ok {
		return event{}, false
	}
	e := event{raw: raw}
	if json.Unmarshal([]byte(s), &e) != nil {
		return event{}, false
	}
	return e, true
}

// str is a message field as text ("" when absent); numbers print as JSON.
func jsonStr(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func (e event) cmd() string { return jsonStr(e.Msg, "cmd") }

func (e event) act() string { return jsonStr(e.Msg, "act") }

// inner is the message a NODE_HANDLE envelope carries.
func (e event) inner() map[string]any {
	m, _ := e.Msg["msg"].(map[string]any)
	return m
}

// is reports whether e is a cluster message with act (or, for act "",
// a reply) going in direction ev.
func (e event) is(ev, act string) bool {
	return e.Ev == ev && e.cmd() == "NODE_CLUSTER" && e.act() == act
}

func events(r *herdRun) []event {
	var out []event
	for _, l := range r.stdout.snapshot() {
		if e, ok := parseEvent(l.raw); ok {
			out = append(out, e)
		}
	}
	return out
}

// appEvents are the events an app wrote about what (its "what" field).
func appEvents(r *herdRun, what string) []event {
	var out []event
	for _, e := range events(r) {
		if e.What == what {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for a worker event that match accepts.
func waitEvent(t *testing.T, r *herdRun, what string, match func(event) bool) event {
	t.Helper()
	l, _, err := r.stdout.find(0, hangGuard, func(l logLine) bool {
		e, ok := parseEvent(l.raw)
		return ok && match(e)
	})
	if err != nil {
		t.Fatalf("no worker event: %s: %v", what, err)
	}
	e, _ := parseEvent(l.raw)
	return e
}

// waitEvents waits for n distinct workers' events that match accepts and
// returns the first of each worker, in order.
func waitEvents(t *testing.T, r *herdRun, n int, what string, match func(event) bool) []event {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		seen := map[int]bool{}
		var got []event
		for _, e := range events(r) {
			if match(e) && !seen[e.Pid] {
				seen[e.Pid] = true
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got[:n]
		}
		if time.Now().After(deadline) || r.exited() {
			t.Fatalf("%d of %d workers: %s (herd exited: %v)", len(got), n, what, r.exited())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAppReady waits until n workers of node_listen.js said ready (every
// server listened) and returns their pids, in order; a server that failed to
// listen fails the test.
func waitAppReady(t *testing.T, r *herdRun, n int) []int {
	t.Helper()
	pids := waitAppReadyAllowErr(t, r, n)
	for _, e := range events(r) {
		if e.Ev == "app" && e.What == "error" {
			t.Fatalf("pid %d: server %d could not listen: %s", e.Pid, e.I, e.raw)
		}
	}
	return pids
}

// waitAppReadyAllowErr is waitAppReady for a test that expects some listen()
// to fail.
func waitAppReadyAllowErr(t *testing.T, r *herdRun, n int) []int {
	t.Helper()
	var pids []int
	for _, e := range waitEvents(t, r, n, "app ready", func(e event) bool { return e.Ev == "app" && e.What == "ready" }) {
		pids = append(pids, e.Pid)
	}
	return pids
}

// appPorts returns, per worker pid, the port each server (by index) listens
// on.
func appPorts(r *herdRun) map[int]map[int]int {
	out := map[int]map[int]int{}
	for _, e := range events(r) {
		if e.Ev != "app" || e.What != "listening" {
			continue
		}
		if out[e.Pid] == nil {
			out[e.Pid] = map[int]int{}
		}
		p, _ := e.Address["port"].(float64)
		out[e.Pid][e.I] = int(p)
	}
	return out
}

// appErrors returns each server's error code (by index) that the worker
// pid reported.
func appErrors(r *herdRun, pid int) map[int]string {
	out := map[int]string{}
	for _, e := range events(r) {
		if e.Pid == pid && e.Ev == "app" && e.What == "error" {
			out[e.I] = fmt.Sprint(e.Code)
		}
	}
	return out
}

// replyTo finds the reply a worker received to its out message m.
func replyTo(evs []event, out event) (event, bool) {
	seq := jsonStr(out.Msg, "seq")
	for _, e := range evs {
		if e.Pid == out.Pid && e.Ev == "in" && e.cmd() == "NODE_CLUSTER" && jsonStr(e.Msg, "ack") == seq && e.act() == "" {
			return e, true
		}
	}
	return event{}, false
}

// handedTo returns, per worker pid, the client ports of the connections
// that worker received (a newconn's fd, as node_trace.js saw it arrive) or
// accepted (node_listen.js's conn events).
func handedTo(r *herdRun) map[int]map[int]bool {
	out := map[int]map[int]bool{}
	add := func(pid, port int) {
		if out[pid] == nil {
			out[pid] = map[int]bool{}
		}
		out[pid][port] = true
	}
	for _, e := range events(r) {
		switch {
		case e.Ev == "app" && e.What == "conn":
			add(e.Pid, e.Rport)
		case e.Ev == "in" && e.cmd() == "NODE_HANDLE" && e.Handle != nil && e.Handle.Peer != nil:
			p, _ := e.Handle.Peer["port"].(float64)
			add(e.Pid, int(p))
		}
	}
	return out
}
