package main

import (
	"io"
	"strings"
)

// testOutput is what a running test printed, kept until it ends: head
// holds its "--- PASS/FAIL/SKIP" lines, body the rest (its log, a panic,
// the output of its failed subtests) without the "=== RUN" lines -v adds.
type testOutput struct {
	head, body []string
}

func (o *testOutput) text() string { return strings.Join(o.head, "") + strings.Join(o.body, "") }

// textWriter rebuilds go test's output without -v from events.
type textWriter struct {
	w       io.Writer
	running map[string]*testOutput // by package and test
	order   []string               // keys of running, as they started
}

func testKey(pkg, test string) string { return pkg + "\x00" + test }

// filter copies the stream on r to w as text.
func filter(r io.Reader, w io.Writer) error {
	tw := &textWriter{w: w, running: map[string]*testOutput{}}
	err := readEvents(r, func(line string, e event, ok bool) error {
		if !ok {
			return tw.print(line)
		}
		return tw.event(e)
	})
	if err != nil {
		return err
	}
	return tw.flush("") // a stream cut short: show what the tests said
}

func (tw *textWriter) print(s string) error {
	_, err := io.WriteString(tw.w, s)
	return err
}

// event handles one event.
func (tw *textWriter) event(e event) error {
	switch {
	case e.Action == "build-output":
		return tw.print(e.Output)
	case e.Test == "" && e.Action == "output":
		if e.Output == "PASS\n" { // go test ./... shows a package's ok line alone
			return nil
		}
		if strings.HasPrefix(e.Output, "FAIL") {
			// A test that never ended (a timeout, a crash): its output
			// says why, before the package's FAIL lines.
			if err := tw.flush(e.Package); err != nil {
				return err
			}
		}
		return tw.print(e.Output)
	case e.Test == "" && e.Action == "fail":
		return tw.flush(e.Package)
	case e.Test == "":
		return nil
	}
	key := testKey(e.Package, e.Test)
	o := tw.running[key]
	if o == nil {
		o = &testOutput{}
		tw.running[key] = o
		tw.order = append(tw.order, key)
	}
	switch e.Action {
	case "output":
		switch {
		case strings.HasPrefix(e.Output, "=== "):
		case strings.HasPrefix(e.Output, "--- "):
			o.head = append(o.head, e.Output)
		default:
			o.body = append(o.body, e.Output)
		}
	case "pass", "skip":
		tw.end(key)
	case "fail":
		tw.end(key)
		// A failed subtest is shown under its parent's --- FAIL line.
		if i := strings.LastIndexByte(e.Test, '/'); i > 0 {
			if p := tw.running[testKey(e.Package, e.Test[:i])]; p != nil {
				p.body = append(p.body, indent(o.text()))
				return nil
			}
		}
		return tw.print(o.text())
	}
	return nil
}

// end forgets the test with key.
func (tw *textWriter) end(key string) {
	delete(tw.running, key)
	for i, k := range tw.order {
		if k == key {
			tw.order = append(tw.order[:i], tw.order[i+1:]...)
			break
		}
	}
}

// flush prints and forgets the tests of pkg still running, all of them
// for "", in the order they started.
func (tw *textWriter) flush(pkg string) error {
	var rest []string
	for _, key := range tw.order {
		if pkg != "" && !strings.HasPrefix(key, testKey(pkg, "")) {
			rest = append(rest, key)
			continue
		}
		if err := tw.print(tw.running[key].text()); err != nil {
			return err
		}
		delete(tw.running, key)
	}
	tw.order = rest
	return nil
}

// indent shifts every line of s by four spaces, as go test shows a
// subtest under its parent.
func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "    " + l
		}
	}
	return strings.Join(lines, "")
}
