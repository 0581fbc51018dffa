package memory

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func reading(name string) fs.FS { return os.DirFS(filepath.Join("testdata", "readings", name)) }

const (
	podV2 = "/sys/fs/cgroup/kubepods.slice/pod"
	podV1 = "/sys/fs/cgroup/memory/kubepods/pod1"
)

func TestReadUsage(t *testing.T) {
	for _, c := range []struct {
		fixture string
		dir     string
		version int
		want    Usage
		err     string // in the error; "" for none
	}{
		{"U01-v2", podV2, 2, Usage{Usage: 100 << 20, InactiveFile: 20 << 20, WorkingSet: 80 << 20}, ""},
		{"U02-v1", podV1, 1, Usage{Usage: 150 << 20, InactiveFile: 40 << 20, WorkingSet: 110 << 20}, ""},
		{"U03-inactive-above-usage", podV2, 2, Usage{Usage: 1 << 20, InactiveFile: 2 << 20, WorkingSet: 0}, ""},
		{"U04-v1-old-kernel", podV1, 1, Usage{Usage: 4096, WorkingSet: 4096}, ""},
		{"U05-malformed", podV2, 2, Usage{}, `memory.current: "abc" is not a number of bytes`},
		{"U06-no-stat", podV2, 2, Usage{}, "memory.stat"},
		{"U01-v2", podV2, 1, Usage{}, "memory.usage_in_bytes"},
		{"U01-v2", podV2, 3, Usage{}, "cgroup version 3: want 1 or 2"},
		{"U01-v2", "/sys/fs/cgroup/gone", 2, Usage{}, "no such file"},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			got, err := ReadUsage(reading(c.fixture), c.dir, c.version)
			if (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			if got != c.want {
				t.Errorf("ReadUsage = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReadOOMKills(t *testing.T) {
	for _, c := range []struct {
		fixture string
		dir     string
		version int
		n       uint64
		ok      bool
		err     string
	}{
		{"U01-v2", podV2, 2, 3, true, ""},
		{"U02-v1", podV1, 1, 2, true, ""},
		{"U03-inactive-above-usage", podV2, 2, 0, true, ""},
		{"U04-v1-old-kernel", podV1, 1, 0, false, ""},
		{"U05-malformed", podV2, 2, 0, false, ""},
		{"U06-no-stat", podV2, 2, 0, false, "memory.events"},
		{"U01-v2", podV2, 0, 0, false, "want 1 or 2"},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			n, ok, err := ReadOOMKills(reading(c.fixture), c.dir, c.version)
			if (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			if n != c.n || ok != c.ok {
				t.Errorf("ReadOOMKills = %d, %v; want %d, %v", n, ok, c.n, c.ok)
			}
		})
	}
}

func TestProcessSize(t *testing.T) {
	page := int64(os.Getpagesize())
	for _, c := range []struct {
		fixture string
		pid     int
		want    int64
		err     string
	}{
		{"P01-smaps-rollup", 1234, 422 << 10, ""},
		{"P02-statm-without-smaps-rollup", 1234, 437 * page, ""},
		{"P03-exiting", 1234, 0, ""},
		{"P04-malformed-statm", 1234, 0, "want the resident pages second"},
		{"P01-smaps-rollup", 99, 0, "no such file"},
		{"P01-smaps-rollup", 0, 0, "must be positive"},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			got, err := ProcessSize(reading(c.fixture), c.pid)
			if (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			if got != c.want {
				t.Errorf("ProcessSize = %d, want %d", got, c.want)
			}
		})
	}
}

// TestProcessSizeDenied: a smaps_rollup that cannot be read (another
// user's process) falls back to statm.
func TestProcessSizeDenied(t *testing.T) {
	fsys := denyFS{reading("P01-smaps-rollup"), []string{"proc/1234/smaps_rollup"}}
	got, err := ProcessSize(fsys, 1234)
	if err != nil || got != 437*int64(os.Getpagesize()) {
		t.Errorf("ProcessSize = %d, %v; want statm's 437 pages", got, err)
	}
}

// TestProcessSizeHere: this process has a size, and PSS is at most RSS.
func TestProcessSizeHere(t *testing.T) {
	pss, err := ProcessSize(os.DirFS("/"), os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	rss, err := ProcessSize(denyFS{os.DirFS("/"), []string{"proc/" + strconv.Itoa(os.Getpid()) + "/smaps_rollup"}}, os.Getpid())
	if err != nil || pss <= 0 || rss <= 0 || pss > rss*2 {
		t.Errorf("PSS %d, RSS %d, %v", pss, rss, err)
	}
}

func TestField(t *testing.T) {
	text := "Pss_Dirty:  1 kB\nPss:   422 kB\ninactive_file 7\ntotal_inactive_file 9\nbad x\nempty \n"
	for _, c := range []struct {
		key string
		v   int64
		ok  bool
	}{
		{"Pss:", 422, true}, {"inactive_file", 7, true}, {"total_inactive_file", 9, true},
		{"Pss", 0, false}, {"bad", 0, false}, {"empty", 0, false}, {"missing", 0, false}, {"inactive", 0, false},
	} {
		if v, ok := field(text, c.key); v != c.v || ok != c.ok {
			t.Errorf("field(%q) = %d, %v; want %d, %v", c.key, v, ok, c.v, c.ok)
		}
	}
}

// denyFS refuses to open the named files, as for another user's process.
type denyFS struct {
	fs.FS
	deny []string
}

func (d denyFS) Open(name string) (fs.File, error) {
	for _, n := range d.deny {
		if name == n {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
	}
	return d.FS.Open(name)
}

func FuzzReaders(f *testing.F) {
	f.Add("104857600\n", "inactive_file 20971520\n", "oom_kill 3\n", "Pss: 422 kB\n", "765 437 409 5 0 123 0\n")
	f.Add("abc", "inactive_file -1\n", "oom_kill -2\n", "Pss: -1 kB\n", "1 -5\n")
	f.Add("9223372036854775807", "total_inactive_file 9223372036854775807\n", "oom_kill\n", "", "0 9223372036854775807")
	f.Fuzz(func(t *testing.T, usage, stat, events, rollup, statm string) {
		fsys := fstest.MapFS{
			"c/memory.current": {Data: []byte(usage)}, "c/memory.usage_in_bytes": {Data: []byte(usage)},
			"c/memory.stat": {Data: []byte(stat)}, "c/memory.events": {Data: []byte(events)},
			"c/memory.oom_control": {Data: []byte(events)},
			"proc/1/smaps_rollup":  {Data: []byte(rollup)}, "proc/1/statm": {Data: []byte(statm)},
		}
		for _, v := range []int{1, 2} {
			u, err := ReadUsage(fsys, "/c", v)
			if err == nil && (u.Usage < 0 || u.InactiveFile < 0 || u.WorkingSet < 0 || u.WorkingSet > u.Usage) {
				t.Fatalf("usage %+v", u)
			}
			if _, ok, err := ReadOOMKills(fsys, "/c", v); err != nil && ok {
				t.Fatalf("ok with %v", err)
			}
		}
		if n, err := ProcessSize(fsys, 1); err == nil && n < 0 {
			t.Fatalf("size %d", n)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) && n != 0 {
			t.Fatalf("size %d with %v", n, err)
		}
	})
}
