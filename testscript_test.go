package main

import (
	"os"
	"strings"
	"testing"
)

// Every go test that test.sh runs writes its events for the totals and
// shows them through testtotals, and the totals are printed on exit.
func TestTestScriptTotals(t *testing.T) {
	data, err := os.ReadFile("test.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Commands with their continuation lines (ending in | or \) joined.
	var cmds []string
	cur := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		cur += line + " "
		if !strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\`) {
			cmds = append(cmds, cur)
			cur = ""
		}
	}
	runs := 0
	for _, c := range cmds {
		if !strings.Contains(c, "go test ") || strings.Contains(c, "go test -list") {
			continue
		}
		runs++
		if !strings.Contains(c, "go test -json ") || !strings.Contains(c, `| tee "$results/`) || !strings.Contains(c, `| "$totals"`) {
			t.Errorf("test.sh: %s: want go test -json ... | tee \"$results/NAME.json\" | \"$totals\"", strings.TrimSpace(c))
		}
	}
	if runs < 4 {
		t.Errorf("test.sh: %d go test runs found, want the wasm, race, deploy and fuzz runs", runs)
	}
	for _, want := range []string{"set -euo pipefail", "trap print_totals EXIT", `go build -o "$results/testtotals" ./internal/testtotals`, `-sum "${files[@]}"`, `exit "$rc"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("test.sh lacks %q", want)
		}
	}
}
