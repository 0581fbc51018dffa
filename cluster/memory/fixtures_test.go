package memory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectation is a budget fixture's expect.json.
type expectation struct {
	Setting int64  `json:"setting"` // HERD_MEMORY_LIMIT, the Input
	Limit   int64  `json:"limit"`
	Source  string `json:"source"`
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	File    string `json:"file"`
	Levels  int    `json:"levels"` // limit files read
	Guess   bool   `json:"guess"`
	Warn    bool   `json:"warn"`
	Log     string `json:"log"` // LogLine
}

// TestFixtures runs Compute on every directory under testdata/budget: a
// /proc and /sys layout named after its case, with expect.json.
func TestFixtures(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "budget"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 15 {
		t.Fatalf("only %d fixtures under testdata/budget", len(entries))
	}
	for _, e := range entries {
		dir := filepath.Join("testdata", "budget", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			want := readExpect(t, dir)
			got, err := Compute(Input{FS: os.DirFS(dir), Limit: want.Setting})
			if err != nil {
				t.Fatal(err)
			}
			checkFixture(t, got, want)
		})
	}
}

func readExpect(t *testing.T, dir string) expectation {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want expectation
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("expect.json: %v", err)
	}
	return want
}

func checkFixture(t *testing.T, got Result, want expectation) {
	t.Helper()
	if got.Limit != want.Limit || got.Source != want.Source {
		t.Errorf("limit %d source %s, want %d %s", got.Limit, got.Source, want.Limit, want.Source)
	}
	if got.Version != want.Version || got.Dir != want.Dir || got.File != want.File {
		t.Errorf("version %d dir %q file %q, want %d %q %q", got.Version, got.Dir, got.File, want.Version, want.Dir, want.File)
	}
	if got.Guess != want.Guess || len(got.Levels) != want.Levels {
		t.Errorf("guess %v, %d levels; want %v, %d", got.Guess, len(got.Levels), want.Guess, want.Levels)
	}
	if warned := len(got.Warnings) > 0; warned != want.Warn {
		t.Errorf("warnings %q, want some: %v", got.Warnings, want.Warn)
	}
	if line := got.LogLine(); line != want.Log {
		t.Errorf("log line\n got %s\nwant %s", line, want.Log)
	}
	checkInvariants(t, got)
	if t.Failed() {
		t.Log(table(got))
	}
}

// checkInvariants: the limit is the smallest level's, or the setting, or
// none; one level at most is marked; every level says what it gave.
func checkInvariants(t *testing.T, r Result) {
	t.Helper()
	if r.Limit < 0 || r.Limit >= NoLimit {
		t.Errorf("limit %d out of range", r.Limit)
	}
	marked := 0
	for _, lv := range r.Levels {
		if lv.Note == "" {
			t.Errorf("level %s %s has no note", lv.Dir, lv.File)
		}
		if lv.HasLimit && lv.Value < r.Limit && (r.Source == SourceCgroupV1 || r.Source == SourceCgroupV2) {
			t.Errorf("level %s %s limits to %d, below the budget %d", lv.Dir, lv.File, lv.Value, r.Limit)
		}
		if lv.Smallest {
			marked++
			if !lv.HasLimit || lv.Value != r.Limit || lv.Dir != r.Dir || lv.File != r.File {
				t.Errorf("level %+v marked smallest, budget %d in %s %s", lv, r.Limit, r.Dir, r.File)
			}
		}
	}
	cgroupDecided := r.Source == SourceCgroupV1 || r.Source == SourceCgroupV2
	if marked > 1 || (marked == 1) != cgroupDecided {
		t.Errorf("%d levels marked smallest, source %s", marked, r.Source)
	}
	switch {
	case r.Source == SourceLimit && r.Limit != r.Setting, r.Source == SourceNone && r.Limit != 0, cgroupDecided && r.Limit <= 0:
		t.Errorf("source %s, limit %d, setting %d", r.Source, r.Limit, r.Setting)
	case r.Dir != "" && r.Dir != r.Leaf && !strings.HasPrefix(r.Leaf, r.Dir+"/") && r.Dir != r.MountPoint:
		t.Errorf("dir %q is neither the leaf %q nor an ancestor", r.Dir, r.Leaf)
	}
}

func table(r Result) string {
	var b strings.Builder
	r.WriteTable(&b)
	return b.String()
}
