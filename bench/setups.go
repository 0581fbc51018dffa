package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// setup is one way of serving app.js that the benchmark compares: its key
// for -setups, its name in the table, and how it is started.
type setup struct {
	key, name string
	primary   bool // the started process is a primary (herd or Node's)
	herd      bool
	reuseport bool // a socket of its own per worker: start waits for all of them
	argv      func(e *env) []string
	vars      func(e *env) []string
}

// env is what every launch needs: the temporary directory with herd and
// the Node files, and the settings.
type env struct {
	cfg     config
	dir     string
	herdBin string
	raw     io.Writer
}

var allSetups = []setup{
	{key: "herd-rr", name: "herd rr", primary: true, herd: true,
		argv: func(e *env) []string { return []string{e.herdBin, "--", "node", e.file("app.js")} },
		vars: func(e *env) []string { return e.herdVars("rr") }},
	{key: "herd-none", name: "herd none", primary: true, herd: true,
		argv: func(e *env) []string { return []string{e.herdBin, "--", "node", e.file("app.js")} },
		vars: func(e *env) []string { return e.herdVars("none") }},
	{key: "herd-reuseport", name: "herd reuseport", primary: true, herd: true, reuseport: true,
		argv: func(e *env) []string { return []string{e.herdBin, "--", "node", e.file("app.js")} },
		vars: func(e *env) []string { return e.herdVars("reuseport") }},
	{key: "node-rr", name: "node rr", primary: true,
		argv: func(e *env) []string { return []string{"node", e.file("node_primary.js")} },
		vars: func(e *env) []string { return e.nodeVars("rr") }},
	{key: "node-none", name: "node none", primary: true,
		argv: func(e *env) []string { return []string{"node", e.file("node_primary.js")} },
		vars: func(e *env) []string { return e.nodeVars("none") }},
	{key: "single", name: "single",
		argv: func(e *env) []string { return []string{"node", e.file("app.js")} },
		vars: func(e *env) []string { return nil }},
}

func (e *env) file(name string) string { return filepath.Join(e.dir, name) }

func (e *env) herdVars(policy string) []string {
	return []string{
		"HERD_SCHED_POLICY=" + policy,
		fmt.Sprintf("HERD_WORKERS=%d", e.cfg.workers),
		"HERD_HEALTH_ADDR=off",
		"HERD_TERMINATION_LOG=off",
	}
}

func (e *env) nodeVars(policy string) []string {
	return []string{
		"NODE_CLUSTER_SCHED_POLICY=" + policy,
		fmt.Sprintf("BENCH_WORKERS=%d", e.cfg.workers),
	}
}

// baseEnv is the benchmark's environment without anything that would
// change how herd or Node's cluster behaves.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "HERD_"), strings.HasPrefix(k, "NODE_CLUSTER_"),
			strings.HasPrefix(k, "NODE_CHANNEL_"), k == "NODE_UNIQUE_ID",
			strings.HasPrefix(k, "LISTEN_"), k == "NOTIFY_SOCKET", strings.HasPrefix(k, "BENCH_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// herdBinary builds herd from the module that contains the working
// directory, or checks the binary given with -herd. It builds herd as it
// ships (the Dockerfile's flags: static, no cgo, stripped); with symbols
// kept for a profile, perf needs them.
func herdBinary(ctx context.Context, given, dir string, symbols bool) (string, error) {
	if given != "" {
		p, err := filepath.Abs(given)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("-herd: %v", err)
		}
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("cannot find herd's go.mod from here (go env GOMOD: %q, %v): run from the repository or pass -herd", gomod, err)
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if first, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(first) != "module github.com/herd-sh/herd" {
		return "", fmt.Errorf("%s is not herd's module: run from the repository or pass -herd", gomod)
	}
	bin := filepath.Join(dir, "herd")
	// A default build links libc for the net package's resolver, which
	// alone adds over a megabyte to the RSS.
	ldflags := "-s -w"
	if symbols {
		ldflags = ""
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build herd: %v\n%s", err, out)
	}
	return bin, nil
}

// launch is one start of a setup: the process, its port, its URL.
type launch struct {
	s    setup
	p    *proc
	url  string
	port int
}

// start starts s on a fresh port, with its output in the log <tag>.log,
// and waits until it answers 200 and, under reuseport, until every worker's
// socket listens.
func (e *env) start(ctx context.Context, s setup, tag string) (*launch, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := append(baseEnv(), s.vars(e)...)
	vars = append(vars, fmt.Sprintf("BENCH_PORT=%d", port))
	logPath := filepath.Join(e.dir, tag+".log")
	p, err := startProc(s.argv(e), vars, e.dir, logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %v", s.name, err)
	}
	l := &launch{s: s, p: p, port: port, url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	err = waitHTTP(ctx, p, l.url, 20*time.Second)
	if err == nil && s.reuseport {
		err = waitListening(ctx, p, port, e.cfg.workers, 20*time.Second)
	}
	if err != nil {
		p.stop(5 * time.Second)
		return nil, fmt.Errorf("%s: %v\n%s", s.name, err, tail(p.logText(), 20))
	}
	return l, nil
}

// logProblems picks what in a setup's output (before its stop) says
// something went wrong: herd's WARN and ERROR lines and worker exits, and
// any output at all from Node.
func logProblems(s setup, log string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		if s.herd && !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") &&
			!strings.Contains(line, `msg="worker exited"`) {
			continue
		}
		out = append(out, "log: "+line)
	}
	return out
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
