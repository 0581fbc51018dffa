package main

import (
	"strings"
	"testing"
)

// HERD_CPU_LIMIT is how the chart hands the container's limits.cpu to herd
// (the Downward API, divisor 1m). It is read like HERD_CPU_REQUEST from each
// of the three sources, and a bad value names the setting, the value and
// what is allowed.
func TestCPULimitSetting(t *testing.T) {
	for _, c := range []struct {
		name   string
		env    string // HERD_CPU_LIMIT, "" for unset
		file   string
		flags  []flagValue
		want   int64
		source Source
	}{
		{"unset", "", "", nil, 0, FromDefault},
		{"Downward API millicores", "1500", "", nil, 1500, FromEnv},
		{"a bare digit is CPUs", "2", "", nil, 2000, FromEnv},
		{"a quantity", "250m", "", nil, 250, FromEnv},
		{"no limit is 0", "0", "", nil, 0, FromEnv},
		{"file, a YAML number", "", "cpu_limit: 1500\n", nil, 1500, FromFile},
		{"file, a quantity", "", "cpu_limit: 1.5\n", nil, 1500, FromFile},
		{"flag beats the variable", "500", "", []flagValue{{"cpu-limit", "3"}}, 3000, FromFlag},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("HERD_CPU_LIMIT", c.env)
			}
			if c.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, c.file))
			}
			l, err := LoadConfig(c.flags)
			if err != nil {
				t.Fatal(err)
			}
			if int64(l.CPULimit) != c.want || l.Sources["HERD_CPU_LIMIT"] != c.source {
				t.Errorf("limit %dm from %s, want %dm from %s", l.CPULimit, l.Sources["HERD_CPU_LIMIT"], c.want, c.source)
			}
		})
	}

	for _, c := range []struct {
		name, env, file string
		flags           []flagValue
		want            []string
	}{
		{"word", "two", "", nil, []string{`invalid HERD_CPU_LIMIT="two"`, "millicores such as 500", "CPU quantity"}},
		{"negative", "-1500m", "", nil, []string{`HERD_CPU_LIMIT="-1500m"`, "must not be negative"}},
		{"memory unit", "2Gi", "", nil, []string{`HERD_CPU_LIMIT="2Gi"`}},
		{"file", "", "cpu_limit: lots\n", nil, []string{`invalid cpu_limit="lots"`, "HERD_CPU_LIMIT", "herd.yaml"}},
		{"flag", "", "", []flagValue{{"cpu-limit", "x"}}, []string{`invalid --cpu-limit="x"`, "HERD_CPU_LIMIT"}},
	} {
		t.Run("error "+c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("HERD_CPU_LIMIT", c.env)
			}
			if c.file != "" {
				t.Setenv("HERD_CONFIG", writeFile(t, c.file))
			}
			_, err := LoadConfig(c.flags)
			if _, ok := err.(*ConfigError); !ok {
				t.Fatalf("error %v (%T), want a *ConfigError", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	// The limit reaches the CPU budget herd computes (herd cpus, auto).
	cfg := Defaults()
	cfg.CPULimit = 1500
	res, err := cpuBudget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != 1500 || !strings.Contains(res.LogLine(), " limit=1500m") {
		t.Errorf("cpuBudget dropped HERD_CPU_LIMIT: %s", res.LogLine())
	}
}
