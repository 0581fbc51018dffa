package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	initproc "github.com/herd-sh/herd/init"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herd.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Flag beats variable beats file beats default, setting by setting.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "workers: 3\nrestart: always\nshutdown_timeout: 7s\nlog_format: json\n")
	t.Setenv("HERD_CONFIG", file)
	t.Setenv("HERD_RESTART", "never")
	t.Setenv("HERD_SHUTDOWN_TIMEOUT", "9s")
	l, err := LoadConfig([]flagValue{{"shutdown-timeout", "11s"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Workers != (Workers{N: 3}) || l.Sources["HERD_WORKERS"] != FromFile {
		t.Errorf("workers %v from %s, want 3 from the file", l.Workers, l.Sources["HERD_WORKERS"])
	}
	if l.Restart != "never" || l.Sources["HERD_RESTART"] != FromEnv {
		t.Errorf("restart %s from %s, want never from env", l.Restart, l.Sources["HERD_RESTART"])
	}
	if time.Duration(l.ShutdownTimeout) != 11*time.Second || l.Sources["HERD_SHUTDOWN_TIMEOUT"] != FromFlag {
		t.Errorf("shutdown timeout %v from %s, want 11s from the flag", l.ShutdownTimeout.String(), l.Sources["HERD_SHUTDOWN_TIMEOUT"])
	}
	if l.LogFormat != "json" {
		t.Errorf("log format %s, want json from the file", l.LogFormat)
	}
	if l.LogLevel != "info" || l.Sources["HERD_LOG_LEVEL"] != FromDefault {
		t.Errorf("log level %s from %s, want the default", l.LogLevel, l.Sources["HERD_LOG_LEVEL"])
	}
	// --config beats HERD_CONFIG.
	other := writeFile(t, "workers: 5\n")
	l, err = LoadConfig([]flagValue{{"config", other}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Workers.N != 5 || l.File != other {
		t.Errorf("--config: workers %v from %s, want 5 from %s", l.Workers, l.File, other)
	}
}

func TestConfigDefaults(t *testing.T) {
	l, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Config, Defaults()) {
		t.Errorf("with nothing set: %+v, want the defaults %+v", l.Config, Defaults())
	}
	// No fallback to unprefixed names (envconfig does that for plain tags).
	t.Setenv("WORKERS", "7")
	t.Setenv("RESTART", "never")
	if l, err = LoadConfig(nil); err != nil || !l.Workers.Auto || l.Restart != "on-failure" {
		t.Errorf("unprefixed variables were read: %+v %v", l.Config, err)
	}
}

// Every bad value gives an error that names the setting as the user wrote
// it, repeats the value and says what is allowed.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []flagValue
		file  string
		want  []string
	}{
		{"workers word", map[string]string{"HERD_WORKERS": "abc"}, nil, "", []string{"HERD_WORKERS", `"abc"`, "auto or a whole number"}},
		{"workers zero", map[string]string{"HERD_WORKERS": "0"}, nil, "", []string{"HERD_WORKERS", `"0"`, "1 to"}},
		{"restart", map[string]string{"HERD_RESTART": "sometimes"}, nil, "", []string{"HERD_RESTART", "sometimes", "on-failure, always, never"}},
		{"duration", map[string]string{"HERD_SHUTDOWN_TIMEOUT": "-1s"}, nil, "", []string{"HERD_SHUTDOWN_TIMEOUT", "-1s", "duration"}},
		{"signal", map[string]string{"HERD_WORKER_STOP_SIGNAL": "KILL"}, nil, "", []string{"HERD_WORKER_STOP_SIGNAL", "KILL", "catchable"}},
		{"remap", map[string]string{"HERD_EXIT_REMAP": "143:0"}, nil, "", []string{"HERD_EXIT_REMAP", "143:0", "FROM=TO"}},
		{"remap range", map[string]string{"HERD_EXIT_REMAP": "300=0"}, nil, "", []string{"HERD_EXIT_REMAP", "0..255"}},
		{"bool", map[string]string{"HERD_SUBREAPER": "maybe"}, nil, "", []string{"HERD_SUBREAPER", "maybe", "true or false"}},
		{"log format", map[string]string{"HERD_LOG_FORMAT": "xml"}, nil, "", []string{"HERD_LOG_FORMAT", "xml", "text or json"}},
		{"log level", map[string]string{"HERD_LOG_LEVEL": "loud"}, nil, "", []string{"HERD_LOG_LEVEL", "loud", "debug, info"}},
		{"flag", nil, []flagValue{{"workers", "-3"}}, "", []string{"--workers", "-3", "HERD_WORKERS"}},
		{"file value", nil, nil, "workers: many\n", []string{"workers", "many", "HERD_WORKERS", "herd.yaml"}},
		{"file unknown key", nil, nil, "worker: 2\n", []string{`unknown key "worker"`, "workers"}},
		{"file duplicate key", nil, nil, "workers: 2\nworkers: 3\n", []string{"herd.yaml", "workers"}},
		{"file list", nil, nil, "workers: [1, 2]\n", []string{"workers", "single value"}},
		{"file not yaml", nil, nil, "workers: [\n", []string{"herd.yaml"}},
		{"backoff order", map[string]string{"HERD_BACKOFF_MIN": "5s", "HERD_BACKOFF_MAX": "1s"}, nil, "", []string{"HERD_BACKOFF_MAX", "HERD_BACKOFF_MIN"}},
		{"cpu request", map[string]string{"HERD_CPU_REQUEST": "two"}, nil, "", []string{"HERD_CPU_REQUEST", "two", "millicores"}},
		{"cpu request negative", map[string]string{"HERD_CPU_REQUEST": "-500m"}, nil, "", []string{"HERD_CPU_REQUEST", "-500m"}},
		{"rounding", map[string]string{"HERD_CPU_ROUNDING": "up"}, nil, "", []string{"HERD_CPU_ROUNDING", "up", "nearest, floor or ceil"}},
		{"min workers", map[string]string{"HERD_MIN_WORKERS": "-1"}, nil, "", []string{"HERD_MIN_WORKERS", "-1", "whole number"}},
		{"min above max", map[string]string{"HERD_MIN_WORKERS": "4", "HERD_MAX_WORKERS": "2"}, nil, "", []string{"HERD_MIN_WORKERS", "HERD_MAX_WORKERS"}},
		{"scale down checks", map[string]string{"HERD_SCALE_DOWN_CHECKS": "0"}, nil, "", []string{"HERD_SCALE_DOWN_CHECKS", "at least 1"}},
		{"reserve", map[string]string{"HERD_CPU_RESERVE": "lots"}, nil, "", []string{"HERD_CPU_RESERVE", "lots"}},
		{"memory limit", map[string]string{"HERD_MEMORY_LIMIT": "lots"}, nil, "", []string{"HERD_MEMORY_LIMIT", "lots", "256Mi"}},
		{"memory limit unit", map[string]string{"HERD_MEMORY_LIMIT": "1GB"}, nil, "", []string{"HERD_MEMORY_LIMIT", "1GB", `unknown suffix "GB"`, "Gi"}},
		{"memory limit milli", nil, []flagValue{{"memory-limit", "500m"}}, "", []string{"--memory-limit", "500m", "thousandths"}},
		{"memory limit fraction", nil, nil, "memory_limit: 1.5\n", []string{"memory_limit", "1.5", "whole number of bytes"}},
		{"missing file", map[string]string{"HERD_CONFIG": "/nonexistent/herd.yaml"}, nil, "", []string{"HERD_CONFIG", "/nonexistent/herd.yaml"}},
		{"watermark word", map[string]string{"HERD_MEMORY_HIGH": "lots"}, nil, "", []string{"HERD_MEMORY_HIGH", "lots", "90%", "230Mi", "off"}},
		{"watermark above 100%", map[string]string{"HERD_MEMORY_HIGH": "150%"}, nil, "", []string{"HERD_MEMORY_HIGH", "150%", "at most 100%"}},
		{"watermarks in order", map[string]string{"HERD_MEMORY_HIGH": "95%", "HERD_MEMORY_CRITICAL": "90%"}, nil, "", []string{"HERD_MEMORY_CRITICAL", "90%", "above", "HERD_MEMORY_HIGH"}},
		{"watermark amounts in order", nil, nil, "memory_high: 200Mi\nmemory_critical: 100Mi\n", []string{"memory_critical", "100Mi", "above", "memory_high"}},
		{"worker max memory", map[string]string{"HERD_WORKER_MAX_MEMORY": "1GB"}, nil, "", []string{"HERD_WORKER_MAX_MEMORY", "1GB", "Gi"}},
		{"max requests under none", map[string]string{"HERD_MAX_REQUESTS": "1000", "HERD_SCHED_POLICY": "none"}, nil, "", []string{"HERD_MAX_REQUESTS", "HERD_SCHED_POLICY=rr", "none", "cannot count"}},
		{"max requests negative", map[string]string{"HERD_MAX_REQUESTS": "-5"}, nil, "", []string{"HERD_MAX_REQUESTS", "-5", "not be negative"}},
		{"jitter alone", map[string]string{"HERD_MAX_REQUESTS_JITTER": "10"}, nil, "", []string{"HERD_MAX_REQUESTS_JITTER", "needs HERD_MAX_REQUESTS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, tc.file))
			}
			_, err := LoadConfig(tc.flags)
			if err == nil {
				t.Fatal("accepted")
			}
			if _, ok := err.(*ConfigError); !ok {
				t.Errorf("error of type %T, want *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestConfigValues(t *testing.T) {
	t.Setenv("HERD_WORKERS", "AUTO")
	t.Setenv("HERD_SHUTDOWN_TIMEOUT", "40")
	t.Setenv("HERD_WORKER_STOP_SIGNAL", "sigquit")
	t.Setenv("HERD_EXIT_REMAP", "143=0, 137=1")
	t.Setenv("HERD_SUBREAPER", "off")
	t.Setenv("HERD_TERMINATION_LOG", "off")
	t.Setenv("HERD_CPU_REQUEST", "2")
	t.Setenv("HERD_CPU_RESERVE", "0.25")
	t.Setenv("HERD_CPU_ROUNDING", "Floor")
	l, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.CPURequest.String() != "2000m" || l.CPUReserve.String() != "250m" || l.CPURounding != "floor" {
		t.Errorf("cpu settings: request %s reserve %s rounding %s", l.CPURequest.String(), l.CPUReserve.String(), l.CPURounding)
	}
	t.Setenv("HERD_CPU_REQUEST", "500")
	if l, err = LoadConfig(nil); err != nil || l.CPURequest != 500 {
		t.Errorf("HERD_CPU_REQUEST=500 (the Downward API's millicores): %v %v", l.CPURequest, err)
	}
	for in, want := range map[string]string{"268435456": "256Mi", "256Mi": "256Mi", "1G": "1G", "0": "", "300000001": "300000001"} {
		t.Setenv("HERD_MEMORY_LIMIT", in)
		if l, err = LoadConfig(nil); err != nil || l.MemoryLimit.String() != want {
			t.Errorf("HERD_MEMORY_LIMIT=%s: %q, %v; want %q", in, l.MemoryLimit.String(), err, want)
		}
	}
	if !l.Workers.Auto || time.Duration(l.ShutdownTimeout) != 40*time.Second || l.StopSignal.String() != "QUIT" ||
		l.ExitRemap.String() != "137=1,143=0" || bool(l.Subreaper) || l.TerminationLog != "off" {
		t.Errorf("parsed %+v", l.Config)
	}
}

func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables([]string{
		"HERD_WORKER=4", "HERD_WORKERS=2", "HERD_PORT=tcp://10.0.0.1:80", "HERD_PORT_80_TCP_ADDR=10.0.0.1",
		"HERD_SERVICE_HOST=10.0.0.1", "HERD_SERVICE_PORT=80", "HERD_CONFIG=/x", "HERD_WORKER_ID=1", "PATH=/bin", "HERD_RESTRT=never",
	})
	if want := []string{"HERD_RESTRT", "HERD_WORKER"}; !reflect.DeepEqual(got, want) {
		t.Errorf("unknown variables %v, want %v", got, want)
	}
}

// No setting may use a name Kubernetes injects for a Service called herd.
func TestNoServiceLinkNames(t *testing.T) {
	for _, s := range settings {
		if s.env == "HERD_PORT" || strings.HasPrefix(s.env, "HERD_PORT_") || strings.HasPrefix(s.env, "HERD_SERVICE_") {
			t.Errorf("setting %s collides with Kubernetes service links", s.env)
		}
		if !strings.HasPrefix(s.env, "HERD_") || s.desc == "" {
			t.Errorf("setting %q lacks its HERD_ name or its description", s.env)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mode    Mode
		command []string
		flags   int
		usage   bool
	}{
		{args: []string{"node", "server.js"}, command: []string{"node", "server.js"}},
		{args: []string{"--", "node", "--inspect"}, command: []string{"node", "--inspect"}},
		{args: []string{"--workers", "2", "node", "--workers", "3"}, command: []string{"node", "--workers", "3"}, flags: 1},
		{args: []string{"--workers=2", "--subreaper", "--", "-prog"}, command: []string{"-prog"}, flags: 2},
		{args: []string{"version"}, mode: ModeVersion},
		{args: []string{"--", "version"}, command: []string{"version"}},
		{args: []string{"config"}, mode: ModeConfig},
		{args: []string{"cpus"}, mode: ModeCPUs},
		{args: []string{"cpus", "--json"}, mode: ModeCPUs},
		{args: []string{"cpus", "--yaml"}, usage: true},
		{args: []string{"memory"}, mode: ModeMemory},
		{args: []string{"memory", "--json"}, mode: ModeMemory},
		{args: []string{"memory", "-json"}, mode: ModeMemory},
		{args: []string{"memory", "--yaml"}, usage: true},
		{args: []string{"--", "memory"}, command: []string{"memory"}},
		{args: []string{"demo"}, mode: ModeDemo},
		{args: []string{"--help"}, mode: ModeHelp},
		{args: []string{"-h"}, mode: ModeHelp},
		{args: nil, usage: true},
		{args: []string{"--"}, usage: true},
		{args: []string{"--bogus", "x"}, usage: true},
		{args: []string{"--workers"}, usage: true},
		{args: []string{"version", "x"}, usage: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			inv, err := ParseArgs(tc.args)
			if tc.usage {
				if _, ok := err.(*UsageError); !ok {
					t.Fatalf("want a usage error, got %v, %+v", err, inv)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inv.Mode != tc.mode || !reflect.DeepEqual(inv.Command, tc.command) || len(inv.Flags) != tc.flags {
				t.Errorf("got mode %d command %q flags %v", inv.Mode, inv.Command, inv.Flags)
			}
		})
	}
}

// wantConfigError loads the configuration and checks that it is refused with
// one line that mentions every string of want and none of avoid.
func wantConfigError(t *testing.T, flags []flagValue, want, avoid []string) string {
	t.Helper()
	_, err := LoadConfig(flags)
	if err == nil {
		t.Fatal("accepted")
	}
	if _, ok := err.(*ConfigError); !ok {
		t.Errorf("error of type %T, want *ConfigError", err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	for _, a := range avoid {
		if strings.Contains(msg, a) {
			t.Errorf("error %q mentions %q", msg, a)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	return msg
}

// The configuration file is read through a limit: a file above 1 MiB, or a
// device that never ends, is refused, naming how the file was given.
func TestConfigFileSize(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	// Valid YAML (comments) of 1 MiB and one byte: only the size is wrong.
	line := "# " + strings.Repeat("x", 61) + "\n"
	text := strings.Repeat(line, MaxConfigFile/len(line)+1)[:MaxConfigFile] + "\n"
	if err := os.WriteFile(big, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HERD_CONFIG", big)
	wantConfigError(t, nil, []string{`invalid HERD_CONFIG="` + big + `"`, "larger than 1 MiB", "1048576 bytes"}, nil)

	// Exactly the limit is read.
	if err := os.WriteFile(big, []byte(text[:MaxConfigFile]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(nil); err != nil {
		t.Errorf("a file of exactly 1 MiB: %v", err)
	}

	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	wantConfigError(t, []flagValue{{"config", "/dev/zero"}}, []string{`invalid --config="/dev/zero"`, "larger than 1 MiB"}, []string{"HERD_CONFIG"})
	t.Setenv("HERD_CONFIG", "/dev/zero")
	wantConfigError(t, nil, []string{`invalid HERD_CONFIG="/dev/zero"`, "larger than 1 MiB"}, nil)
}

// A file that is not text, or not a mapping, gets a message about YAML, not
// about the JSON and Go types the YAML library converts through.
func TestConfigFileNotYAML(t *testing.T) {
	leaks := []string{"JSON", "json", "Go value", "interface", "map["}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"binary", "workers: 2\n\xff\xfe\x00\x01", []string{"line 2, byte offset 11", "0xff", "not UTF-8", "YAML file of key: value lines"}},
		{"latin-1", "listen: :8080 # caf\xe9\n", []string{"line 1, byte offset 19", "0xe9", "not UTF-8"}},
		{"nul", "workers: 2\x00\n", []string{"byte offset 10", "0x00", "control character", "YAML file of key: value lines"}},
		{"string", "just some words\n", []string{"must be a YAML mapping of settings (key: value)", "not a string"}},
		{"list", "- workers\n- 2\n", []string{"must be a YAML mapping of settings (key: value)", "not a list"}},
		{"number", "42\n", []string{"must be a YAML mapping of settings (key: value)", "not a number"}},
		{"boolean", "true\n", []string{"must be a YAML mapping of settings (key: value)", "not a boolean"}},
		{"list key", "? [a]\n: 1\n", []string{"not valid YAML", "key"}},
		{"null key", "~: 1\n", []string{"not valid YAML", "key"}},
		{"syntax", "workers: [\n", []string{"not valid YAML", "line 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.text)
			t.Setenv("HERD_CONFIG", path)
			want := append([]string{`configuration file "` + path + `"`}, tc.want...)
			wantConfigError(t, nil, want, leaks)
		})
	}
	// Nothing set is not an error: an empty file, comments, a document
	// marker, an empty mapping.
	for _, text := range []string{"", "\n", "# nothing yet\n", "---\n", "{}\n"} {
		t.Setenv("HERD_CONFIG", writeFile(t, text))
		l, err := LoadConfig(nil)
		if err != nil {
			t.Errorf("file %q: %v", text, err)
			continue
		}
		if !reflect.DeepEqual(l.Config, Defaults()) {
			t.Errorf("file %q changed settings: %+v", text, l.Config)
		}
	}
}

// Numbers out of range say which way: negative, or too large with the limit.
func TestConfigNumberRange(t *testing.T) {
	for _, tc := range []struct {
		env, val string
		want     []string
	}{
		{"HERD_SHUTDOWN_TIMEOUT", "99999999999", []string{"too large: at most 9223372036 seconds (2562047h47m16s)"}},
		{"HERD_SHUTDOWN_TIMEOUT", "99999999999999999999", []string{"too large: at most 9223372036 seconds"}},
		{"HERD_SHUTDOWN_TIMEOUT", "99999999999h", []string{"too large: at most 2562047h47m16s"}},
		{"HERD_SHUTDOWN_TIMEOUT", "-5", []string{"must not be negative", "duration"}},
		{"HERD_SHUTDOWN_TIMEOUT", "-1m", []string{"must not be negative", "duration"}},
		{"HERD_SHUTDOWN_TIMEOUT", "-99999999999h", []string{"must not be negative"}},
		{"HERD_DISCONNECT_GRACE", "-1s", []string{"must not be negative: auto or a duration"}},
		{"HERD_DISCONNECT_GRACE", "99999999999", []string{"too large: at most 9223372036 seconds"}},
		{"HERD_WORKERS", "10001", []string{"too large: at most 10000"}},
		{"HERD_WORKERS", "99999999999999999999", []string{"too large: at most 10000"}},
		{"HERD_WORKERS", "-2", []string{"must not be negative", "1 to 10000"}},
		{"HERD_WORKERS", "-99999999999999999999", []string{"must not be negative"}},
		{"HERD_MAX_WORKERS", "20000", []string{"too large: at most 10000"}},
		{"HERD_READY_MIN", "-1", []string{"must not be negative", "0 to 10000"}},
		{"HERD_BACKLOG", "99999999999999999999", []string{"too large: at most 10000"}},
		{"HERD_BACKLOG", "-1", []string{"must not be negative"}},
		{"HERD_CPU_REQUEST", "-500m", []string{"must not be negative"}},
		{"HERD_CPU_LIMIT", "99999999999999999999", []string{"too large: at most 9223372036854775807 millicores"}},
		{"HERD_MEMORY_LIMIT", "-256Mi", []string{"must not be negative"}},
		{"HERD_MEMORY_LIMIT", "8Ei", []string{"too large: at most 9223372036854775807 bytes"}},
	} {
		t.Run(tc.env+"="+tc.val, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			avoid := []string{"not negative"}
			if strings.HasPrefix(tc.val, "-") {
				avoid = []string{"too large"}
			}
			want := append([]string{"invalid " + tc.env + `="` + tc.val + `"`}, tc.want...)
			wantConfigError(t, nil, want, avoid)
		})
	}
	// The limits themselves are accepted.
	t.Setenv("HERD_SHUTDOWN_TIMEOUT", "9223372036")
	t.Setenv("HERD_BACKOFF_MAX", "2562047h")
	t.Setenv("HERD_WORKERS", "10000")
	t.Setenv("HERD_READY_MIN", "10000")
	if _, err := LoadConfig(nil); err != nil {
		t.Error(err)
	}
}

// A HERD_LISTEN that is not an address is refused in one line that shows
// the value once, says what is wrong and lists the accepted forms, from
// each source; other mistakes keep their own advice.
func TestListenErrors(t *testing.T) {
	const forms = "; accepted forms: :8080, 0.0.0.0:8080, [::]:8080, tcp4://HOST:PORT, tcp6://HOST:PORT, unix:///PATH (with ?mode=&owner=&group=&name=)"
	for _, c := range []struct {
		name  string
		env   string
		flags []flagValue
		file  string
		want  string
	}{
		{"word", "notaport", nil, "", `invalid HERD_LISTEN="notaport": missing port` + forms},
		{"host alone", "localhost", nil, "", `invalid HERD_LISTEN="localhost": missing port` + forms},
		{"one of two", ":8080,notaport", nil, "", `invalid HERD_LISTEN=":8080,notaport": "notaport": missing port` + forms},
		{"flag", "", []flagValue{{"listen", "notaport"}}, "", `invalid --listen="notaport": missing port` + forms + " (HERD_LISTEN)"},
		{"file", "", nil, "listen: notaport\n", `invalid listen="notaport": missing port` + forms + ` (in "`},
		{"port alone", "8080", nil, "", `invalid HERD_LISTEN="8080": missing colon: write :8080 for port 8080 on all addresses`},
		{"port range", ":99999", nil, "", `invalid HERD_LISTEN=":99999": port 99999 out of range: give a number from 0 to 65535 (0: the kernel picks one)`},
		{"host name", "localhost:80", nil, "", `invalid HERD_LISTEN="localhost:80": bad host "localhost": give an IP address`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("HERD_LISTEN", c.env)
			}
			if c.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, c.file))
			}
			msg := wantConfigError(t, c.flags, []string{c.want}, nil)
			if !strings.HasPrefix(msg, c.want) {
				t.Errorf("error %q does not start with %q", msg, c.want)
			}
			if v := strings.TrimPrefix(c.env, ":8080,"); v != "" && strings.Count(msg, `"`+v+`"`) != 1 {
				t.Errorf("error %q: want %q shown once", msg, v)
			}
		})
	}
}

// A long value is cut in the error, which says how long it was.
func TestConfigLongValue(t *testing.T) {
	long := strings.Repeat("a", 3000)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []flagValue
		file  string
		want  string
	}{
		{"variable", map[string]string{"HERD_WORKERS": long}, nil, "", `invalid HERD_WORKERS="` + long[:64] + `…" (3000 bytes): `},
		{"flag", nil, []flagValue{{"restart", long}}, "", `invalid --restart="` + long[:64] + `…" (3000 bytes): `},
		{"file value", nil, nil, "log_level: " + long + "\n", `invalid log_level="` + long[:64] + `…" (3000 bytes): `},
		{"file key", nil, nil, long[:200] + ": 1\n", `unknown key "` + long[:64] + `…" (200 bytes)`},
		// Parsers that repeat the part they refuse are cut too.
		{"listen", map[string]string{"HERD_LISTEN": ":80," + long}, nil, "", `invalid HERD_LISTEN=":80,` + long[:60] + `…" (3004 bytes): "` + long[:64] + `…" (3000 bytes): missing port`},
		{"user", map[string]string{"HERD_UID": long}, nil, "", `unknown user "` + long[:64] + `…" (3000 bytes)`},
		{"remap", map[string]string{"HERD_EXIT_REMAP": long}, nil, "", `"` + long[:64] + `…" (3000 bytes) is not FROM=TO`},
		{"health", map[string]string{"HERD_HEALTH_ADDR": long + ":80"}, nil, "", `host "` + long[:64] + `…" (3000 bytes)`},
		{"config path", map[string]string{"HERD_CONFIG": "/" + long}, nil, "", `invalid HERD_CONFIG="/` + long[:63] + `…" (3001 bytes): `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, tc.file))
			}
			msg := wantConfigError(t, tc.flags, []string{tc.want}, []string{long[:65]})
			if len(msg) > 1000 {
				t.Errorf("error is %d bytes long", len(msg))
			}
		})
	}
	// A cut never splits a character: é is two bytes, the 64th and 65th.
	v := strings.Repeat("a", 63) + strings.Repeat("é", 100)
	if got, want := quote(v), `"`+strings.Repeat("a", 63)+`…" (263 bytes)`; got != want {
		t.Errorf("quote cut a character: %s, want %s", got, want)
	}
	if got := quote("short"); got != `"short"` {
		t.Errorf("quote(short) = %s", got)
	}
}

