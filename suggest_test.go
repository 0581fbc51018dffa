package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"workers", "workers", 0},
		{"wokers", "workers", 1},   // a letter left out
		{"workerss", "workers", 1}, // one too many
		{"wrokers", "workers", 1},  // two letters swapped
		{"warkers", "workers", 1},  // one replaced
		{"", "uid", 3},
		{"kitten", "sitting", 3},
		{"é", "e", 1}, // characters, not bytes
	} {
		if got := editDistance([]rune(c.a), []rune(c.b)); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := editDistance([]rune(c.b), []rune(c.a)); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.b, c.a, got, c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, c := range []struct {
		kind, name, want string
	}{
		{"flag", "wokers", "--workers"},
		{"flag", "wrokers", "--workers"},
		{"flag", "shutdown-timout", "--shutdown-timeout"},
		{"flag", "shutdown_timeout", "--shutdown-timeout"},
		{"flag", "HERD_WORKERS", "--workers"},
		{"flag", "confg", "--config"},
		{"flag", "gd", "--gid"},
		{"flag", "bogus", ""},
		{"flag", "x", ""},
		{"flag", "no-such-flag", ""},
		{"flag", "wkrs", ""}, // three edits from workers: too far for 4 letters
		{"variable", "HERD_WOKERS", "HERD_WORKERS"},
		{"variable", "HERD_WORKER", "HERD_WORKERS"},
		{"variable", "HERD_RESTRT", "HERD_RESTART"},
		{"variable", "HERD_CONFG", "HERD_CONFIG"},
		{"variable", "HERD_SHUTDOWN_TIMOUT", "HERD_SHUTDOWN_TIMEOUT"},
		{"variable", "HERD_XYZZY", ""},
		{"variable", "HERD_FOO", ""},
		{"key", "wokers", "workers"},
		{"key", "worker", "workers"},
		{"key", "shutdown-timeout", "shutdown_timeout"},
		{"key", "HERD_LOG_LEVEL", "log_level"},
		{"key", "colour", ""},
		{"key", strings.Repeat("w", 1<<20), ""}, // a long name is not compared at all
	} {
		var got string
		switch c.kind {
		case "flag":
			got = suggestFlag(c.name)
		case "variable":
			got = suggestVariable(c.name)
		case "key":
			got = suggestKey(c.name)
		}
		if got != c.want {
			t.Errorf("%s %q: suggested %q, want %q", c.kind, c.name, got, c.want)
		}
	}
}

// An unknown flag is one usage error naming the flag and the setting it
// most likely meant; one nothing is near is named alone.
func TestUnknownFlagSuggestion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--wokers", "2", "--", "true"}, "unknown flag --wokers; did you mean --workers?"},
		{[]string{"-wokers=2", "true"}, "unknown flag --wokers; did you mean --workers?"},
		{[]string{"--shutdown-timout", "5s", "true"}, "unknown flag --shutdown-timout; did you mean --shutdown-timeout?"},
		{[]string{"--bogus", "true"}, "unknown flag --bogus"},
		{[]string{"--" + strings.Repeat("x", 100), "true"}, `unknown flag "--` + strings.Repeat("x", 62) + `…" (102 bytes)`},
	} {
		_, err := ParseArgs(c.args)
		if _, ok := err.(*UsageError); !ok {
			t.Fatalf("%q: error %v (%T), want a *UsageError", c.args, err, err)
		}
		if err.Error() != c.want {
			t.Errorf("%q: error %q, want %q", c.args, err, c.want)
		}
		if l := usageLine(err); strings.Contains(l, "\n") || !strings.HasPrefix(l, "herd: "+c.want+" (usage: ") {
			t.Errorf("%q: herd prints %q, want one line", c.args, l)
		}
	}
	// Other errors of the flag package are left as they are.
	if _, err := ParseArgs([]string{"--workers"}); err == nil || !strings.Contains(err.Error(), "flag needs an argument") {
		t.Errorf("--workers without a value: %v", err)
	}
}

// An unknown HERD_* variable's warning says which setting was meant.
func TestUnknownVariableSuggestion(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	warnUnknownVariables(log, []string{"HERD_WOKERS=2", "HERD_XYZZY=1", "HERD_WORKERS=2", "HERD_PORT=80"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d warnings, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "variable=HERD_WOKERS") || !strings.Contains(lines[0], `hint="did you mean HERD_WORKERS?"`) {
		t.Errorf("warning %q lacks the suggestion", lines[0])
	}
	if !strings.Contains(lines[1], "variable=HERD_XYZZY") || strings.Contains(lines[1], "did you mean") {
		t.Errorf("warning %q: want no suggestion", lines[1])
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "unknown variable ignored; herd config lists the settings") {
			t.Errorf("warning %q lost its level or message", l)
		}
	}
}

// An unknown key of the file is refused, in one line that suggests the
// nearest key and still lists the known ones.
func TestUnknownKeySuggestion(t *testing.T) {
	t.Setenv("HERD_CONFIG", writeFile(t, "wokers: 2\n"))
	msg := wantConfigError(t, nil, []string{`unknown key "wokers" (did you mean workers?); known keys: workers, `}, nil)
	if strings.Count(msg, "did you mean") != 1 {
		t.Errorf("error %q", msg)
	}
	t.Setenv("HERD_CONFIG", writeFile(t, "colour: blue\n"))
	wantConfigError(t, nil, []string{`unknown key "colour"; known keys: workers, `}, []string{"did you mean"})
}
