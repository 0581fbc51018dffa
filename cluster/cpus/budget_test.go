package cpus

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// mountinfo lines for the tests that build a file system in memory; the
// parser's own tests are in package cgroup.
const (
	lineV2      = "1399 1398 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot"
	lineV1Mixed = "606 603 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:16 - cgroup cgroup rw,cpu,cpuacct"
	lineOutside = "1399 1398 0:30 /../../.. /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw"
)

func fixture(name string) fs.FS { return os.DirFS("testdata/" + name) }

func mustCompute(t *testing.T, in Input) Result {
	t.Helper()
	r, err := Compute(in)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	return r
}

func TestClamps(t *testing.T) {
	for _, c := range []struct {
		name     string
		fixture  string
		affinity int
		rounding Rounding
		min, max int
		rounded  int
		want     int
	}{
		{"no clamp", "T04-two-and-a-half", 8, Nearest, 0, 0, 3, 3},
		{"min raises", "T04-two-and-a-half", 8, Nearest, 5, 0, 3, 5},
		{"max lowers", "T04-two-and-a-half", 8, Nearest, 0, 2, 3, 2},
		{"inside both", "T04-two-and-a-half", 8, Nearest, 1, 3, 3, 3},
		{"min equals max", "T04-two-and-a-half", 8, Nearest, 4, 4, 3, 4},
		{"min may exceed affinity", "T11-exclusive-cpuset", 4, Nearest, 6, 0, 4, 6},
		{"at least one before the clamps", "T02-half-cpu", 8, Floor, 0, 0, 0, 1},
		{"max of one", "T01-max-no-request", 8, Nearest, 0, 1, 8, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompute(t, Input{FS: fixture(c.fixture), Affinity: c.affinity, Rounding: c.rounding, Min: c.min, Max: c.max})
			if r.Rounded != c.rounded || r.Workers != c.want {
				t.Errorf("rounded %d, workers %d; want %d, %d", r.Rounded, r.Workers, c.rounded, c.want)
			}
			if r.Min != c.min || r.Max != c.max {
				t.Errorf("min/max %d/%d not recorded", r.Min, r.Max)
			}
		})
	}
}

func TestReserve(t *testing.T) {
	for _, c := range []struct {
		name      string
		fixture   string
		affinity  int
		request   int64
		reserve   Fraction
		available Fraction
		budget    Fraction
		nearest   int
		floor     int
	}{
		{"none", "T04-two-and-a-half", 8, 0, Fraction{}, Fraction{5, 2}, Fraction{5, 2}, 3, 2},
		{"half a CPU", "T04-two-and-a-half", 8, 0, Fraction{1, 2}, Fraction{5, 2}, Whole(2), 2, 2},
		{"a quarter from affinity", "T01-max-no-request", 8, 0, Fraction{1, 4}, Whole(8), Fraction{31, 4}, 8, 7},
		{"never below one CPU", "T04-two-and-a-half", 8, 0, Whole(2), Fraction{5, 2}, Whole(1), 1, 1},
		{"more than the budget", "T04-two-and-a-half", 8, 0, Whole(5), Fraction{5, 2}, Whole(1), 1, 1},
		{"a budget of one CPU or less is kept", "T02-half-cpu", 8, 0, Fraction{1, 4}, Fraction{1, 2}, Fraction{1, 2}, 1, 1},
		{"exactly one CPU is kept", "R03-quota-beats-request", 8, 0, Fraction{1, 4}, Whole(1), Whole(1), 1, 1},
		{"from a request", "T18-request-without-limit", 64, 2000, Fraction{1, 2}, Whole(2), Fraction{3, 2}, 2, 1},
		{"a third off 8.5", "T09-eight-and-a-half", 16, 0, Fraction{1, 3}, Fraction{17, 2}, Fraction{49, 6}, 8, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := Input{FS: fixture(c.fixture), Affinity: c.affinity, Request: c.request, Reserve: c.reserve}
			r := mustCompute(t, in)
			if r.Available != c.available || r.Budget != c.budget || r.Workers != c.nearest {
				t.Errorf("available %v, budget %d/%d, workers %d; want %v, %d/%d, %d",
					r.Available, r.Budget.Num, r.Budget.Den, r.Workers, c.available, c.budget.Num, c.budget.Den, c.nearest)
			}
			in.Rounding = Floor
			if r := mustCompute(t, in); r.Workers != c.floor {
				t.Errorf("floor: workers %d, want %d", r.Workers, c.floor)
			}
		})
	}
}

