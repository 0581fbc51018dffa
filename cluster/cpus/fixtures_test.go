package cpus

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectation is a fixture's expect.json.
type expectation struct {
	Affinity int       `json:"affinity"`
	Request  int64     `json:"request"`
	Limit    int64     `json:"limit"`
	Budget   Fraction  `json:"budget"`
	Quota    *Fraction `json:"quota"`
	Workers  struct {
		Nearest int `json:"nearest"`
		Floor   int `json:"floor"`
		Ceil    int `json:"ceil"`
	} `json:"workers"`
	Source  string `json:"source"`
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	Guess   bool   `json:"guess"`
	Levels  int    `json:"levels"`
	Warn    bool   `json:"warn"`
}

// TestFixtures runs Compute on every directory under testdata (but fuzz):
// a /proc and /sys layout named after its case, with expect.json, under
// all three roundings.
func TestFixtures(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "fuzz" {
			continue
		}
		n++
		dir := filepath.Join("testdata", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
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
			for _, rc := range []struct {
				r Rounding
				w int
			}{{Nearest, want.Workers.Nearest}, {Floor, want.Workers.Floor}, {Ceil, want.Workers.Ceil}} {
				got, err := Compute(Input{FS: os.DirFS(dir), Affinity: want.Affinity, Request: want.Request, Limit: want.Limit, Rounding: rc.r})
				if err != nil {
					t.Fatalf("%s: Compute: %v", rc.r, err)
				}
				if got.Workers != rc.w {
					t.Errorf("%s: workers = %d, want %d\n%s", rc.r, got.Workers, rc.w, table(got))
				}
				if got.Budget.Cmp(want.Budget) != 0 || got.Budget != newFraction(want.Budget.Num, want.Budget.Den) {
					t.Errorf("%s: budget = %d/%d, want %d/%d in lowest terms", rc.r, got.Budget.Num, got.Budget.Den, want.Budget.Num, want.Budget.Den)
				}
				if rc.r != Nearest {
					continue
				}
				checkExplained(t, got, want)
			}
		})
	}
	if n < 20 {
		t.Fatalf("only %d fixtures under testdata", n)
	}
}

func checkExplained(t *testing.T, got Result, want expectation) {
	t.Helper()
	if got.Source != want.Source {
		t.Errorf("source = %q, want %q", got.Source, want.Source)
	}
	if got.Version != want.Version {
		t.Errorf("version = %d, want %d", got.Version, want.Version)
	}
	if got.Dir != want.Dir {
		t.Errorf("dir = %q, want %q", got.Dir, want.Dir)
	}
	if got.Guess != want.Guess {
		t.Errorf("guess = %v, want %v", got.Guess, want.Guess)
	}
	if len(got.Levels) != want.Levels {
		t.Errorf("%d levels walked, want %d", len(got.Levels), want.Levels)
	}
	if warned := len(got.Warnings) > 0; warned != want.Warn {
		t.Errorf("warnings %q, want some: %v", got.Warnings, want.Warn)
	}
	switch {
	case (got.Quota == nil) != (want.Quota == nil):
		t.Errorf("quota = %v, want %v", got.Quota, want.Quota)
	case got.Quota != nil && got.Quota.Cmp(*want.Quota) != 0:
		t.Errorf("quota = %v, want %v", got.Quota, want.Quota)
	}
	// Invariants: B <= A, W >= 1, the smallest level is the quota.
	if Whole(uint64(want.Affinity)).Less(got.Budget) {
		t.Errorf("budget %v above affinity %d", got.Budget, want.Affinity)
	}
	smallest := 0
	for _, lv := range got.Levels {
		if lv.Smallest {
			smallest++
			if got.Quota == nil || lv.Limit.Cmp(*got.Quota) != 0 {
				t.Errorf("level %s marked smallest with %v, quota %v", lv.Dir, lv.Limit, got.Quota)
			}
		}
		if lv.Note == "" {
			t.Errorf("level %s has no note", lv.Dir)
		}
	}
	if (smallest == 1) != (got.Quota != nil) || smallest > 1 {
		t.Errorf("%d levels marked smallest, quota %v", smallest, got.Quota)
	}
	if t.Failed() {
		t.Log(table(got))
	}
}

func table(r Result) string {
	var b strings.Builder
	r.WriteTable(&b)
	return b.String()
}