// HERD_HEALTH_ADDR is checked when it is read, so herd config refuses what
// herd could not listen on; off, in any case, disables the server.
func TestConfigHealthAddr(t *testing.T) {
	for _, bad := range []string{"nonsense", ":99999", "1.2.3.4", "[::1", "", ":http", "::1:80", "[1.2.3.4]:80",
		"a_b:80", "1.2.3:80", "256.1.1.1:80", "-host:80", "host:", "[]:80", ":-1"} {
		t.Run(bad, func(t *testing.T) {
			t.Setenv("HERD_HEALTH_ADDR", bad)
			wantConfigError(t, nil, []string{`invalid HERD_HEALTH_ADDR="` + bad + `"`, "host:port", "0 to 65535", "or off"}, nil)
		})
	}
	wantConfigError(t, []flagValue{{"health-addr", "nonsense"}}, []string{`invalid --health-addr="nonsense"`, "host:port", "HERD_HEALTH_ADDR"}, nil)
	for in, want := range map[string]string{
		":9090": ":9090", "127.0.0.1:0": "127.0.0.1:0", "[::1]:9090": "[::1]:9090", "[::]:65535": "[::]:65535",
		"localhost:9090": "localhost:9090", "probe-1.example.com:80": "probe-1.example.com:80", "[fe80::1%eth0]:80": "[fe80::1%eth0]:80",
		"off": "off", "OFF": "off", "Off": "off", " off ": "off",
	} {
		t.Setenv("HERD_HEALTH_ADDR", in)
		l, err := LoadConfig(nil)
		if err != nil {
			t.Errorf("HERD_HEALTH_ADDR=%q: %v", in, err)
			continue
		}
		if string(l.HealthAddr) != want {
			t.Errorf("HERD_HEALTH_ADDR=%q gives %q, want %q", in, l.HealthAddr, want)
		}
	}
}

