package acceptance

// A small HTTP/1.1 load generator for the acceptance tests: N concurrent
// clients against a loopback address, for a duration and/or a number of
// requests, each request on a new connection or on a kept-alive one. Every
// request is recorded (start, end, outcome, the worker that answered), so a
// test can count outcomes over any window of time, e.g. "requests started
// before SIGTERM".
//
// The client speaks HTTP/1.1 over raw net.Conn rather than through
// net/http's Transport, so that nothing is retried behind the test's back
// and a failure is classified by the stage it happened in (dial, write,
// read) and its cause (refused, reset, closed, timeout, non-200).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loadKind is how one request ended.
type loadKind string

const (
	loadOK      loadKind = "ok"      // 200 and a complete body
	loadRefused loadKind = "refused" // connect: ECONNREFUSED
	loadReset   loadKind = "reset"   // ECONNRESET or EPIPE after connecting
	loadClosed  loadKind = "closed"  // the peer closed before a complete response (EOF)
	loadTimeout loadKind = "timeout" // dial, write or read deadline passed
	loadNon200  loadKind = "non200"  // a complete response with another status
	loadOther   loadKind = "other"   // anything else
)

// loadFailureKinds lists the failure kinds in report order.
var loadFailureKinds = []loadKind{loadRefused, loadReset, loadClosed, loadTimeout, loadNon200, loadOther}

// Hard bounds, whatever a config asks: the tests' traffic stays bounded.
const (
	maxLoadRequests = 500000
	maxLoadDuration = 3 * time.Minute
	maxLoadClients  = 256
)

// loadConfig describes one load run. At least one of Duration and Count
// should be set; the hard bounds above apply anyway, and Stop ends any run.
type loadConfig struct {
	Addr      string        // host:port; the host must be a loopback IP
	Path      string        // request path and query ("/" when empty)
	Clients   int           // concurrent clients (1 when 0)
	Duration  time.Duration // run this long (0: until Count or Stop)
	Count     int           // at most this many requests in all (0: no limit)
	KeepAlive bool          // reuse a connection while the server keeps it open
	Interval  time.Duration // per client, the least time between request starts (pacing)
	Timeout   time.Duration // per request, dial to last body byte (10 s when 0)
	// WorkerHeader names the response header that identifies the worker
	// ("X-Worker-Pid" when empty); "-" takes the trimmed body instead.
	WorkerHeader string
}

// loadRecord is one request.
type loadRecord struct {
	Client int
	Start  time.Time // before dialling (or before writing, on a reused connection)
	End    time.Time
	Kind   loadKind
	Stage  string // where a failure happened: dial, write, read, status
	Reused bool   // sent on a kept-alive connection
	LPort  int    // the client's local port (0 when the dial failed): the server sees it as the peer's
	Status int
	Worker string
	Err    string
}

// loadResult counts a run, or a subset of its records.
type loadResult struct {
	Start, End time.Time
	Total      int
	OK         int
	Failed     map[loadKind]int
	ByWorker   map[string]int // successful responses per worker
	Records    []loadRecord   // in end order
}

func newLoadResult() *loadResult {
	return &loadResult{Failed: map[loadKind]int{}, ByWorker: map[string]int{}}
}

func (r *loadResult) add(rec loadRecord) {
	r.Total++
	if rec.Kind == loadOK {
		r.OK++
		r.ByWorker[rec.Worker]++
	} else {
		r.Failed[rec.Kind]++
	}
	r.Records = append(r.Records, rec)
}

// Failures is the number of failed requests.
func (r *loadResult) Failures() int { return r.Total - r.OK }

