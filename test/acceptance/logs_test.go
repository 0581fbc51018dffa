package acceptance

// What herd and its workers print: lines collected as they come, herd's
// JSON log records, and waiting for a line.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLine is one line of output; fields is its JSON object (nil if the line
// is not JSON, e.g. a worker's own output).
type logLine struct {
	raw    string
	fields map[string]any
}

func (l logLine) msg() string { return l.str("msg") }

// str returns a field as text ("" when absent); numbers keep their JSON text.
func (l logLine) str(key string) string {
	v, ok := l.fields[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// num returns an integer field.
func (l logLine) num(key string) (int, bool) {
	v, ok := l.fields[key]
	if !ok {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	return i, err == nil
}

// is reports whether the line is the JSON log record msg with every field in
// kv (pairs of key, value compared as text).
func (l logLine) is(msg string, kv ...any) bool {
	if l.fields == nil || l.msg() != msg {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if l.str(fmt.Sprint(kv[i])) != fmt.Sprint(kv[i+1]) {
			return false
		}
	}
	return true
}

// time is the time of a JSON log record (zero when it has none).
func (l logLine) time() time.Time {
	ts, _ := time.Parse(time.RFC3339Nano, l.str("time"))
	return ts
}

// logTime is the time of a JSON log record; a record without one fails
// the test.
func logTime(t *testing.T, l logLine) time.Time {
	t.Helper()
	ts := l.time()
	if ts.IsZero() {
		t.Fatalf("log line without a time: %s", l.raw)
	}
	return ts
}

// logDelay is the delay field of a record (a duration).
func logDelay(t *testing.T, l logLine) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(l.str("delay"))
	if err != nil {
		t.Fatalf("bad delay in %s: %v", l.raw, err)
	}
	return d
}

// lineBuf is an io.Writer that splits what is written into lines, parses
// the JSON ones, and lets tests wait for a line.
type lineBuf struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
	counts  map[string]int // JSON lines per msg
	changed chan struct{}  // closed and replaced on every new line
	closed  bool
}

func newLineBuf() *lineBuf {
	return &lineBuf{counts: map[string]int{}, changed: make(chan struct{})}
}

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.add(string(b.partial[:i]))
		b.partial = b.partial[i+1:]
		added = true
	}
	if added {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return len(p), nil
}

func (b *lineBuf) add(s string) {
	l := logLine{raw: s}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) == nil {
			l.fields = m
			b.counts[l.msg()]++
		}
	}
	b.lines = append(b.lines, l)
}

// close marks the end of output (the writer is gone).
func (b *lineBuf) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.add(string(b.partial))
		b.partial = nil
	}
	if !b.closed {
		b.closed = true
		close(b.changed)
	}
}

func (b *lineBuf) snapshot() []logLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]logLine(nil), b.lines...)
}

func (b *lineBuf) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts[msg]
}

func (b *lineBuf) text() string {
	var sb strings.Builder
	for _, l := range b.snapshot() {
		sb.WriteString(l.raw)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// find waits until a line at index >= from satisfies match and returns
// it and its index. When the output ends or guard passes first, the error
// says which, and how many lines came and the last of them.
func (b *lineBuf) find(from int, guard time.Duration, match func(logLine) bool) (logLine, int, error) {
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for i := from; i < len(b.lines); i++ {
			if match(b.lines[i]) {
				l := b.lines[i]
				b.mu.Unlock()
				return l, i, nil
			}
		}
		from = len(b.lines)
		ch, closed := b.changed, b.closed
		b.mu.Unlock()
		if closed {
			return logLine{}, -1, b.unseen("the output ended")
		}
		select {
		case <-ch:
		case <-deadline.C:
			return logLine{}, -1, b.unseen(fmt.Sprintf("not within %v", guard))
		}
	}
}

// first is the first line at index >= from that satisfies match, and its
// index, among the lines so far: it does not wait.
func (b *lineBuf) first(from int, match func(logLine) bool) (logLine, int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := max(from, 0); i < len(b.lines); i++ {
		if match(b.lines[i]) {
			return b.lines[i], i, true
		}
	}
	return logLine{}, -1, false
}

// waitCount waits until at least n JSON lines with msg were seen. When the
// output ends or guard passes first, the error says which, how many there
// were, and the last line.
func (b *lineBuf) waitCount(msg string, n int, guard time.Duration) error {
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		c, ch, closed := b.counts[msg], b.changed, b.closed
		b.mu.Unlock()
		if c >= n {
			return nil
		}
		why := ""
		if closed {
			why = "when the output ended"
		} else {
			select {
			case <-ch:
				continue
			case <-deadline.C:
				why = fmt.Sprintf("after %v", guard)
			}
		}
		return b.unseen(fmt.Sprintf("%d of %d %q records %s", b.count(msg), n, msg, why))
	}
}

// unseen is the error of a wait that gave up for the reason why: it adds
// what was seen, the number of lines and the last one.
func (b *lineBuf) unseen(why string) error {
	lines := b.snapshot()
	if len(lines) == 0 {
		return fmt.Errorf("%s; no line came", why)
	}
	last := lines[len(lines)-1].raw
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return fmt.Errorf("%s; %d lines came, the last %q", why, len(lines), last)
}

// logPids returns the pid field of each line.
func logPids(t *testing.T, lines []logLine) []int {
	t.Helper()
	var pids []int
	for _, l := range lines {
		pid, ok := l.num("pid")
		if !ok {
			t.Fatalf("log line without pid: %s", l.raw)
		}
		pids = append(pids, pid)
	}
	return pids
}

// rawLines is the text of each line.
func rawLines(lines []logLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.raw
	}
	return out
}

// nonEmptyLines returns the lines of s that are not blank.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
