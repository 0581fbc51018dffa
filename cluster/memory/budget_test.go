package memory

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func budget(name string) fstest.MapFS {
	fsys := fstest.MapFS{}
	root := filepath.Join("testdata", "budget", name)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		fsys[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		panic(err)
	}
	return fsys
}

func mustCompute(t *testing.T, in Input) Result {
	t.Helper()
	r, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	return r
}

func TestComputeRefuses(t *testing.T) {
	for _, in := range []Input{{}, {FS: fstest.MapFS{}, Limit: -1}} {
		if _, err := Compute(in); err == nil {
			t.Errorf("Compute(%+v) accepted", in)
		}
	}
}

// TestComputeFiles: files the fixtures cannot show (unreadable, oversized,
// odd) and what each level then says.
func TestComputeFiles(t *testing.T) {
	leaf := "sys/fs/cgroup/memory/kubepods/burstable/pod1/c1/memory.limit_in_bytes"
	t.Run("leaf denied: the walk goes on", func(t *testing.T) {
		fsys := denyFS{budget("V1-01-container-limit"), []string{leaf}}
		r := mustCompute(t, Input{FS: fsys})
		if r.Limit != 7516192768 || r.Levels[0].Read || !strings.Contains(r.Levels[0].Note, "unreadable") {
			t.Errorf("limit %d, levels %+v", r.Limit, r.Levels)
		}
	})
	t.Run("odd values", func(t *testing.T) {
		fsys := budget("V1-01-container-limit")
		odd := map[string]string{
			"":                                  "malformed",
			"0\n":                               "0 bytes",
			"000":                               "0 bytes",
			"-1\n":                              "no limit here (-1)",
			"+5\n":                              "malformed",
			"18446744073709551615":              "2^62 bytes or more",
			"99999999999999999999":              "2^62 bytes or more",
			strings.Repeat("1", maxLimitFile+1): "larger than 4096 bytes",
		}
		for content, note := range odd {
			fsys[leaf] = &fstest.MapFile{Data: []byte(content)}
			r := mustCompute(t, Input{FS: fsys})
			if lv := r.Levels[0]; lv.HasLimit || !strings.Contains(lv.Note, note) || r.Limit != 7516192768 {
				t.Errorf("%.20q: level %+v, limit %d; want a note saying %q", content, lv, r.Limit, note)
			}
		}
	})
	t.Run("meminfo without MemTotal", func(t *testing.T) {
		fsys := budget("V1-04-above-memtotal")
		fsys["proc/meminfo"] = &fstest.MapFile{Data: []byte("MemFree: 1 kB\n")}
		r := mustCompute(t, Input{FS: fsys})
		if r.MemTotal != 0 || r.Limit != 64<<30 || !strings.Contains(r.Notes[0], "no MemTotal line") {
			t.Errorf("mem total %d, limit %d, notes %q", r.MemTotal, r.Limit, r.Notes)
		}
	})
	t.Run("a setting of 2^62 or more is none", func(t *testing.T) {
		r := mustCompute(t, Input{FS: fstest.MapFS{}, Limit: NoLimit})
		if r.Limit != 0 || r.Source != SourceNone {
			t.Errorf("limit %d source %s", r.Limit, r.Source)
		}
	})
}

// TestSetting: HERD_MEMORY_LIMIT stands in for a cgroup limit that is not
// visible and is only checked against one that is, allowing for the
// kernel's rounding down to pages.
func TestSetting(t *testing.T) {
	for _, c := range []struct {
		name    string
		fixture string
		setting int64
		limit   int64
		source  string
		warn    string
	}{
		{"alone", "E01-setting-alone", 256 << 20, 256 << 20, SourceLimit, ""},
		{"no cgroup limit", "V2-03-no-limit", 1 << 30, 1 << 30, SourceLimit, ""},
		{"equal", "V1-01-container-limit", 256 << 20, 256 << 20, SourceCgroupV1, ""},
		{"a page above", "E04-setting-agrees-within-a-page", 299999232 + 4096, 299999232, SourceCgroupV2, ""},
		{"64 KiB above", "E04-setting-agrees-within-a-page", 299999232 + 64<<10, 299999232, SourceCgroupV2, "HERD_MEMORY_LIMIT is 286.16MiB (300064768 bytes) but the cgroup limit is 286.1MiB"},
		{"below", "V1-01-container-limit", 128 << 20, 256 << 20, SourceCgroupV1, "HERD_MEMORY_LIMIT is 128MiB (134217728 bytes) but the cgroup limit is 256MiB (memory.limit_in_bytes in /sys/fs/cgroup/memory/kubepods/burstable/pod1/c1)"},
		{"memory.max, not a memory.high below it", "V2-04-high-below-max", 256 << 20, 200 << 20, SourceCgroupV2, ""},
		{"memory.max, even with a memory.high below it", "V2-04-high-below-max", 200 << 20, 200 << 20, SourceCgroupV2, "cgroup limit is 256MiB (memory.max"},
		{"a memory.high alone", "V2-04-high-below-max/no-max", 200 << 20, 200 << 20, SourceCgroupV2, ""},
		{"a memory.high alone that differs", "V2-04-high-below-max/no-max", 256 << 20, 200 << 20, SourceCgroupV2, "cgroup limit is 200MiB (memory.high"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fixture, noMax := strings.CutSuffix(c.fixture, "/no-max")
			fsys := budget(fixture)
			if noMax {
				fsys["sys/fs/cgroup/a/b/memory.max"] = &fstest.MapFile{Data: []byte("max\n")}
			}
			r := mustCompute(t, Input{FS: fsys, Limit: c.setting})
			if r.Limit != c.limit || r.Source != c.source {
				t.Errorf("limit %d source %s, want %d %s", r.Limit, r.Source, c.limit, c.source)
			}
			if (c.warn == "") != (len(r.Warnings) == 0) || !strings.Contains(strings.Join(r.Warnings, "\n"), c.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, c.warn)
			}
		})
	}
}

