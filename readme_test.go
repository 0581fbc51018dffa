package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of README.md")

const (
	tableBegin = "<!-- settings:begin -->\n"
	tableEnd   = "<!-- settings:end -->"
)

// The README's table of settings is generated from Config; run
// go test -run TestREADMESettings -update . after changing a setting.
func TestREADMESettings(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	b := strings.Index(text, tableBegin)
	e := strings.Index(text, tableEnd)
	if b < 0 || e < b {
		t.Fatal("README.md lacks the settings markers")
	}
	want := text[:b+len(tableBegin)] + MarkdownTable() + text[e:]
	if want == text {
		return
	}
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("README.md's settings table is out of date: go test -run TestREADMESettings -update .")
}
