package cpus

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func TestLogLine(t *testing.T) {
	for _, c := range []struct {
		name string
		in   Input
		want string
	}{
		{
			"docs/workers.md step 7", Input{FS: fixture("T04-two-and-a-half"), Affinity: 16},
			"workers=3 source=cgroup-v2 dir=/sys/fs/cgroup cpu.max=250000/100000 (2.5) affinity=16 request=- rounding=nearest",
		},
		{
			"v1", Input{FS: fixture("T16-v1-docker-mount-root"), Affinity: 8, Rounding: Floor},
			"workers=2 source=cgroup-v1 dir=/sys/fs/cgroup/cpu,cpuacct cpu.cfs_quota_us/cpu.cfs_period_us=200000/100000 (2) affinity=8 request=- rounding=floor",
		},
		{
			"quota above affinity", Input{FS: fixture("T10-quota-above-affinity"), Affinity: 2},
			"workers=2 source=affinity dir=/sys/fs/cgroup cpu.max=400000/100000 (4) affinity=2 request=- rounding=nearest",
		},
		{
			"the smallest of several levels", Input{FS: fixture("T12-parent-limit"), Affinity: 8, Rounding: Ceil},
			"workers=2 source=cgroup-v2 dir=/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d1c9a2e_5f3b_4c8d_a1e2_3b4c5d6e7f80.slice/cri-containerd-4f2a9b8c7d6e.scope cpu.max=200000/100000 (2) affinity=8 request=- rounding=ceil",
		},
		{
			"request", Input{FS: fixture("T18-request-without-limit"), Affinity: 64, Request: 2000},
			"workers=2 source=request dir=/sys/fs/cgroup cpu.max=- affinity=64 request=2000m rounding=nearest",
		},
		{
			"limit without a quota", Input{FS: fixture("R04-limit-without-quota"), Affinity: 8, Request: 500, Limit: 1500},
			"workers=2 source=limit dir=/sys/fs/cgroup cpu.max=- affinity=8 request=500m rounding=nearest limit=1500m",
		},
		{
			"limit that agrees with the quota", Input{FS: fixture("R07-limit-agrees-with-quota"), Affinity: 2, Limit: 1500},
			"workers=2 source=cgroup-v1 dir=/sys/fs/cgroup/cpu,cpuacct cpu.cfs_quota_us/cpu.cfs_period_us=150000/100000 (1.5) affinity=2 request=- rounding=nearest limit=1500m",
		},
		{
			"no directory", Input{FS: fixture("T19-outside-namespace-root"), Affinity: 8},
			"workers=8 source=affinity dir=- cpu.max=- affinity=8 request=- rounding=nearest",
		},
		{
			"a period that does not divide", Input{FS: fixture("T08-period-does-not-divide"), Affinity: 8},
			"workers=1 source=cgroup-v2 dir=/sys/fs/cgroup cpu.max=250000/300000 (0.83) affinity=8 request=- rounding=nearest",
		},
		{
			"guess, reserve and clamps", Input{FS: fixture("G01-guess-v2-without-proc"), Affinity: 8, Reserve: Fraction{1, 2}, Min: 1, Max: 2},
			"workers=2 source=cgroup-v2 dir=/sys/fs/cgroup cpu.max=300000/100000 (3) affinity=8 request=- rounding=nearest guess=true reserve=0.5 min=1 max=2",
		},
		{
			"dir with a space", Input{FS: fixture("M02-escaped-mount-point"), Affinity: 8},
			`workers=3 source=cgroup-v2 dir="/run/cgroup view/app" cpu.max=250000/100000 (2.5) affinity=8 request=- rounding=nearest`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := mustCompute(t, c.in).LogLine(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestLogLineShape checks every fixture's line against the shape of
// docs/workers.md step 7.
func TestLogLineShape(t *testing.T) {
	shape := regexp.MustCompile(`^workers=[1-9]\d* source=(affinity|cgroup-v1|cgroup-v2|limit|request) dir=("[^"]*"|[^ "]+) ` +
		`(cpu\.max|cpu\.cfs_quota_us/cpu\.cfs_period_us)=(-|\d+/\d+ \(\d+(\.\d\d?)?\)) affinity=[1-9]\d* request=(-|\d+m) rounding=(nearest|floor|ceil)( limit=\d+m)?( guess=true)?$`)
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		if e.Name() == "fuzz" {
			continue
		}
		for _, limit := range []int64{0, 2500} {
			line := mustCompute(t, Input{FS: fixture(e.Name()), Affinity: 4, Request: 1500, Limit: limit}).LogLine()
			if !shape.MatchString(line) {
				t.Errorf("%s: %s", e.Name(), line)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	r := mustCompute(t, Input{FS: fixture("T12-parent-limit"), Affinity: 8})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"affinity", "available", "budget", "cgroup", "cgroup_version", "dir", "guess", "levels",
		"limit_millicores", "max_workers", "min_workers", "mount_point", "mount_root", "notes", "quota", "request_millicores",
		"reserve", "rounded", "rounding", "source", "warnings", "workers"}
	if got := keys(m); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("result keys\n got %v\nwant %v", got, want)
	}
	levels := m["levels"].([]any)
	if got, want := keys(levels[1].(map[string]any)), []string{"bandwidth", "dir", "file", "has_limit", "limit", "note", "raw", "read", "smallest"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("level with a limit: %v", got)
	}
	if got, want := keys(levels[0].(map[string]any)), []string{"dir", "file", "has_limit", "note", "raw", "read", "smallest"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("level without a limit: %v", got)
	}
	if bw := levels[1].(map[string]any)["bandwidth"]; !jsonEqual(t, bw, `{"quota_us":200000,"period_us":100000}`) {
		t.Errorf("bandwidth %v", bw)
	}
	if !jsonEqual(t, m["budget"], `{"num":2,"den":1,"cpus":"2"}`) || !jsonEqual(t, m["quota"], `{"num":2,"den":1,"cpus":"2"}`) {
		t.Errorf("budget %v, quota %v", m["budget"], m["quota"])
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) {
					t.Errorf("key %q is not snake_case", k)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(m)

	// No quota: null, and empty lists are [] rather than null.
	r = mustCompute(t, Input{FS: fixture("G03-nothing-readable"), Affinity: 2, Request: 1000})
	b, _ = json.Marshal(r)
	for _, frag := range []string{`"quota":null`, `"levels":[]`, `"warnings":[]`, `"source":"request"`, `"cgroup_version":0`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("%s lacks %s", b, frag)
		}
	}
}

func keys(m map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func jsonEqual(t *testing.T, v any, want string) bool {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(v)
	b, _ := json.Marshal(w)
	return string(a) == string(b)
}

func TestWriteTable(t *testing.T) {
	r := mustCompute(t, Input{FS: fixture("L01-malformed-leaf"), Affinity: 8, Request: 500, Min: 4, Reserve: Fraction{1, 2}})
	out := table(r)
	for _, want := range []string{
		"workers  4", "nearest(2.5) = 3, raised to HERD_MIN_WORKERS 4",
		"budget   2.5 CPUs", "quota 3 <= affinity 8; 3 minus reserve 0.5",
		"source   cgroup-v2",
		"HERD_CPU_REQUEST", "500m", "HERD_MIN_WORKERS", "0.5 CPU",
		"/app.slice/web", // the cgroup
		"cpu.max \"asdf 100000\": malformed, no limit here",
		"cpu.max \"300000 100000\": 3 CPUs  <- smallest",
		"cpu.max: missing, no limit here",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, lv := range r.Levels {
		if !strings.Contains(out, "\n  "+lv.Dir+"\n") {
			t.Errorf("table lacks level %s", lv.Dir)
		}
	}

	r = mustCompute(t, Input{FS: fixture("T19-outside-namespace-root"), Affinity: 8})
	out = table(r)
	for _, w := range r.Warnings {
		if !strings.Contains(out, "  - "+w+"\n") {
			t.Errorf("table lacks warning %q", w)
		}
	}
	if !strings.Contains(out, "none walked") || !strings.Contains(out, "WARNINGS") {
		t.Errorf("table:\n%s", out)
	}

	broken := errors.New("broken pipe")
	if err := r.WriteTable(failWriter{broken}); !errors.Is(err, broken) {
		t.Errorf("WriteTable to a failing writer: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
