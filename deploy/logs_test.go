package deploy

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// logBuf collects a process's output by lines; herd's JSON log lines are
// also decoded.
type logBuf struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, string(b.partial[:i]))
		b.partial = b.partial[i+1:]
	}
	return len(p), nil
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n") + "\n" + string(b.partial)
}

// records returns herd's JSON log records whose msg starts with prefix.
func (b *logBuf) records(prefix string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range b.lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// workerPids lists the pids of herd's "worker started" records.
func (b *logBuf) workerPids() map[int]bool {
	pids := map[int]bool{}
	for _, r := range b.records("worker started") {
		if p, ok := r["pid"].(float64); ok {
			pids[int(p)] = true
		}
	}
	return pids
}

// keyValues reads "k=v k2=v2" (herd's CPU budget line) into a map.
func keyValues(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}
