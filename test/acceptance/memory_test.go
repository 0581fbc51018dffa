package acceptance

// Memory-aware workers, in a real cgroup v1 memory controller: the heap
// hint that keeps each Node worker inside its share, the recycling that
// keeps a leaking server from being OOM-killed, and the OOM kill herd
// reports when recycling is off.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// memCgroup is a cgroup v1 memory directory made for one test.
type memCgroup struct {
	t   *testing.T
	dir string
}

// newMemCgroup creates a memory cgroup limited to limit bytes (swap too,
// where the kernel accounts it, so the limit is the limit) and removes it
// at the end, after killing whatever is left in it.
func newMemCgroup(t *testing.T, name string, limit int64) *memCgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root to create a cgroup (euid %d)", os.Geteuid())
	}
	warmOnce.Do(func() { warmErr = warmPageCache(herdPath(t)) })
	if warmErr != nil {
		t.Fatalf("reading node's and herd's files into the page cache: %v", warmErr)
	}
	mnt, err := v1Mount("memory")
	if err != nil {
		missing(t, "cgroup v1 memory controller: %v", err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("herd-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		missing(t, "create cgroup %s: %v", dir, err)
	}
	cg := &memCgroup{t: t, dir: dir}
	t.Cleanup(cg.remove)
	cg.write("memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		cg.write("memory.memsw.limit_in_bytes", strconv.FormatInt(limit, 10))
	}
	cg.write("memory.swappiness", "0")
	return cg
}

// The kernel charges a page of the page cache to the cgroup that first
// reads it. A test cgroup charged with node's own text (its binary is
// about 100 MB) does not run out of memory when the leak reaches the
// limit: it reclaims those pages and reads them back again, and can
// thrash like that for a minute or more before the OOM killer acts. So
// before the first memory cgroup exists, every file a Node process maps
// (its binary, libraries, ICU data) and herd's binary are read from the
// tests' own cgroup, which the pages stay charged to.
var (
	warmOnce sync.Once
	warmErr  error
)

func warmPageCache(herd string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return err
	}
	out, err := exec.Command(node, "-e", "process.stdout.write(require('fs').readFileSync('/proc/self/maps', 'utf8'))").Output()
	if err != nil {
		return fmt.Errorf("node's /proc/self/maps: %v", err)
	}
	files := map[string]bool{herd: true}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasPrefix(f[5], "/") {
			files[f[5]] = true
		}
	}
	if len(files) < 2 {
		return fmt.Errorf("no file in node's /proc/self/maps:\n%s", out)
	}
	for name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue // a file mapped then removed
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	return nil
}

func (cg *memCgroup) write(file, v string) {
	cg.t.Helper()
	if err := os.WriteFile(filepath.Join(cg.dir, file), []byte(v), 0); err != nil {
		cg.t.Fatalf("write %s to %s/%s: %v", v, cg.dir, file, err)
	}
}

