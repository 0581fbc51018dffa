// Package acceptance runs herd's real binary against the cases of
// docs/acceptance.md (and the conformance tests of docs/protocol.md §12),
// from outside: herd is built once with go build from the module root (or
// HERD_ACCEPTANCE_BINARY names a binary to test), and every test starts it
// as PID 1 of a new PID namespace (or, where the case says so, as a child
// subreaper, or as the child of a reaping PID 1), serving real workers:
// shells, this test binary in helper mode, Python and Node apps
// (testdata/), herd's own demo worker.
//
// The test binary re-executes itself as the helper processes the cases
// need (the tableflip pattern): TestMain runs the helper named by
// HERD_TEST_HELPER instead of the tests (helpers_test.go says what each
// does). Time limits are hang guards, never speed requirements: the
// machine is shared and the tests run in parallel, each herd on ports of
// its own.
//
// The tests, by subject:
//
//	exitcodes_test.go    PID 1 and exit codes (A1-A7)
//	reaping_test.go      reaping (R1-R7)
//	signals_test.go      signals (S1-S7)
//	shutdown_test.go     shutdown (D1-D6)
//	lifecycle_test.go    rolling restart, resizing, draining under load (C7, C8, D7, D8)
//	cpus_test.go         the CPU budget in a cgroup and under runc (C8, P2)
//	listenfds_test.go    herd owning the port: LISTEN_FDS, crashes, watchdog (C3-C6, C10)
//	nodecluster_test.go  herd as Node's cluster primary (docs/protocol.md §12; C2, C3, C5, C9, C11)
//	nodefaults_test.go   faults with real Node apps
//	bind_test.go         on-demand binds by unprivileged workers
//	chaos_test.go        kills, stops and signals under load
//	health_test.go       the probe server (H1-H3)
//	config_test.go       configuration as the binary reads it
//	terminal_test.go     herd on a terminal
//
// The helpers, by concept:
//
//	main_test.go       TestMain, building herd, requirements (root, tools)
//	herd_test.go       starting herd (spec, herdRun), its end, its logs
//	logs_test.go       collecting output lines; herd's JSON log records
//	helpers_test.go    the re-executed helper processes (pid1, sigecho, ...)
//	procfs_test.go     processes, fds and sockets as /proc shows them
//	ports_test.go      free ports; listening sockets in the kernel's TCP tables
//	clients_test.go    HTTP requests, tallies and request loops
//	loadgen_test.go    the load generator
//	service_test.go    a herd serving workers on a port, with its probe server
//	probes_test.go     the probe server: probes, /status, /metrics
//	nodeapps_test.go   Node apps under herd, and the events they write
//	strace_test.go     herd's side of the Node channel, from strace
//	pyapps_test.go     the Python apps (socket activation, sd_notify)
//	cgroups_test.go    cgroup v1 cpu directories and herd's CPU budget
//	websocket_test.go  a minimal WebSocket client
package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// helperVar names the helper a re-executed test binary is to be.
const helperVar = "HERD_TEST_HELPER"

// helperFailed is the exit code of a helper that could not set itself up;
// no case expects it from herd.
const helperFailed = 250

var (
	testBin string // this test binary, re-executed as helpers

	buildOnce sync.Once
	buildDir  string
	herdBin   string
	buildErr  error
)

// TestMain runs a helper process when HERD_TEST_HELPER names one, and the
// tests otherwise.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperVar); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	var err error
	if testBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance: cannot find test binary:", err)
		os.Exit(2)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// herdPackage is herd's main package, built from the module root.
const herdPackage = "github.com/herd-sh/herd"

// moduleRoot is the directory of herd's go.mod: the nearest one above the
// test's working directory (the package directory, under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module "+herdPackage+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", herdPackage)
		}
		dir = parent
	}
}

// herdPath builds herd once (go build -o <tmp>/herd, from the module root)
// and returns its path. HERD_ACCEPTANCE_BINARY names a prebuilt binary to
// test instead (a release build, or a deliberately broken one to see the
// tests fail).
func herdPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("HERD_ACCEPTANCE_BINARY"); bin != "" {
			herdBin, buildErr = filepath.Abs(bin)
			return
		}
		dir, err := os.MkdirTemp("", "herd-acceptance-")
		if err != nil {
			buildErr = err
			return
		}
		// World-readable so D5's unprivileged herd can execute the binary.
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(dir, "herd")
		build := exec.Command("go", "build", "-o", bin, herdPackage)
		build.Dir = root
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build -o %s %s: %v\n%s", bin, herdPackage, err, out)
			return
		}
		herdBin = bin
	})
	if buildErr != nil {
		t.Fatalf("cannot build herd: %v", buildErr)
	}
	return herdBin
}

// missing fails the test under CI=true and skips it otherwise.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("requirement missing (CI=true): " + msg)
	}
	t.Skip("requirement missing: " + msg)
}

var (
	nsOnce sync.Once
	nsErr  error
)

// requireNS checks for root and for the right to create PID and mount
// namespaces (tried once by starting the pid1 helper on /bin/true).
func requireNS(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (euid %d)", os.Geteuid())
	}
	nsOnce.Do(func() {
		cmd := exec.Command(testBin, "/bin/true")
		cmd.Env = append(cleanEnv(), helperVar+"=pid1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
		out, err := cmd.CombinedOutput()
		if err != nil {
			nsErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if nsErr != nil {
		missing(t, "PID and mount namespaces: %v", nsErr)
	}
}

// requireTool needs an executable on PATH (or an absolute path) and returns
// its path.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "tool %s: %v", name, err)
	}
	return p
}

// testdataPath is the absolute path of testdata/name, which must exist.
func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}
