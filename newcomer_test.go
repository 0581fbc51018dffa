package main

import (
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeSection is the text of the README's "## title" section, up to the
// next section of the same level.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	b := strings.Index(text, "\n## "+title+"\n")
	if b < 0 {
		t.Fatalf("README.md has no section %q", title)
	}
	rest := text[b+1:]
	if e := strings.Index(rest[1:], "\n## "); e >= 0 {
		rest = rest[:e+2]
	}
	return rest
}

// The README's first section tells a newcomer what the two commands cost
// and do: the demo's first compilation, its ports (the ones herd demo
// uses), how to stop it; how long test.sh takes, that it needs root, and
// everything it installs (the Debian packages read from test.sh itself).
func TestREADMETwoCommands(t *testing.T) {
	sec := readmeSection(t, "Two commands")
	_, probePort, err := net.SplitHostPort(string(Defaults().HealthAddr))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"go run . demo", "about a minute",
		"port 8080", "port " + probePort, // herd demo listens on :8080 unless HERD_LISTEN says otherwise
		"Ctrl-C", "SIGINT", "graceful",
		"./test.sh", "several minutes", "about 7 on a 2-CPU machine", "needs root",
		"`npm ci`", "`helm` with `go install`", "test totals:",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("README.md's \"Two commands\" does not say %q", want)
		}
	}

	script, err := os.ReadFile("test.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^for tool in ([^;]+); do`).FindStringSubmatch(string(script))
	if m == nil {
		t.Fatal("test.sh: no `for tool in ...` list of what it installs")
	}
	for _, tp := range strings.Fields(m[1]) {
		_, pkg, ok := strings.Cut(tp, ":")
		if !ok {
			t.Fatalf("test.sh: %q is not tool:package", tp)
		}
		if !strings.Contains(sec, "`"+pkg+"`") {
			t.Errorf("README.md's \"Two commands\" does not list %s, which test.sh installs with apt-get", pkg)
		}
	}
}
