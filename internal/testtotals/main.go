// Command testtotals reads the event streams of go test -json, for herd's
// test command (test.sh).
//
//	go test -json ./... | tee run.json | testtotals
//	testtotals -sum run.json other.json ...
//
// Without arguments it turns the stream on stdin back into the text go test
// prints without -v: each package's ok or FAIL line, the output of failed
// tests (passed and skipped tests stay quiet), build errors, and any line
// that is not an event as it is. With -sum it prints one line that counts,
// over every file, the tests (top-level tests and subtests alike) that
// passed, failed and were skipped, and the package runs and how many of
// them failed:
//
//	test totals: 369 passed, 1 failed, 2 skipped (tests and subtests); 5 package runs, 1 failed
//
// Its exit code is 0 unless it cannot read or write; whether the tests
// passed is go test's own exit code.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is what this reads of one line of go test -json
// (cmd/test2json); build output has an ImportPath instead of a Package.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	var err error
	switch {
	case len(os.Args) == 1:
		err = filter(os.Stdin, os.Stdout)
	case os.Args[1] == "-sum" && len(os.Args) > 2:
		err = sumFiles(os.Args[2:], os.Stdout)
	default:
		err = errors.New("usage: testtotals < go-test.json, or testtotals -sum FILE...")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testtotals:", err)
		os.Exit(2)
	}
}

// readEvents calls fn for every line of r: with the event, or with ok
// false for a line that is not one (the go command's own messages).
func readEvents(r io.Reader, fn func(line string, e event, ok bool) error) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			var e event
			ok := strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &e) == nil && e.Action != ""
			if ferr := fn(line, e, ok); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Totals counts test and package results.
type Totals struct {
	Passed, Failed, Skipped  int // tests and subtests
	Packages, PackagesFailed int // package runs
}

// Add counts one event.
func (t *Totals) Add(e event) {
	if e.Test == "" {
		switch e.Action {
		case "pass":
			t.Packages++
		case "fail":
			t.Packages++
			t.PackagesFailed++
		}
		return
	}
	switch e.Action {
	case "pass":
		t.Passed++
	case "fail":
		t.Failed++
	case "skip":
		t.Skipped++
	}
}

func (t Totals) String() string {
	return fmt.Sprintf("test totals: %d passed, %d failed, %d skipped (tests and subtests); %d package runs, %d failed",
		t.Passed, t.Failed, t.Skipped, t.Packages, t.PackagesFailed)
}

// sumFiles prints the totals of the streams saved in files.
func sumFiles(files []string, w io.Writer) error {
	var t Totals
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = readEvents(f, func(_ string, e event, ok bool) error {
			if ok {
				t.Add(e)
			}
			return nil
		})
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	_, err := fmt.Fprintln(w, t)
	return err
}