func TestComputeRejectsBadInput(t *testing.T) {
	fsys := fixture("T04-two-and-a-half")
	for _, c := range []struct {
		name string
		in   Input
	}{
		{"nil FS", Input{Affinity: 1}},
		{"zero affinity", Input{FS: fsys}},
		{"negative affinity", Input{FS: fsys, Affinity: -1}},
		{"negative request", Input{FS: fsys, Affinity: 1, Request: -1}},
		{"negative limit", Input{FS: fsys, Affinity: 1, Limit: -1}},
		{"negative min", Input{FS: fsys, Affinity: 1, Min: -1}},
		{"negative max", Input{FS: fsys, Affinity: 1, Max: -1}},
		{"min above max", Input{FS: fsys, Affinity: 1, Min: 3, Max: 2}},
		{"unknown rounding", Input{FS: fsys, Affinity: 1, Rounding: "up"}},
		{"reserve over zero", Input{FS: fsys, Affinity: 1, Reserve: Fraction{1, 0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compute(c.in)
			if err == nil || !strings.HasPrefix(err.Error(), "cpus: ") {
				t.Errorf("error %v", err)
			}
		})
	}
	if _, err := Compute(Input{FS: fsys, Affinity: 1, Min: 3}); err != nil {
		t.Errorf("min without max: %v", err)
	}
}

// denyFS refuses to open some names, as a confined environment (seccomp,
// AppArmor, a read-only bind) would.
type denyFS struct {
	fs.FS
	deny []string
}

func (d denyFS) Open(name string) (fs.File, error) {
	for _, p := range d.deny {
		if name == p || strings.HasPrefix(name, p+"/") {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
	}
	return d.FS.Open(name)
}

func TestUnreadable(t *testing.T) {
	t.Run("proc denied: guess, then affinity quietly", func(t *testing.T) {
		// The guess is the cgroup2 root, which has no cpu.max.
		r := mustCompute(t, Input{FS: denyFS{fixture("T12-parent-limit"), []string{"proc"}}, Affinity: 8})
		if r.Workers != 8 || r.Source != SourceAffinity || !r.Guess || r.Dir != "/sys/fs/cgroup" || len(r.Levels) != 1 {
			t.Errorf("%+v", r)
		}
		if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "HERD_CPU_REQUEST") {
			t.Errorf("warnings %q: want only the request hint", r.Warnings)
		}
		if !strings.Contains(strings.Join(r.Notes, "\n"), "permission denied") {
			t.Errorf("notes %q do not say why", r.Notes)
		}
	})
	t.Run("proc and sys denied: affinity quietly", func(t *testing.T) {
		r := mustCompute(t, Input{FS: denyFS{fixture("T12-parent-limit"), []string{"proc", "sys"}}, Affinity: 3, Request: 1000})
		if r.Workers != 1 || r.Source != SourceRequest || r.Version != 0 || len(r.Levels) != 0 || len(r.Warnings) != 0 {
			t.Errorf("%+v", r)
		}
	})
	t.Run("mountinfo denied: guess by the version /proc/self/cgroup names", func(t *testing.T) {
		r := mustCompute(t, Input{FS: denyFS{fixture("T16-v1-docker-mount-root"), []string{"proc/self/mountinfo"}}, Affinity: 8})
		if r.Workers != 2 || !r.Guess || r.Version != 1 || r.Cgroup != "/docker/abc" {
			t.Errorf("%+v", r)
		}
	})
	t.Run("leaf cpu.max denied: the walk goes on", func(t *testing.T) {
		dir := "sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d1c9a2e_5f3b_4c8d_a1e2_3b4c5d6e7f80.slice/cri-containerd-4f2a9b8c7d6e.scope/cpu.max"
		r := mustCompute(t, Input{FS: denyFS{fixture("T13-leaf-tighter-than-parent"), []string{dir}}, Affinity: 8})
		if r.Workers != 4 || len(r.Levels) != 5 || r.Levels[0].Read || !strings.Contains(r.Levels[0].Note, "unreadable") {
			t.Errorf("workers %d, levels %+v", r.Workers, r.Levels)
		}
	})
	t.Run("v1 period denied", func(t *testing.T) {
		r := mustCompute(t, Input{FS: denyFS{fixture("L05-v1-six-cpus"), []string{"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"}}, Affinity: 8})
		lv := r.Levels[0]
		if r.Workers != 8 || lv.HasLimit || lv.Read || lv.Raw != "600000" || !strings.Contains(lv.Note, "cpu.cfs_period_us unreadable") {
			t.Errorf("workers %d, level %+v", r.Workers, lv)
		}
	})
	t.Run("oversized and odd files", func(t *testing.T) {
		fsys := fstest.MapFS{
			"proc/self/cgroup":            {Data: []byte("0::/a/b:c\n")},
			"proc/self/mountinfo":         {Data: []byte(lineV2 + "\n")},
			"sys/fs/cgroup/a/b:c/cpu.max": {Data: []byte("150000 100000" + strings.Repeat(" ", maxFile))},
			"sys/fs/cgroup/a/cpu.max":     {Data: []byte("250000 100000\n")},
			"sys/fs/cgroup/cpu.max":       {Data: []byte{}},
		}
		r := mustCompute(t, Input{FS: fsys, Affinity: 8})
		if r.Workers != 3 || len(r.Levels) != 3 || r.Levels[0].Dir != "/sys/fs/cgroup/a/b:c" {
			t.Fatalf("%+v", r)
		}
		if n := r.Levels[0].Note; !strings.Contains(n, "larger than") {
			t.Errorf("oversized: %q", n)
		}
		if lv := r.Levels[2]; !lv.Read || !strings.Contains(lv.Note, "malformed") {
			t.Errorf("empty: %+v", lv)
		}
	})
}

// TestLimit: HERD_CPU_LIMIT stands in for a quota that is not visible and
// is only checked against one that is.
func TestLimit(t *testing.T) {
	for _, c := range []struct {
		name            string
		fixture         string
		affinity        int
		request, limit  int64
		workers         int
		source          string
		warn, note, why string // substrings; "" wants none of that kind
	}{
		{"no quota: the limit decides", "T01-max-no-request", 8, 0, 1500, 2, SourceLimit, "", "", "no quota; limit 1.5 <= affinity 8"},
		{"no quota: the limit beats the request", "T01-max-no-request", 8, 500, 3000, 3, SourceLimit, "", "HERD_CPU_LIMIT (3 CPUs) decides, not HERD_CPU_REQUEST (0.5 CPU)", "no quota; limit 3 <= affinity 8"},
		{"no quota: a limit above affinity", "T01-max-no-request", 4, 0, 6000, 4, SourceAffinity, "", "", "no quota; affinity 4 < limit 6"},
		{"a quota that agrees", "T03-one-and-a-half", 8, 0, 1500, 2, SourceCgroupV2, "", "", "quota 1.5 <= affinity 8"},
		{"a quota that disagrees decides, with a warning", "T03-one-and-a-half", 8, 0, 4000, 2, SourceCgroupV2,
			"HERD_CPU_LIMIT is 4000m (4 CPUs) but the cgroup quota is 1.5 CPUs: the quota, which the kernel enforces, decides", "", "quota 1.5 <= affinity 8"},
		{"a quota above affinity still compared", "T10-quota-above-affinity", 2, 0, 2000, 2, SourceAffinity, "cgroup quota is 4 CPUs", "", "affinity 2 < quota 4"},
		{"a request above the limit", "T01-max-no-request", 8, 2000, 1000, 1, SourceLimit, "HERD_CPU_REQUEST (2000m) is above HERD_CPU_LIMIT (1000m)", "", ""},
		{"a tiny limit", "T01-max-no-request", 8, 0, 2, 1, SourceLimit, "HERD_CPU_LIMIT is 2m (0 CPU), less than any server asks for; for 2 CPUs write 2 or 2.0", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompute(t, Input{FS: fixture(c.fixture), Affinity: c.affinity, Request: c.request, Limit: c.limit})
			if r.Workers != c.workers || r.Source != c.source || r.Limit != c.limit {
				t.Errorf("workers %d source %s limit %d; want %d %s %d", r.Workers, r.Source, r.Limit, c.workers, c.source, c.limit)
			}
			warnings := strings.Join(r.Warnings, "\n")
			if (c.warn == "") != (len(r.Warnings) == 0) || !strings.Contains(warnings, c.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, c.warn)
			}
			if !strings.Contains(strings.Join(r.Notes, "\n"), c.note) {
				t.Errorf("notes %q lack %q", r.Notes, c.note)
			}
			out := table(r)
			if !strings.Contains(out, c.why) || !strings.Contains(out, "limit, HERD_CPU_LIMIT") || !strings.Contains(r.LogLine(), fmt.Sprintf(" limit=%dm", c.limit)) {
				t.Errorf("the limit is not explained (want %q):\n%s\n%s", c.why, r.LogLine(), out)
			}
		})
	}
}

