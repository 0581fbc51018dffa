package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream writes events as go test -json does, one JSON object a line; a
// string that does not start with "{" is written as it is.
func stream(t *testing.T, events ...any) string {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		if s, ok := e.(string); ok {
			b.WriteString(s)
			continue
		}
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.String()
}

func out(pkg, test, text string) event {
	return event{Action: "output", Package: pkg, Test: test, Output: text}
}

func act(action, pkg, test string) event {
	return event{Action: action, Package: pkg, Test: test}
}

// A passing package, a failing one with a failed subtest, a test that never
// ended, a build failure and a line that is not an event.
func sample(t *testing.T) string {
	return stream(t,
		act("start", "a", ""),
		act("run", "a", "TestOK"), out("a", "TestOK", "=== RUN   TestOK\n"), out("a", "TestOK", "    a_test.go:3: quiet\n"),
		out("a", "TestOK", "--- PASS: TestOK (0.00s)\n"), act("pass", "a", "TestOK"),
		out("a", "TestSkip", "=== RUN   TestSkip\n"), out("a", "TestSkip", "    a_test.go:4: no root\n"),
		out("a", "TestSkip", "--- SKIP: TestSkip (0.00s)\n"), act("skip", "a", "TestSkip"),
		out("a", "", "PASS\n"), out("a", "", "ok  \ta\t0.01s\n"), act("pass", "a", ""),

		out("b", "TestSub", "=== RUN   TestSub\n"),
		out("b", "TestSub/x", "=== RUN   TestSub/x\n"), out("b", "TestSub/x", "--- PASS: TestSub/x (0.00s)\n"), act("pass", "b", "TestSub/x"),
		out("b", "TestSub/y", "=== RUN   TestSub/y\n"), out("b", "TestSub/y", "    b_test.go:9: boom\n"),
		out("b", "TestSub/y", "--- FAIL: TestSub/y (0.00s)\n"), act("fail", "b", "TestSub/y"),
		out("b", "TestSub", "--- FAIL: TestSub (0.00s)\n"), act("fail", "b", "TestSub"),
		out("b", "", "FAIL\n"), out("b", "", "FAIL\tb\t0.02s\n"), act("fail", "b", ""),

		out("c", "TestHang", "=== RUN   TestHang\n"), out("c", "TestHang", "panic: test timed out after 1s\n"),
		out("c", "", "FAIL\tc\t1.00s\n"), act("fail", "c", ""),

		event{Action: "build-output", Output: "# d\n"}, event{Action: "build-output", Output: "d.go:2:12: undefined: x\n"},
		event{Action: "build-fail"},
		out("d", "", "FAIL\td [build failed]\n"), act("fail", "d", ""),
		"go: downloading example.com/m v1.0.0\n",
		act("skip", "e", ""), out("e", "", "?   \te\t[no test files]\n"),
	)
}

func TestFilter(t *testing.T) {
	var got strings.Builder
	if err := filter(strings.NewReader(sample(t)), &got); err != nil {
		t.Fatal(err)
	}
	want := `ok  	a	0.01s
--- FAIL: TestSub (0.00s)
    --- FAIL: TestSub/y (0.00s)
        b_test.go:9: boom
FAIL
FAIL	b	0.02s
panic: test timed out after 1s
FAIL	c	1.00s
# d
d.go:2:12: undefined: x
FAIL	d [build failed]
go: downloading example.com/m v1.0.0
?   	e	[no test files]
`
	if got.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", got.String(), want)
	}
}

// A stream cut short still shows what its running tests said.
func TestFilterCutShort(t *testing.T) {
	var got strings.Builder
	in := stream(t, out("a", "TestX", "=== RUN   TestX\n"), out("a", "TestX", "    x_test.go:1: half"))
	if err := filter(strings.NewReader(in), &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "    x_test.go:1: half" {
		t.Errorf("text %q", got.String())
	}
}

func TestSum(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	two := filepath.Join(dir, "two.json")
	if err := os.WriteFile(one, []byte(sample(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second run: a fuzz target, and noise on its stderr.
	second := stream(t, "fuzz: elapsed: 0s\n", "{not json\n",
		out("f", "FuzzX", "=== RUN   FuzzX\n"), act("pass", "f", "FuzzX"), act("pass", "f", ""))
	if err := os.WriteFile(two, []byte(second), 0o644); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	if err := sumFiles([]string{one, two}, &got); err != nil {
		t.Fatal(err)
	}
	want := "test totals: 3 passed, 2 failed, 1 skipped (tests and subtests); 5 package runs, 3 failed\n"
	if got.String() != want {
		t.Errorf("got %q, want %q", got.String(), want)
	}
	if err := sumFiles([]string{filepath.Join(dir, "missing.json")}, &got); err == nil {
		t.Error("a missing file was summed")
	}
}
