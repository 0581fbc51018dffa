package initproc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Signal
		ok   bool
	}{
		{"TERM", unix.SIGTERM, true}, {"SIGQUIT", unix.SIGQUIT, true}, {"sigint", unix.SIGINT, true},
		{"15", unix.SIGTERM, true}, {" usr1 ", unix.SIGUSR1, true}, {"RTMIN+3", 37, true}, {"RTMAX", 64, true},
		{"KILL", 0, false}, {"9", 0, false}, {"STOP", 0, false}, {"0", 0, false}, {"65", 0, false},
		{"NOPE", 0, false}, {"", 0, false}, {"RTMIN+x", 0, false},
	} {
		got, ok := ParseSignal(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, s := range Forwardable {
		sig := s.(unix.Signal)
		back, ok := ParseSignal(SignalName(sig))
		if !ok || back != sig {
			t.Errorf("SignalName(%d)=%q does not parse back", sig, SignalName(sig))
		}
	}
}

// The list holds every catchable signal but those herd leaves alone or Go's
// runtime keeps.
func TestForwardableList(t *testing.T) {
	have := map[unix.Signal]bool{}
	for _, s := range Forwardable {
		have[s.(unix.Signal)] = true
	}
	for sig := unix.Signal(1); sig <= 64; sig++ {
		excluded := sig == unix.SIGKILL || sig == unix.SIGSTOP || sig == unix.SIGCHLD || sig == unix.SIGURG ||
			sig == unix.SIGPIPE || sig == unix.SIGPROF || sig == 32 || sig == 33 || sig == 34
		if have[sig] == excluded {
			t.Errorf("signal %d (%s): listed=%v", sig, SignalName(sig), have[sig])
		}
	}
}

func TestRemap(t *testing.T) {
	r, err := ParseRemap("143=0, 137=1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Apply(143) != 0 || r.Apply(137) != 1 || r.Apply(2) != 2 || r.String() != "137=1,143=0" {
		t.Errorf("remap %v", r)
	}
	for _, bad := range []string{"143", "143=x", "256=0", "1=-1", "1=0,1=2", "a=b"} {
		if _, err := ParseRemap(bad); err == nil {
			t.Errorf("ParseRemap(%q) accepted", bad)
		}
	}
	if r, err := ParseRemap(""); err != nil || len(r) != 0 {
		t.Errorf("empty remap: %v %v", r, err)
	}
}

func TestTerminationMessage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "termination-log")
	if err := TerminationMessage(p, "x", false); err == nil {
		t.Error("created the file with create false")
	}
	if err := TerminationMessage(p, strings.Repeat("x", 10000), true); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if len(data) != MaxTerminationMessage {
		t.Errorf("wrote %d bytes, want %d", len(data), MaxTerminationMessage)
	}
	if err := TerminationMessage(p, "short", false); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); string(data) != "short" {
		t.Errorf("not truncated before writing: %q", data)
	}
	if err := TerminationMessage(filepath.Join(t.TempDir(), "missing", "x"), "m", true); err == nil {
		t.Error("no error for an unwritable path")
	}
	if err := TerminationMessage("off", "m", true); err != nil {
		t.Errorf("off: %v", err)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Proc
		ok   bool
	}{
		{"12 (sh) S 1 12 12 0 -1", Proc{12, 1, 12, 'S'}, true},
		{"40 (a b) c)) Z 12 7 7 0", Proc{40, 12, 7, 'Z'}, true},
		{"7 () R 0 0 0", Proc{7, 0, 0, 'R'}, true},
		{"x (sh) S 1 1", Proc{}, false},
		{"12 (sh S 1 12", Proc{}, false},
		{"12 (sh) S", Proc{}, false},
		{"", Proc{}, false},
	} {
		got, err := ParseStat([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStat(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("12 (sh) S 1 12 12 0 -1"))
	f.Add([]byte("40 (a b) c)) Z 12 7 7 0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseStat(data)
		if err == nil && p.Pid < 0 && !strings.Contains(string(data), "-") {
			t.Errorf("negative pid from %q", data)
		}
	})
}

func TestDescendants(t *testing.T) {
	fsys := fstest.MapFS{
		"1/stat":   {Data: []byte("1 (herd) S 0 1 1")},
		"10/stat":  {Data: []byte("10 (worker) S 1 10 10")},
		"11/stat":  {Data: []byte("11 (child) S 10 10 10")},
		"12/stat":  {Data: []byte("12 (daemon) S 11 12 12")},
		"13/stat":  {Data: []byte("13 (zombie) Z 10 10 10")},
		"20/stat":  {Data: []byte("20 (injected) S 0 20 20")},
		"30/stat":  {Data: []byte("31 (mismatch) S 1 1 1")},
		"self":     {Data: []byte("1")},
		"99/other": {Data: []byte("x")},
	}
	procs, err := ReadProcs(fsys)
	if err != nil {
		t.Fatal(err)
	}
	pids := func(ps []Proc) (out []int) {
		for _, p := range ps {
			out = append(out, p.Pid)
		}
		return out
	}
	if got := pids(procs); !reflect.DeepEqual(got, []int{1, 10, 11, 12, 13, 20}) {
		t.Errorf("ReadProcs: %v", got)
	}
	if got := pids(Descendants(procs, 1, false)); !reflect.DeepEqual(got, []int{10, 11, 12}) {
		t.Errorf("descendants of 1: %v", got)
	}
	if got := pids(Descendants(procs, 1, true)); !reflect.DeepEqual(got, []int{10, 11, 12, 20}) {
		t.Errorf("everyone but 1: %v", got)
	}
	if got := pids(Descendants(procs, 10, false)); !reflect.DeepEqual(got, []int{11, 12}) {
		t.Errorf("descendants of 10: %v", got)
	}
}

func TestSignalSet(t *testing.T) {
	if got := SignalSet(0); got != "" {
		t.Errorf("SignalSet(0) = %q", got)
	}
	m := uint64(1)<<(unix.SIGHUP-1) | 1<<(unix.SIGINT-1) | 1<<31 | 1<<33 | 1<<63
	if got, want := SignalSet(m), "HUP,INT,32,RTMIN+0,RTMIN+30"; got != want {
		t.Errorf("SignalSet(%x) = %q, want %q", m, got, want)
	}
}
