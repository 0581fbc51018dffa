package acceptance

// HTTP clients: single requests (through net/http, or on a raw connection
// that records its local port), tallies of outcomes, and request loops.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// client makes a new connection for every request (no keep-alive, no
// proxy), so every request goes through accept(2) again; a request gives
// up after timeout.
func client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
}

// get sends one GET and returns the status code and body.
func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(b), err
	}
	return resp.StatusCode, string(b), nil
}

// getCode is the status of GET url; a transport error fails the test.
func getCode(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	code, _, err := get(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code
}

// waitCode polls GET url until it answers want (the probes read a
// snapshot the supervisor publishes just after it logs); after 5 s it
// fails the test with the last answer.
func waitCode(t *testing.T, c *http.Client, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body, err := get(c, url)
		if err == nil && code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never answered %d in 5 s; the last answer: %d %q (err %v)", url, want, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// response is one request on a new connection.
type response struct {
	status     int
	body       string
	header     http.Header
	lport      int // the client's local port: the worker logs it as rport
	err        error
	start, end time.Time
}

func (r response) ok() bool { return r.err == nil && r.status == http.StatusOK }

func (r response) String() string {
	if r.err != nil {
		return fmt.Sprintf("port %d: %v", r.lport, r.err)
	}
	return fmt.Sprintf("port %d: %d %q", r.lport, r.status, r.body)
}

// request sends GET path on a new connection (Connection: close) to addr, a
// loopback host:port or a unix socket path (network "unix").
func request(network, addr, path string, timeout time.Duration) (res response) {
	res.start = time.Now()
	defer func() { res.end = time.Now() }()
	if network != "unix" {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			res.err = fmt.Errorf("not a loopback address: %q", addr)
			return res
		}
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial(network, addr)
	if err != nil {
		res.err = err
		return res
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		res.lport = a.Port
	}
	_ = c.SetDeadline(res.start.Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path); err != nil {
		res.err = err
		return res
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		res.err = err
		return res
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	res.status, res.body, res.header, res.err = resp.StatusCode, strings.TrimSpace(string(b)), resp.Header, err
	return res
}

// clientLoop is a closed-loop load: clients each send requests one after the
// other, every one on a new connection, until stopped.
type clientLoop struct {
	mu       sync.Mutex
	res      []response
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func startClientLoop(addr, path string, clients int, pause time.Duration) *clientLoop {
	l := &clientLoop{stop: make(chan struct{})}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 20000; n++ { // bounded whatever happens
				select {
				case <-l.stop:
					return
				default:
				}
				r := request("tcp", addr, path, 10*time.Second)
				l.mu.Lock()
				l.res = append(l.res, r)
				l.mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return l
}

func (l *clientLoop) snapshot() []response {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]response(nil), l.res...)
}

func (l *clientLoop) Stop() []response {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.snapshot()
}

func countResponses(rs []response) (ok int, failed []response, by map[string]int) {
	by = map[string]int{}
	for _, r := range rs {
		if r.ok() {
			ok++
			by[r.body]++
		} else {
			failed = append(failed, r)
		}
	}
	return ok, failed, by
}

// bothServe sends requests, 8 at a time, until every worker in pids
// answered (at most 400); it fails on any failed request.
func bothServe(t *testing.T, network, addr string, pids []int) map[string]int {
	t.Helper()
	want := pidSet(pids...)
	by := map[string]int{}
	for round := 0; round < 50 && len(by) < len(want); round++ {
		var wg sync.WaitGroup
		res := make([]response, 8)
		for i := range res {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = request(network, addr, "/", 5*time.Second)
			}()
		}
		wg.Wait()
		for _, r := range res {
			if !r.ok() {
				t.Fatalf("request to %s failed: %v", addr, r)
			}
			if !want[r.body] {
				t.Fatalf("response from %q, not a worker %v", r.body, pids)
			}
			by[r.body]++
		}
	}
	if len(by) < len(want) {
		t.Errorf("only %v of workers %v answered", by, pids)
	}
	return by
}

// tally counts the outcomes of requests.
type tally struct {
	mu     sync.Mutex
	ok     int
	failed int
	pids   map[string]int // successful responses per answering pid
	errs   []string       // the first few failures
	done   []tallied      // every success, in completion order
}

type tallied struct {
	at  time.Time
	pid string
}

func newTally() *tally { return &tally{pids: map[string]int{}} }

// expectAll checks that all sent requests were answered 200, each by one of
// workers.
func (tl *tally) expectAll(t *testing.T, policy string, sent int, workers map[string]bool) {
	t.Helper()
	ok, failed := tl.counts()
	t.Logf("%s: %d requests: %v", policy, sent, tl)
	if ok != sent || failed != 0 {
		t.Errorf("%d of %d requests answered 200, %d failed: %v", ok, sent, failed, tl)
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for pid := range tl.pids {
		if !workers[pid] {
			t.Errorf("a response came from pid %s, not a worker %v", pid, workers)
		}
	}
}

// bodyPid is the pid a body "pid=N ..." names.
func bodyPid(body string) string {
	f := strings.Fields(body)
	if len(f) == 0 || !strings.HasPrefix(f[0], "pid=") {
		return ""
	}
	return strings.TrimPrefix(f[0], "pid=")
}

func (tl *tally) add(code int, body string, err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if err == nil && code == http.StatusOK && bodyPid(body) != "" {
		tl.ok++
		tl.pids[bodyPid(body)]++
		tl.done = append(tl.done, tallied{time.Now(), bodyPid(body)})
		return
	}
	tl.failed++
	if len(tl.errs) < 10 {
		tl.errs = append(tl.errs, fmt.Sprintf("code %d body %q err %v", code, body, err))
	}
}

func (tl *tally) counts() (ok, failed int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.ok, tl.failed
}

// servedBetween counts successes that completed in [from, to], by pid.
func (tl *tally) servedBetween(from, to time.Time) map[string]int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	m := map[string]int{}
	for _, d := range tl.done {
		if !d.at.Before(from) && !d.at.After(to) {
			m[d.pid]++
		}
	}
	return m
}

func (tl *tally) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	pids := make([]string, 0, len(tl.pids))
	for p, n := range tl.pids {
		pids = append(pids, fmt.Sprintf("pid %s: %d", p, n))
	}
	sort.Strings(pids)
	return fmt.Sprintf("%d ok, %d failed [%s] %v", tl.ok, tl.failed, strings.Join(pids, ", "), tl.errs)
}

// burst sends n requests to url from conc goroutines, each on a new
// connection, and adds the outcomes to tl.
func burst(c *http.Client, url string, n, conc int, tl *tally) {
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				tl.add(get(c, url))
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
}

// openLoop starts one request every interval, each in its own goroutine
// (an open loop: a request that waits does not hold up the next one), at
// most limit in flight. stop ends it and waits for every request.
func openLoop(c *http.Client, url string, interval time.Duration, limit int) (tl *tally, stop func()) {
	tl = newTally()
	quit := make(chan struct{})
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			case <-quit:
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				tl.add(get(c, url))
			}()
		}
	}()
	return tl, func() {
		once.Do(func() { close(quit) })
		wg.Wait()
	}
}

func pidSet(pids ...int) map[string]bool {
	m := map[string]bool{}
	for _, p := range pids {
		m[strconv.Itoa(p)] = true
	}
	return m
}

func pidStrings(pids []int) []string {
	out := make([]string, len(pids))
	for i, p := range pids {
		out[i] = strconv.Itoa(p)
	}
	return out
}

func atoiAll(t *testing.T, ss []string) []int {
	t.Helper()
	out := make([]int, 0, len(ss))
	for _, s := range ss {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("worker id %q is not a pid", s)
		}
		out = append(out, n)
	}
	return out
}

func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := append([]int(nil), a...), append([]int(nil), b...)
	sort.Ints(x)
	sort.Ints(y)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}