// off, in any case, disables the termination log.
func TestConfigTerminationLogOff(t *testing.T) {
	for _, v := range []string{"off", "OFF", "Off", " oFf "} {
		t.Setenv("HERD_TERMINATION_LOG", v)
		l, err := LoadConfig(nil)
		if err != nil || l.TerminationLog != "off" {
			t.Errorf("HERD_TERMINATION_LOG=%q: %q, %v; want off", v, l.TerminationLog, err)
		}
	}
	t.Setenv("HERD_TERMINATION_LOG", "term.log")
	if l, err := LoadConfig(nil); err != nil || l.TerminationLog != "term.log" {
		t.Errorf("HERD_TERMINATION_LOG=term.log: %v", err)
	}
}

func TestTerminationLogPath(t *testing.T) {
	for _, tc := range []struct{ path, dir, want string }{
		{"term.log", "/srv/app", "/srv/app/term.log"},
		{"logs/term.log", "/srv/app", "/srv/app/logs/term.log"},
		{"../term.log", "/srv/app", "/srv/term.log"},
		{"/dev/termination-log", "/srv/app", "/dev/termination-log"},
		{"off", "/srv/app", "off"},
		{"", "/srv/app", ""},
	} {
		if got := terminationLogPath(tc.path, tc.dir); got != tc.want {
			t.Errorf("terminationLogPath(%q, %q) = %q, want %q", tc.path, tc.dir, got, tc.want)
		}
	}
}