// Workers lists the workers that answered, sorted.
func (r *loadResult) Workers() []string {
	ws := make([]string, 0, len(r.ByWorker))
	for w := range r.ByWorker {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	return ws
}

// Filter recounts the records keep accepts.
func (r *loadResult) Filter(keep func(loadRecord) bool) *loadResult {
	out := newLoadResult()
	out.Start, out.End = r.Start, r.End
	for _, rec := range r.Records {
		if keep(rec) {
			out.add(rec)
		}
	}
	return out
}

// mergeLoads counts the records of several results together (e.g. two load
// runs with different paths during the same test).
func mergeLoads(rs ...*loadResult) *loadResult {
	out := newLoadResult()
	for _, r := range rs {
		if out.Start.IsZero() || r.Start.Before(out.Start) {
			out.Start = r.Start
		}
		if r.End.After(out.End) {
			out.End = r.End
		}
		for _, rec := range r.Records {
			out.add(rec)
		}
	}
	sort.SliceStable(out.Records, func(i, j int) bool { return out.Records[i].End.Before(out.Records[j].End) })
	return out
}

// StartedBefore is the subset of requests that started before t.
func (r *loadResult) StartedBefore(t time.Time) *loadResult {
	return r.Filter(func(rec loadRecord) bool { return rec.Start.Before(t) })
}

// StartedFrom is the subset of requests that started at t or later.
func (r *loadResult) StartedFrom(t time.Time) *loadResult {
	return r.Filter(func(rec loadRecord) bool { return !rec.Start.Before(t) })
}

// String is a one-line summary with every failure kind and the responses
// per worker.
func (r *loadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d, ok %d, failed %d (", r.Total, r.OK, r.Failures())
	for i, k := range loadFailureKinds {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s %d", k, r.Failed[k])
	}
	b.WriteString("); by worker:")
	for _, w := range r.Workers() {
		fmt.Fprintf(&b, " %s=%d", w, r.ByWorker[w])
	}
	if !r.Start.IsZero() && r.End.After(r.Start) {
		fmt.Fprintf(&b, "; %.1fs", r.End.Sub(r.Start).Seconds())
	}
	return b.String()
}

// FailureSample describes up to n failed requests, for a test's log.
func (r *loadResult) FailureSample(n int, since time.Time) string {
	var b strings.Builder
	for _, rec := range r.Records {
		if rec.Kind == loadOK {
			continue
		}
		if n == 0 {
			b.WriteString("  ...\n")
			break
		}
		n--
		fmt.Fprintf(&b, "  client %d start %+.1fms end %+.1fms %s at %s (reused %v, status %d): %s\n",
			rec.Client, ms(rec.Start.Sub(since)), ms(rec.End.Sub(since)), rec.Kind, rec.Stage, rec.Reused, rec.Status, rec.Err)
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadRun is a load run under way.
type loadRun struct {
	cfg      loadConfig
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	issued   atomic.Int64

	mu  sync.Mutex
	res *loadResult
}

// beginLoad checks cfg and starts the clients in the background.
func beginLoad(cfg loadConfig) (*loadRun, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: address %q: %v", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("loadgen: %q is not a loopback IP address; the tests send traffic to loopback only", host)
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if !strings.HasPrefix(cfg.Path, "/") || strings.ContainsAny(cfg.Path, " \r\n") {
		return nil, fmt.Errorf("loadgen: bad path %q", cfg.Path)
	}
	cfg.Clients = min(max(cfg.Clients, 1), maxLoadClients)
	if cfg.Count <= 0 || cfg.Count > maxLoadRequests {
		cfg.Count = maxLoadRequests
	}
	if cfg.Duration <= 0 || cfg.Duration > maxLoadDuration {
		cfg.Duration = maxLoadDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.WorkerHeader == "" {
		cfg.WorkerHeader = "X-Worker-Pid"
	}
	l := &loadRun{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}), res: newLoadResult()}
	l.res.Start = time.Now()
	deadline := l.res.Start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(i, deadline)
		}()
	}
	go func() {
		wg.Wait()
		l.mu.Lock()
		l.res.End = time.Now()
		l.mu.Unlock()
		close(l.done)
	}()
	return l, nil
}

// runLoad runs cfg to its end and returns the result.
func runLoad(cfg loadConfig) (*loadResult, error) {
	l, err := beginLoad(cfg)
	if err != nil {
		return nil, err
	}
	return l.Wait(), nil
}

// Stop asks the clients to stop (requests under way finish) and waits.
func (l *loadRun) Stop() *loadResult {
	l.stopOnce.Do(func() { close(l.stop) })
	return l.Wait()
}

// Wait waits for the end of the run (Duration, Count or Stop) and returns
// its result.
func (l *loadRun) Wait() *loadResult {
	<-l.done
	return l.Result()
}

// Done is closed when the run has ended.
func (l *loadRun) Done() <-chan struct{} { return l.done }

// Result is a copy of the counts so far (the run may still be going).
func (l *loadRun) Result() *loadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := newLoadResult()
	out.Start, out.End = l.res.Start, l.res.End
	for _, rec := range l.res.Records {
		out.add(rec)
	}
	return out
}

// Progress returns the successes so far and the number of distinct workers
// that answered, without copying the records.
func (l *loadRun) Progress() (ok, failed, workers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res.OK, l.res.Failures(), len(l.res.ByWorker)
}

