package cluster

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"testing/synctest"

	"golang.org/x/sys/unix"
)

const testMiB = 1 << 20

// memoryConfig is a 256 MiB container with the default watermarks.
func memoryConfig(workers int) Config {
	return Config{Workers: workers, Memory: Memory{Limit: 256 * testMiB, Source: "cgroup-v1", Dir: "/sys/fs/cgroup/memory/test", OOMDir: "/sys/fs/cgroup/memory/test", Version: 1,
		High: 230 * testMiB, Critical: 243 * testMiB}}
}

// Above the high watermark the largest worker is replaced gracefully (its
// replacement listens first), one slot at a time.
func TestMachineMemoryWatermark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := boot(t, memoryConfig(2))
		a, b := m.f.live()[0], m.f.live()[1]
		m.ready(a.pid)
		m.ready(b.pid)
		m.f.setMemory(a.pid, 5*testMiB, 20*testMiB) // their size as they start serving
		m.f.setMemory(b.pid, 5*testMiB, 20*testMiB)
		m.after(memoryEvery)
		m.f.setMemory(a.pid, 90*testMiB, 150*testMiB)
		m.f.setMemory(b.pid, 140*testMiB, 235*testMiB) // b is the largest; the set is above 230 MiB
		m.after(memoryEvery)
		live := m.f.live()
		if len(live) != 3 {
			t.Fatalf("%d processes after crossing the watermark, want a replacement started", len(live))
		}
		repl := live[2]
		m.after(5 * memoryEvery) // still above: no second replacement meanwhile
		if n := len(m.f.all()); n != 3 {
			t.Errorf("%d processes started while one slot was being replaced, want 3", n)
		}
		if sig := m.f.signalsOf(b.pid); len(sig) != 0 {
			t.Errorf("the largest worker got %v before its replacement listened", sig)
		}
		m.ready(repl.pid)
		if sig := m.f.signalsOf(b.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM}) {
			t.Errorf("the largest worker got %v once its replacement listened, want SIGTERM", sig)
		}
		if sig := m.f.signalsOf(a.pid); len(sig) != 0 {
			t.Errorf("the smaller worker got %v", sig)
		}
		snap := m.s.Snapshot()
		if snap.Recycles[RecycleMemoryWatermark] != 1 || snap.Memory.WorkingSet != 235*testMiB || snap.Memory.Limit != 256*testMiB {
			t.Errorf("snapshot recycles %v memory %+v", snap.Recycles, snap.Memory)
		}
		m.end()
	})
}

// Above the critical watermark, or above the high one with no room for a
// replacement beside the largest worker, the largest is stopped first and
// a new one starts in its slot once it has gone; nothing else is stopped
// meanwhile.
func TestMachineMemoryStopFirst(t *testing.T) {
	for _, tc := range []struct {
		name     string
		base, ws int64 // a worker's size as it starts serving; the working set
		reason   string
	}{
		{"critical", 5 * testMiB, 250 * testMiB, RecycleMemoryCritical},
		{"high, no room for a replacement", 30 * testMiB, 235 * testMiB, RecycleMemoryWatermark},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := boot(t, memoryConfig(2))
				m.f.ignore[unix.SIGTERM] = true // it takes its time to go
				a, b := m.f.live()[0], m.f.live()[1]
				m.ready(a.pid)
				m.ready(b.pid)
				m.f.setMemory(a.pid, tc.base, 20*testMiB)
				m.f.setMemory(b.pid, tc.base, 20*testMiB)
				m.after(memoryEvery)
				m.f.setMemory(a.pid, 150*testMiB, tc.ws)
				m.f.setMemory(b.pid, 90*testMiB, tc.ws)
				m.after(memoryEvery)
				if sig := m.f.signalsOf(a.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM}) {
					t.Errorf("the largest worker got %v, want SIGTERM at once", sig)
				}
				m.f.setMemory(a.pid, 150*testMiB, 236*testMiB) // below the critical mark
				m.after(4 * memoryEvery)
				if n := len(m.f.all()); n != 2 {
					t.Errorf("%d processes started while the stopped worker lingers, want 2", n)
				}
				if sig := m.f.signalsOf(b.pid); len(sig) != 0 {
					t.Errorf("the other worker got %v while the first had not gone", sig)
				}
				// Still there when the container reaches the critical mark:
				// killed now.
				m.f.setMemory(a.pid, 150*testMiB, 250*testMiB)
				m.after(memoryEvery)
				if sig := m.f.signalsOf(a.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM, unix.SIGKILL}) {
					t.Errorf("the stopping worker got %v at the critical mark, want SIGTERM then SIGKILL", sig)
				}
				m.f.setMemory(b.pid, 90*testMiB, 120*testMiB) // its memory given back
				m.after(memoryEvery)
				if n := len(m.f.all()); n != 3 {
					t.Errorf("%d processes started once it had gone, want a new one in its slot", n)
				}
				if got := m.s.Snapshot().Recycles[tc.reason]; got != 1 {
					t.Errorf("%d recycles %s, want 1", got, tc.reason)
				}
				m.f.ignore[unix.SIGTERM] = false
				m.end()
			})
		})
	}
}