// HERD_READY_MIN above the workers that can ever run is refused, named as
// the user wrote it; with auto and no maximum herd warns at start instead.
func TestConfigReadyMin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []flagValue
		file  string
		want  []string
	}{
		{"workers", map[string]string{"HERD_WORKERS": "2", "HERD_READY_MIN": "3"}, nil, "",
			[]string{`invalid HERD_READY_MIN="3": must not be more than HERD_WORKERS="2"`, "readiness could never pass"}},
		{"max workers", map[string]string{"HERD_MAX_WORKERS": "4", "HERD_READY_MIN": "5"}, nil, "",
			[]string{`invalid HERD_READY_MIN="5": must not be more than HERD_MAX_WORKERS="4"`, `HERD_WORKERS="auto"`}},
		{"flags", nil, []flagValue{{"workers", "1"}, {"ready-min", "2"}}, "",
			[]string{`invalid --ready-min="2": must not be more than --workers="1"`, "(HERD_READY_MIN)"}},
		{"file", map[string]string{"HERD_WORKERS": "2"}, nil, "ready_min: 3\n",
			[]string{`invalid ready_min="3": must not be more than HERD_WORKERS="2"`, "herd.yaml", "variable HERD_READY_MIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, tc.file))
			}
			wantConfigError(t, tc.flags, tc.want, nil)
		})
	}
	for _, env := range []map[string]string{
		{"HERD_WORKERS": "3", "HERD_READY_MIN": "3"},
		{"HERD_WORKERS": "2", "HERD_READY_MIN": "0"},
		{"HERD_MAX_WORKERS": "4", "HERD_READY_MIN": "4"},
		{"HERD_READY_MIN": "50"}, // auto without a maximum: a warning at start
	} {
		for k, v := range env {
			t.Setenv(k, v)
		}
		if _, err := LoadConfig(nil); err != nil {
			t.Errorf("%v: %v", env, err)
		}
		for k := range env {
			os.Unsetenv(k)
		}
	}
}