func TestLogLine(t *testing.T) {
	for _, c := range []struct {
		r    Result
		want string
	}{
		{Result{Source: SourceNone}, "limit=none source=none dir=- memory.max=-"},
		{Result{Source: SourceNone, Version: 1, Dir: "/sys/fs/cgroup/memory"}, "limit=none source=none dir=/sys/fs/cgroup/memory memory.limit_in_bytes=-"},
		{
			Result{Limit: 1 << 30, Source: SourceCgroupV2, Version: 2, Dir: "/run/cgroup view/app", File: "memory.max", Guess: true, Setting: 1 << 30,
				Levels: []Level{{File: "memory.max", Raw: "1073741824", Value: 1 << 30, HasLimit: true, Smallest: true}}},
			`limit=1GiB source=cgroup-v2 dir="/run/cgroup view/app" memory.max=1073741824 HERD_MEMORY_LIMIT=1Gi guess=true`,
		},
		{Result{Limit: 3 << 29, Source: SourceLimit, Setting: 3 << 29}, "limit=1.5GiB source=limit dir=- memory.max=- HERD_MEMORY_LIMIT=1536Mi"},
	} {
		if got := c.r.LogLine(); got != c.want {
			t.Errorf("LogLine\n got %s\nwant %s", got, c.want)
		}
	}
}

// TestJSON: the result survives JSON, for herd memory --json.
func TestJSON(t *testing.T) {
	r := mustCompute(t, Input{FS: budget("V2-04-high-below-max"), Limit: 256 << 20})
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back, r)
	}
	for _, key := range []string{`"limit":209715200`, `"source":"cgroup-v2"`, `"file":"memory.high"`, `"cgroup_version":2`, `"limit_setting":268435456`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("JSON lacks %s: %s", key, js)
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := mustCompute(t, Input{FS: budget("V2-02-pod-limit-above-a-container-without"), Limit: 512 << 20})
	got := table(r)
	for _, want := range []string{
		"DECISION", "limit      512MiB  536870912 bytes: the smallest cgroup limit, memory.max",
		"INPUTS", "limit, HERD_MEMORY_LIMIT", "512MiB", "MemTotal of /proc/meminfo", "8GiB",
		"LEVELS (leaf first, up to the mount point)",
		`memory.max "536870912": 512MiB  <- smallest`, `memory.high "max": no limit here (max)`, "memory.max: missing, no limit here",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if err := r.WriteTable(failWriter{}); err == nil {
		t.Error("a failing writer's error was lost")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

// FuzzCompute: whatever the files hold, Compute keeps its invariants and
// its explanations render.
func FuzzCompute(f *testing.F) {
	f.Add("0::/a/b\n", lineV2Mount, "max\n", "268435456\n", "MemTotal: 8388608 kB\n", int64(0))
	f.Add("4:memory:/a/b\n", lineV1Mount, "9223372036854771712\n", "0\n", "MemTotal: 1 kB\n", int64(1<<30))
	f.Add("0::/../x\n", lineV2Mount, "", "abc", "", int64(5))
	f.Fuzz(func(t *testing.T, cg, mounts, leaf, parent, meminfo string, setting int64) {
		fsys := fstest.MapFS{
			"proc/self/cgroup": {Data: []byte(cg)}, "proc/self/mountinfo": {Data: []byte(mounts)}, "proc/meminfo": {Data: []byte(meminfo)},
		}
		for _, d := range []string{"sys/fs/cgroup", "sys/fs/cgroup/memory"} {
			for _, f := range []string{"memory.max", "memory.high", "memory.limit_in_bytes"} {
				fsys[d+"/a/b/"+f] = &fstest.MapFile{Data: []byte(leaf)}
				fsys[d+"/a/"+f] = &fstest.MapFile{Data: []byte(parent)}
			}
		}
		r, err := Compute(Input{FS: fsys, Limit: setting})
		if (err != nil) != (setting < 0) {
			t.Fatalf("setting %d: %v", setting, err)
		}
		if err != nil {
			return
		}
		checkInvariants(t, r)
		r.LogLine()
		table(r)
	})
}

const (
	lineV2Mount = "1399 1398 0:30 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw"
	lineV1Mount = "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"
)