func (l *loadRun) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// client sends requests one after another until the run ends.
func (l *loadRun) client(id int, deadline time.Time) {
	var c *loadConn
	defer func() {
		if c != nil {
			c.conn.Close()
		}
	}()
	for {
		if l.stopped() || !time.Now().Before(deadline) {
			return
		}
		if l.issued.Add(1) > int64(l.cfg.Count) {
			return
		}
		start := time.Now()
		var rec loadRecord
		rec, c = l.request(id, c)
		l.mu.Lock()
		l.res.add(rec)
		l.mu.Unlock()
		if l.cfg.Interval > 0 {
			if wait := time.Until(start.Add(l.cfg.Interval)); wait > 0 {
				select {
				case <-l.stop:
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// loadConn is a connection a client keeps between requests.
type loadConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// request sends one request, on c when it is kept alive, and returns its
// record and the connection to use next (nil: dial a new one).
func (l *loadRun) request(id int, c *loadConn) (loadRecord, *loadConn) {
	rec := loadRecord{Client: id, Start: time.Now()}
	deadline := rec.Start.Add(l.cfg.Timeout)
	fail := func(stage string, err error) (loadRecord, *loadConn) {
		rec.End = time.Now()
		rec.Stage = stage
		rec.Kind = classify(err)
		rec.Err = err.Error()
		if c != nil {
			c.conn.Close()
		}
		return rec, nil
	}
	if c == nil {
		d := net.Dialer{Deadline: deadline}
		conn, err := d.Dial("tcp", l.cfg.Addr)
		if err != nil {
			return fail("dial", err)
		}
		c = &loadConn{conn: conn, br: bufio.NewReader(conn)}
	} else {
		rec.Reused = true
	}
	if a, ok := c.conn.LocalAddr().(*net.TCPAddr); ok {
		rec.LPort = a.Port
	}
	_ = c.conn.SetDeadline(deadline)
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: herd-acceptance-loadgen\r\n", l.cfg.Path, l.cfg.Addr)
	if !l.cfg.KeepAlive {
		req.WriteString("Connection: close\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(c.conn, req.String()); err != nil {
		return fail("write", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fail("read", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fail("read", err)
	}
	rec.End = time.Now()
	rec.Status = resp.StatusCode
	if l.cfg.WorkerHeader == "-" {
		rec.Worker = strings.TrimSpace(string(body))
	} else {
		rec.Worker = resp.Header.Get(l.cfg.WorkerHeader)
	}
	if resp.StatusCode != http.StatusOK {
		rec.Kind, rec.Stage, rec.Err = loadNon200, "status", resp.Status
	} else {
		rec.Kind = loadOK
	}
	if !l.cfg.KeepAlive || resp.Close {
		c.conn.Close()
		c = nil
	}
	return rec, c
}

// classify names the cause of a failed dial, write or read.
func classify(err error) loadKind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return loadRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return loadReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return loadClosed
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return loadTimeout
	}
	return loadOther
}

// TestLoadGeneratorCountsOutcomes runs the generator against an in-process
// server in both connection modes, and against a closed port, and checks its
// counts.
func TestLoadGeneratorCountsOutcomes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Worker-Pid", "w"+r.URL.Query().Get("w"))
		fmt.Fprintln(w, "body")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	for _, keep := range []bool{false, true} {
		mu.Lock()
		clear(conns)
		mu.Unlock()
		res, err := runLoad(loadConfig{Addr: addr, Path: "/?w=1", Clients: 4, Count: 200, KeepAlive: keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keep-alive %v: %s", keep, res)
		if res.Total != 200 || res.OK != 200 || res.ByWorker["w1"] != 200 {
			t.Errorf("keep-alive %v: %s; want 200 ok from w1", keep, res)
		}
		mu.Lock()
		n := len(conns)
		mu.Unlock()
		if keep && n > 4 {
			t.Errorf("keep-alive: %d connections for 4 clients", n)
		}
		if !keep && n != 200 {
			t.Errorf("new connection per request: %d connections for 200 requests", n)
		}
	}

	res, err := runLoad(loadConfig{Addr: addr, Path: "/?fail=1", Clients: 2, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed[loadNon200] != 10 {
		t.Errorf("503s: %s; want 10 non200", res)
	}

	// A port nobody listens on: bound but never listening, so that no
	// other test can take it in the meantime (a port closed after use may
	// be handed out again at once).
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	caddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	res, err = runLoad(loadConfig{Addr: caddr, Clients: 2, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed[loadRefused] != 10 {
		t.Errorf("closed port: %s; want 10 refused", res)
	}

	if _, err := beginLoad(loadConfig{Addr: "192.0.2.1:80", Count: 1}); err == nil {
		t.Errorf("a non-loopback address was accepted")
	}
}

// startLoad starts a load run and stops it when the test ends, whatever
// happens.
func startLoad(t *testing.T, cfg loadConfig) *loadRun {
	t.Helper()
	l, err := beginLoad(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}