// The stop signals whose default action does not end a process.
func TestStopSignalFault(t *testing.T) {
	for _, name := range []string{"CHLD", "CONT", "URG", "WINCH"} {
		sig, _ := initproc.ParseSignal(name)
		if got := stopSignalFault(sig); got != "is ignored by default" {
			t.Errorf("%s: %q, want ignored", name, got)
		}
	}
	for _, name := range []string{"TSTP", "TTIN", "TTOU"} {
		sig, _ := initproc.ParseSignal(name)
		if got := stopSignalFault(sig); got != "suspends a process by default" {
			t.Errorf("%s: %q, want suspends", name, got)
		}
	}
	for _, name := range []string{"TERM", "QUIT", "INT", "HUP", "USR1", "USR2", "ALRM", "PIPE", "ABRT", "PWR", "SYS", "XCPU", "RTMIN+1", "RTMAX"} {
		sig, ok := initproc.ParseSignal(name)
		if !ok {
			t.Fatalf("ParseSignal(%s)", name)
		}
		if got := stopSignalFault(sig); got != "" {
			t.Errorf("%s ends a process by default, got %q", name, got)
		}
	}
}

// Watermarks: a share of the limit, an amount, or off; a share is nothing
// without a limit.
func TestWatermark(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		want  int64
		text  string
	}{
		{"90%", 256 << 20, 241591910, "90%"},
		{" 85.5% ", 1000, 855, "85.5%"},
		{"230Mi", 256 << 20, 230 << 20, "230Mi"},
		{"230Mi", 0, 230 << 20, "230Mi"},
		{"90%", 0, 0, "90%"},
		{"OFF", 256 << 20, 0, "off"},
		{"0", 256 << 20, 0, "off"},
	} {
		var w Watermark
		if err := w.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if got := w.Of(tc.limit); got != tc.want || w.String() != tc.text {
			t.Errorf("%q of %d = %d (%s), want %d (%s)", tc.in, tc.limit, got, w.String(), tc.want, tc.text)
		}
	}
}

// Watermarks given in different forms are put in order once the limit is
// known, at start.
func TestCheckWatermarks(t *testing.T) {
	t.Setenv("HERD_MEMORY_HIGH", "90%")
	t.Setenv("HERD_MEMORY_CRITICAL", "200Mi")
	l, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkWatermarks(l, 256<<20); err == nil || !strings.Contains(err.Error(), "HERD_MEMORY_CRITICAL") ||
		!strings.Contains(err.Error(), "above HERD_MEMORY_HIGH") || !strings.Contains(err.Error(), "256MiB") {
		t.Errorf("200Mi against 90%% of 256Mi: %v", err)
	}
	if err := checkWatermarks(l, 200<<20); err != nil {
		t.Errorf("200Mi against 90%% of 200Mi: %v", err)
	}
	if err := checkWatermarks(l, 0); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