func TestTinyRequestWarns(t *testing.T) {
	r := mustCompute(t, Input{FS: fixture("T01-max-no-request"), Affinity: 8, Request: 2})
	if r.Workers != 1 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "for 2 CPUs write 2 or 2.0") {
		t.Errorf("workers %d, warnings %q", r.Workers, r.Warnings)
	}
}

// recordFS remembers every name opened.
type recordFS struct {
	fs.FS
	mu    sync.Mutex
	names []string
}

func (r *recordFS) Open(name string) (fs.File, error) {
	r.mu.Lock()
	r.names = append(r.names, name)
	r.mu.Unlock()
	return r.FS.Open(name)
}

// TestThisMachine runs Compute on the real /proc and /sys.
func TestThisMachine(t *testing.T) {
	a, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	fsys := &recordFS{FS: os.DirFS("/")}
	r := mustCompute(t, Input{FS: fsys, Affinity: a})
	if Whole(uint64(a)).Less(r.Budget) || r.Workers < 1 || r.Workers > a {
		t.Errorf("budget %v, workers %d with affinity %d", r.Budget, r.Workers, a)
	}
	for _, n := range fsys.names {
		if !strings.HasPrefix(n, "proc/self/") && !strings.HasPrefix(n, "sys/fs/cgroup") {
			t.Errorf("read %s", n)
		}
	}
	t.Log(r.LogLine())
	t.Log(table(r))
}