// oomKills is the cgroup's count of processes the OOM killer ended.
func (cg *memCgroup) oomKills() int {
	b, err := os.ReadFile(filepath.Join(cg.dir, "memory.oom_control"))
	if err != nil {
		cg.t.Fatalf("memory.oom_control: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	cg.t.Fatalf("memory.oom_control has no oom_kill line:\n%s", b)
	return 0
}

func (cg *memCgroup) remove() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if err := os.Remove(cg.dir); err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			cg.t.Errorf("cannot remove cgroup %s", cg.dir)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLeaky runs herd in cg with workers running node_leak.js on a free
// port.
func startLeaky(t *testing.T, cg *memCgroup, workers int, env ...string) (*herdRun, string) {
	t.Helper()
	node := requireTool(t, "node")
	port := freePort(t)
	e := append([]string{"HERD_WORKERS=" + strconv.Itoa(workers), "HERD_SCHED_POLICY=rr"}, env...)
	s := spec{env: e, args: cmdArgs(node, testdataPath(t, "node_leak.js"), strconv.Itoa(port))}
	if cg != nil {
		s.cgroup = cg.dir
	}
	r := start(t, s)
	r.waitListening(workers)
	return r, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// steadyLoad sends a request on a new connection every interval until
// stop, each its own goroutine, and returns every response.
func steadyLoad(addr string, interval time.Duration, stop <-chan struct{}) []response {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []response
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			wg.Wait()
			return out
		case <-t.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := request("tcp", addr, "/", 10*time.Second)
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
}

// loadFor runs steadyLoad for d, or until herd exits.
func loadFor(r *herdRun, addr string, interval, d time.Duration) []response {
	stop := make(chan struct{})
	go func() {
		select {
		case <-time.After(d):
		case <-r.done:
		}
		close(stop)
	}()
	return steadyLoad(addr, interval, stop)
}

// heapOf asks a worker what it was given (node_leak.js /heap).
type heapReport struct {
	Pid           int    `json:"pid"`
	HeapSizeLimit int64  `json:"heap_size_limit"`
	NodeOptions   string `json:"node_options"`
	WorkerMemory  string `json:"worker_memory"`
}

func heapReports(t *testing.T, addr string, workers int) map[int]heapReport {
	t.Helper()
	out := map[int]heapReport{}
	for i := 0; i < 20*workers && len(out) < workers; i++ {
		res := request("tcp", addr, "/heap", 10*time.Second)
		if !res.ok() {
			t.Fatalf("/heap: %v", res)
		}
		var h heapReport
		if err := json.Unmarshal([]byte(res.body), &h); err != nil {
			t.Fatalf("/heap %q: %v", res.body, err)
		}
		out[h.Pid] = h
	}
	if len(out) < workers {
		t.Fatalf("%d workers answered /heap, want %d", len(out), workers)
	}
	return out
}

// At debug level every memory reading is logged: the container's working
// set and each slot's worker size, keyed by slot (never by pid).
func TestMemoryReadingsLogged(t *testing.T) {
	t.Parallel()
	cg := newMemCgroup(t, "readings", 512*mib)
	r, _ := startLeaky(t, cg, 2, "HERD_LOG_LEVEL=debug")
	line, _, err := r.stderr.find(0, 10*time.Second, func(l logLine) bool {
		_, ok0 := l.num("slot0")
		_, ok1 := l.num("slot1")
		return l.is("memory reading") && ok0 && ok1
	})
	if err != nil {
		t.Fatalf("no memory reading with both slots logged: %v", err)
	}
	ws, _ := line.num("working_set")
	s0, _ := line.num("slot0")
	s1, _ := line.num("slot1")
	if ws <= 0 || s0 <= 0 || s1 <= 0 {
		t.Errorf("reading %s: want a working set and two worker sizes, each above 0", line.raw)
	}
	if line.str("limit") != strconv.Itoa(512*mib) || line.str("pid") != "" {
		t.Errorf("reading %s: want limit %d and no pid", line.raw, 512*mib)
	}
	t.Logf("%s", line.raw)
	if code := r.terminate(); code != 0 {
		t.Errorf("herd exited %d", code)
	}
}

// In a 512 MiB container with 4 workers each Node worker's heap fits its
// 128 MiB share; a heap size the user set in NODE_OPTIONS is left alone.
func TestNodeHeapFitsWorkerShare(t *testing.T) {
	t.Parallel()
	t.Run("hinted", func(t *testing.T) {
		cg := newMemCgroup(t, "heap", 512*mib)
		r, addr := startLeaky(t, cg, 4)
		for pid, h := range heapReports(t, addr, 4) {
			if h.HeapSizeLimit > 128*mib || h.HeapSizeLimit < 32*mib {
				t.Errorf("worker %d: heap_size_limit %d MiB, want within its 128 MiB share", pid, h.HeapSizeLimit/mib)
			}
			if h.WorkerMemory != strconv.Itoa(128*mib) || !strings.Contains(h.NodeOptions, "--max-old-space-size=") {
				t.Errorf("worker %d: HERD_WORKER_MEMORY %q NODE_OPTIONS %q", pid, h.WorkerMemory, h.NodeOptions)
			}
			t.Logf("worker %d: heap_size_limit %d MiB, NODE_OPTIONS %q", pid, h.HeapSizeLimit/mib, h.NodeOptions)
		}
		if code := r.terminate(); code != 0 {
			t.Errorf("herd exited %d", code)
		}
	})
	t.Run("without hints, Node sizes itself to the container", func(t *testing.T) {
		cg := newMemCgroup(t, "heapnone", 512*mib)
		r, addr := startLeaky(t, cg, 4, "HERD_WORKER_HINTS=false")
		for pid, h := range heapReports(t, addr, 4) {
			if h.HeapSizeLimit <= 128*mib {
				t.Errorf("worker %d: heap_size_limit %d MiB without hints; the control expects Node's own, above the share", pid, h.HeapSizeLimit/mib)
			}
		}
		r.terminate()
	})
	t.Run("the user's own", func(t *testing.T) {
		cg := newMemCgroup(t, "heapown", 512*mib)
		r, addr := startLeaky(t, cg, 4, "NODE_OPTIONS=--max-old-space-size=300")
		for pid, h := range heapReports(t, addr, 4) {
			if h.NodeOptions != "--max-old-space-size=300" || h.HeapSizeLimit < 300*mib {
				t.Errorf("worker %d: NODE_OPTIONS %q heap_size_limit %d MiB, want the user's 300 MiB left alone", pid, h.NodeOptions, h.HeapSizeLimit/mib)
			}
		}
		r.terminate()
	})
}

// A server that keeps 2 MB per request, 2 workers, a 256 MiB container,
// a steady load: without recycling the kernel's OOM killer ends a worker,
// and herd says so; with the defaults herd replaces the largest worker at
// the high watermark, nothing is OOM-killed, and the requests are served.
func TestLeakingServerRecycledBeforeOOM(t *testing.T) {
	t.Parallel()
	t.Run("no recycling: the OOM killer", func(t *testing.T) {
		cg := newMemCgroup(t, "oom", 256*mib)
		r, addr := startLeaky(t, cg, 2, "HERD_MEMORY_HIGH=off", "HERD_MEMORY_CRITICAL=off", "HERD_HEALTH_ADDR=127.0.0.1:0")
		stop := make(chan struct{})
		done := make(chan []response)
		go func() { done <- steadyLoad(addr, 50*time.Millisecond, stop) }()
		oom, _, err := r.stderr.find(0, time.Minute, func(l logLine) bool { return l.is("worker killed by the kernel's OOM killer") })
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("no OOM kill reported: %v (the cgroup counted %d)", err, cg.oomKills())
		}
		if cg.oomKills() < 1 {
			t.Errorf("herd reported an OOM kill the cgroup did not count: %s", oom.raw)
		}
		if n, ok := oom.num("memory"); !ok || n <= 0 {
			t.Errorf("the OOM kill is reported without the worker's last measured size: %s", oom.raw)
		}
		if oom.str("index") == "" {
			t.Errorf("the OOM kill is reported without the worker's slot: %s", oom.raw)
		}
		t.Logf("%s", oom.raw)
		r.terminate()
	})
	t.Run("defaults", func(t *testing.T) {
		cg := newMemCgroup(t, "recycle", 256*mib)
		r, addr := startLeaky(t, cg, 2)
		results := loadFor(r, addr, 50*time.Millisecond, 60*time.Second)
		ok, failed, _ := countResponses(results)
		recycles := r.logs("worker recycled")
		kills := cg.oomKills()
		t.Logf("%d requests, %d answered; %d recycles; %d OOM kills", len(results), ok, len(recycles), kills)
		if kills != 0 || r.stderr.count("worker killed by the kernel's OOM killer") != 0 {
			t.Errorf("%d OOM kills in the cgroup; want none", kills)
		}
		if len(results) < 1000 || float64(ok) < 0.999*float64(len(results)) {
			t.Errorf("%d of %d requests answered, want at least 99.9%%; failures e.g. %v", ok, len(results), failed[:min(5, len(failed))])
		}
		if len(recycles) == 0 {
			t.Fatal("no worker was recycled")
		}
		for _, l := range recycles {
			if l.str("reason") != "memory-watermark" {
				t.Errorf("recycle %s, want reason memory-watermark", l.raw)
			}
		}
		if code := r.terminate(); code != 0 {
			t.Errorf("herd exited %d", code)
		}
	})
}

// HERD_WORKER_MAX_MEMORY and HERD_MAX_REQUESTS each replace a worker once
// it crosses them, one slot at a time, and no request fails under load.
func TestWorkerRecycledAtItsLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		env          []string
	}{
		{"max memory", "max-memory", []string{"HERD_WORKER_MAX_MEMORY=100Mi"}},
		{"max requests", "max-requests", []string{"HERD_MAX_REQUESTS=40", "HERD_MAX_REQUESTS_JITTER=10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, addr := startLeaky(t, nil, 2, tc.env...)
			results := loadFor(r, addr, 40*time.Millisecond, 15*time.Second)
			ok, failed, _ := countResponses(results)
			if len(failed) > 0 {
				t.Errorf("%d of %d requests failed, e.g. %v", len(failed), len(results), failed[:min(5, len(failed))])
			}
			recycles := r.logs("worker recycled")
			if len(recycles) < 2 {
				t.Fatalf("%d recycles in 15 s of load, want several", len(recycles))
			}
			for _, l := range recycles {
				checkCrossed(t, l, tc.reason)
			}
			checkOneAtATime(t, r)
			t.Logf("%d requests, %d answered, %d recycles", len(results), ok, len(recycles))
			r.terminate()
		})
	}
}

