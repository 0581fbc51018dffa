package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
		{"missing file", map[string]string{"HERD_CONFIG": "/nonexistent/herd.yaml"}, nil, "", []string{"HERD_CONFIG", "/nonexistent/herd.yaml"}},
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