func FuzzCompute(f *testing.F) {
	f.Add("0::/a/b\n", lineV2, "max 100000\n", "150000 100000\n", uint8(8), int64(0), int64(0))
	f.Add("4:cpu,cpuacct:/docker/abc\n", lineV1Mixed, "200000", "-1", uint8(2), int64(1500), int64(0))
	f.Add("0::/../../x\n", lineOutside, "", "", uint8(1), int64(0), int64(0))
	f.Add("0::/a/b\n", lineV2, "max 100000\n", "max 100000\n", uint8(4), int64(500), int64(1500))
	f.Fuzz(func(t *testing.T, cgroup, mountinfo, leaf, parent string, affinity uint8, request, limit int64) {
		if affinity == 0 || request < 0 || limit < 0 {
			return
		}
		fsys := fstest.MapFS{
			"proc/self/cgroup":                            {Data: []byte(cgroup)},
			"proc/self/mountinfo":                         {Data: []byte(mountinfo)},
			"sys/fs/cgroup/cgroup.controllers":            {Data: []byte("cpu\n")},
			"sys/fs/cgroup/a/b/cpu.max":                   {Data: []byte(leaf)},
			"sys/fs/cgroup/a/cpu.max":                     {Data: []byte(parent)},
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  {Data: []byte(leaf)},
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": {Data: []byte(parent)},
		}
		r, err := Compute(Input{FS: fsys, Affinity: int(affinity), Request: request, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if Whole(uint64(affinity)).Less(r.Budget) || r.Workers < 1 || r.Workers > int(affinity) {
			t.Fatalf("budget %v, workers %d, affinity %d", r.Budget, r.Workers, affinity)
		}
		if strings.Contains(r.LogLine(), "\n") {
			t.Fatalf("log line %q", r.LogLine())
		}
		if err := r.WriteTable(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