// A worker above HERD_WORKER_MAX_MEMORY is replaced gracefully.
func TestMachineWorkerMaxMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := boot(t, Config{Workers: 2, Memory: Memory{WorkerMax: 100 * testMiB}})
		a, b := m.f.live()[0], m.f.live()[1]
		m.ready(a.pid)
		m.ready(b.pid)
		m.f.setMemory(a.pid, 99*testMiB, 0)
		m.f.setMemory(b.pid, 101*testMiB, 0)
		m.after(memoryEvery)
		live := m.f.live()
		if len(live) != 3 {
			t.Fatalf("%d processes, want a replacement for the worker above the maximum", len(live))
		}
		m.ready(live[2].pid)
		if sig := m.f.signalsOf(b.pid); !slices.Equal(sig, []unix.Signal{unix.SIGTERM}) {
			t.Errorf("the worker above the maximum got %v, want SIGTERM", sig)
		}
		if sig := m.f.signalsOf(a.pid); len(sig) != 0 {
			t.Errorf("the worker below it got %v", sig)
		}
		if got := m.s.Snapshot().Recycles[RecycleMaxMemory]; got != 1 {
			t.Errorf("%d max-memory recycles, want 1", got)
		}
		m.end()
	})
}

// A worker ended by a SIGKILL herd did not send, while the cgroup counted
// an OOM kill, is reported as killed by the OOM killer, with the last size
// measured while it still had memory; herd's own SIGKILL is not.
func TestMachineOOMKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := boot(t, memoryConfig(1))
		p := m.only()
		m.ready(p.pid)
		m.f.setMemory(p.pid, 200*testMiB, 220*testMiB) // below the watermarks
		m.after(memoryEvery)
		// The OOM killer has taken its address space: a reading between
		// that and its exit sees no memory, which is not its size.
		m.f.setMemory(p.pid, 0, 20*testMiB)
		m.after(memoryEvery)
		m.f.mu.Lock()
		m.f.ooms++
		m.f.mu.Unlock()
		m.f.end(p.pid, unix.WaitStatus(unix.SIGKILL))
		synctest.Wait()
		snap := m.s.Snapshot()
		e := snap.Slots[0].LastExit
		if e == nil || !e.OOM || e.Memory != 200*testMiB || snap.Exits.OOM != 1 || snap.Exits.Signal != 0 {
			t.Fatalf("last exit %+v, exits %+v; want an OOM kill at 200 MiB", e, snap.Exits)
		}
		if !strings.Contains(snap.Summary(4), "1 by the OOM killer") || !strings.Contains(snap.Summary(4), "killed by the OOM killer at 200MiB") {
			t.Errorf("summary:\n%s", snap.Summary(4))
		}
		// Herd's own SIGKILL, the counter unchanged: a signal, not the OOM killer.
		q := m.restarted(0)
		m.ready(q.pid)
		m.f.ignore[unix.SIGTERM] = true
		m.sigs <- unix.SIGTERM
		m.sigs <- unix.SIGTERM // skips the wait: SIGKILL
		<-m.result
		if snap := m.s.Snapshot(); snap.Exits.OOM != 1 {
			t.Errorf("exits %+v after herd's SIGKILL, want still 1 OOM kill", snap.Exits)
		}
	})
}

// memoryHints: the share, Node's old space and Go's soft limit, and what
// the user set is left alone.
func TestMemoryHints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		share int64
		want  []string
	}{
		{"plain", []string{"A=1"}, 128 * testMiB,
			[]string{"A=1", "NODE_OPTIONS=--max-old-space-size=64", "GOMEMLIMIT=115MiB", "HERD_WORKER_MEMORY=134217728"}},
		{"large share", nil, 1024 * testMiB,
			[]string{"NODE_OPTIONS=--max-old-space-size=512", "GOMEMLIMIT=921MiB", "HERD_WORKER_MEMORY=1073741824"}},
		{"small share: the floor", nil, 48 * testMiB,
			[]string{"NODE_OPTIONS=--max-old-space-size=32", "GOMEMLIMIT=43MiB", "HERD_WORKER_MEMORY=50331648"}},
		{"NODE_OPTIONS kept, flag appended", []string{"NODE_OPTIONS=--enable-source-maps"}, 128 * testMiB,
			[]string{"NODE_OPTIONS=--enable-source-maps --max-old-space-size=64", "GOMEMLIMIT=115MiB", "HERD_WORKER_MEMORY=134217728"}},
		{"the user's heap size left alone", []string{"NODE_OPTIONS=--max-old-space-size=300", "GOMEMLIMIT=1GiB"}, 128 * testMiB,
			[]string{"NODE_OPTIONS=--max-old-space-size=300", "GOMEMLIMIT=1GiB", "HERD_WORKER_MEMORY=134217728"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := memoryHints(slices.Clone(tc.env), tc.share); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// tree follows the children files from a worker down.
func TestTree(t *testing.T) {
	proc := fstest.MapFS{
		"10/task/10/children": {Data: []byte("11 12 ")},
		"11/task/11/children": {Data: []byte("13")},
		"12/task/12/children": {Data: []byte("")},
	}
	if got := tree(proc, 10); !slices.Equal(got, []int{10, 11, 12, 13}) {
		t.Errorf("tree = %v, want 10 11 12 13", got)
	}
	if got := tree(proc, 99); !slices.Equal(got, []int{99}) {
		t.Errorf("tree of an unknown pid = %v", got)
	}
}