// checkCrossed: the recycle names its reason, and the figure that decided
// it had just crossed its limit (a reading's worth of growth at most for
// memory; exactly the worker's limit for requests).
func checkCrossed(t *testing.T, l logLine, reason string) {
	t.Helper()
	if l.str("reason") != reason {
		t.Errorf("recycle %s, want reason %s", l.raw, reason)
		return
	}
	switch reason {
	case "max-memory":
		mem, _ := l.num("memory")
		if max, _ := l.num("max"); mem <= max || mem > max+64*mib {
			t.Errorf("recycled at %d bytes with a maximum of %d: %s", mem, max, l.raw)
		}
	case "max-requests":
		n, _ := l.num("requests")
		if max, _ := l.num("max"); n != max || max < 40 || max > 50 {
			t.Errorf("recycled after %d requests, its limit %d (40 plus up to 10): %s", n, max, l.raw)
		}
	}
}

// checkOneAtATime: a recycle starts only once the previous one is done.
func checkOneAtATime(t *testing.T, r *herdRun) {
	t.Helper()
	busy := false
	for _, l := range r.stderr.snapshot() {
		switch {
		case l.is("worker recycled"):
			if busy {
				t.Errorf("a recycle started while another was under way: %s", l.raw)
			}
			busy = true
		case l.is("worker replaced"):
			busy = false
		}
	}
}
