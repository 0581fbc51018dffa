package cluster

import (
	"encoding"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// enumSetting is what every enum setting of package cluster implements.
type enumSetting interface {
	flag.Value
	encoding.TextMarshaler
	encoding.TextUnmarshaler
	json.Unmarshaler
}

var (
	_ enumSetting = new(Policy)
	_ enumSetting = new(ReadySignal)
	_ enumSetting = new(Restart)
	_ enumSetting = new(NodeStop)
)

const (
	errPolicy   = "must be auto (every worker gets the sockets; herd hands connections out to workers that speak Node's cluster protocol), rr (herd accepts; workers speak the protocol), none (alias shared) or reuseport"
	errReady    = "must be listening, notify or started"
	errRestart  = "must be one of on-failure, always, never"
	errNodeStop = "must be disconnect (Node's disconnect first, the stop signal after HERD_DISCONNECT_GRACE) or signal (the stop signal at once)"
)

// enumCase is one enum setting: its spellings and the values it refuses.
type enumCase struct {
	name     string
	zero     func() enumSetting // a new, empty value
	values   []string           // every constant, as String writes it
	accepted map[string]string  // text → String() after Set
	refused  []string           // each refused with err
	err      string
}

var enumCases = []enumCase{
	{
		name:   "Policy",
		zero:   func() enumSetting { return new(Policy) },
		values: []string{"rr", "none", "reuseport"},
		accepted: map[string]string{
			"rr": "rr", "none": "none", "shared": "none", "reuseport": "reuseport", "auto": "auto", " AUTO ": "auto",
			" RR ": "rr", "Shared": "none", "\tReusePort\n": "reuseport", "NONE": "none",
		},
		refused: []string{"", "round-robin", "r r", "2", "true", "null", "rr,none"},
		err:     errPolicy,
	},
	{
		name:   "ReadySignal",
		zero:   func() enumSetting { return new(ReadySignal) },
		values: []string{"listening", "notify", "started"},
		accepted: map[string]string{
			"listening": "listening", "notify": "notify", "started": "started",
			" Listening": "listening", "NOTIFY ": "notify", "Started": "started",
		},
		refused: []string{"", "ready", "listen", "1", "false"},
		err:     errReady,
	},
	{
		name:   "Restart",
		zero:   func() enumSetting { return new(Restart) },
		values: []string{"on-failure", "always", "never"},
		accepted: map[string]string{
			"on-failure": "on-failure", "always": "always", "never": "never",
			" always\n": "always", "\tnever": "never",
		},
		// Restart, unlike the others, is read in lower case only.
		refused: []string{"", "sometimes", "onfailure", "on_failure", "Always", "NEVER", "0"},
		err:     errRestart,
	},
	{
		name:   "NodeStop",
		zero:   func() enumSetting { return new(NodeStop) },
		values: []string{"disconnect", "signal"},
		accepted: map[string]string{
			"disconnect": "disconnect", "signal": "signal", " Disconnect ": "disconnect", "SIGNAL": "signal",
		},
		refused: []string{"", "kill", "term", "15", "signals"},
		err:     errNodeStop,
	},
}

func TestEnumSet(t *testing.T) {
	for _, c := range enumCases {
		t.Run(c.name, func(t *testing.T) {
			for in, want := range c.accepted {
				for how, set := range setters(c.zero) {
					v, err := set(in)
					if err != nil || v.String() != want {
						t.Errorf("%s(%q) = %q, %v; want %q", how, in, v.String(), err, want)
					}
				}
			}
			for _, in := range c.refused {
				for how, set := range setters(c.zero) {
					if in == "" && how != "Set" {
						continue // the zero value's text: see TestEnumZero
					}
					v, err := set(in)
					if err == nil || err.Error() != c.err {
						t.Errorf("%s(%q) error %v; want %q", how, in, err, c.err)
					}
					if v.String() != "" {
						t.Errorf("%s(%q) refused, but set %q", how, in, v.String())
					}
				}
			}
		})
	}
}

// setters are the ways a text reaches a setting: as a flag or a variable
// (Set), as text (UnmarshalText) and as a JSON string (UnmarshalJSON).
func setters(zero func() enumSetting) map[string]func(string) (enumSetting, error) {
	return map[string]func(string) (enumSetting, error){
		"Set": func(s string) (enumSetting, error) {
			v := zero()
			return v, v.Set(s)
		},
		"UnmarshalText": func(s string) (enumSetting, error) {
			v := zero()
			return v, v.UnmarshalText([]byte(s))
		},
		"UnmarshalJSON": func(s string) (enumSetting, error) {
			v := zero()
			js, err := json.Marshal(s)
			if err != nil {
				return v, err
			}
			return v, v.UnmarshalJSON(js)
		},
	}
}

// TestEnumJSONScalars: a YAML scalar that is not a string reaches
// UnmarshalJSON as a JSON number, boolean or null, and is refused as its
// text would be.
func TestEnumJSONScalars(t *testing.T) {
	for _, c := range enumCases {
		t.Run(c.name, func(t *testing.T) {
			for js, text := range map[string]string{
				"2": "2", "-1": "-1", "1.5": "1.5", "1e999": "1e999", "99999999999999999999": "99999999999999999999",
				"true": "true", "false": "false",
			} {
				want := c.zero().Set(text)
				err := c.zero().UnmarshalJSON([]byte(js))
				if err == nil || want == nil || err.Error() != want.Error() {
					t.Errorf("UnmarshalJSON(%s) error %v; want %v, as Set(%q)", js, err, want, text)
				}
			}
			for _, js := range []string{`["rr"]`, `{"a":"rr"}`, `[]`} {
				err := c.zero().UnmarshalJSON([]byte(js))
				if err == nil || err.Error() != "must be a single value, not a list or a map" {
					t.Errorf("UnmarshalJSON(%s) error %v", js, err)
				}
			}
			for _, js := range []string{``, `"`, `"a" "b"`, `nul`} {
				if err := c.zero().UnmarshalJSON([]byte(js)); err == nil {
					t.Errorf("UnmarshalJSON(%s) accepted", js)
				}
			}
		})
	}
}

func TestEnumRoundTrip(t *testing.T) {
	for _, c := range enumCases {
		t.Run(c.name, func(t *testing.T) {
			for _, val := range c.values {
				v := c.zero()
				if err := v.Set(val); err != nil {
					t.Fatalf("Set(%q): %v", val, err)
				}
				text, err := v.MarshalText()
				if err != nil || string(text) != val {
					t.Errorf("MarshalText of %q = %q, %v", val, text, err)
				}
				back := c.zero()
				if err := back.UnmarshalText(text); err != nil || back.String() != val {
					t.Errorf("text round trip of %q: %q, %v", val, back.String(), err)
				}
				js, err := json.Marshal(v)
				if err != nil || string(js) != `"`+val+`"` {
					t.Errorf("json.Marshal of %q = %s, %v", val, js, err)
				}
				back = c.zero()
				if err := json.Unmarshal(js, back); err != nil || back.String() != val {
					t.Errorf("JSON round trip of %q: %q, %v", val, back.String(), err)
				}
			}
		})
	}
}

// TestEnumYAML decodes the enums as herd's YAML file holds them, through
// sigs.k8s.io/yaml, and encodes them back.
func TestEnumYAML(t *testing.T) {
	type doc struct {
		SchedPolicy Policy      `json:"sched_policy"`
		ReadySignal ReadySignal `json:"ready_signal"`
		Restart     Restart     `json:"restart"`
		NodeStop    NodeStop    `json:"node_stop"`
	}
	var d doc
	in := "sched_policy: Shared\nready_signal: 'started'\nrestart: \"never\"\nnode_stop: signal\n"
	if err := yaml.Unmarshal([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	want := doc{PolicyNone, ReadyStarted, RestartNever, NodeStopSignal}
	if d != want {
		t.Fatalf("decoded %+v, want %+v", d, want)
	}
	out, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	const wantOut = "node_stop: signal\nready_signal: started\nrestart: never\nsched_policy: none\n"
	if string(out) != wantOut {
		t.Fatalf("encoded %q, want %q", out, wantOut)
	}
	for in, msg := range map[string]string{
		"sched_policy: 2":      errPolicy,
		"ready_signal: true":   errReady,
		"restart: 1.5":         errRestart,
		"node_stop: 15":        errNodeStop,
		"restart: [always]":    "must be a single value, not a list or a map",
		"sched_policy: {a: b}": "must be a single value, not a list or a map",
	} {
		var d doc
		if err := yaml.Unmarshal([]byte(in), &d); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v; want one containing %q", in, err, msg)
		}
	}
}

// TestEnumZero: the zero value (not set) writes as "" and reads back from
// "" and null as text and JSON; Set still refuses "".
func TestEnumZero(t *testing.T) {
	for _, c := range enumCases {
		t.Run(c.name, func(t *testing.T) {
			for how, set := range setters(c.zero) {
				if how == "Set" {
					continue
				}
				if v, err := set(""); err != nil || v.String() != "" {
					t.Errorf("%s(\"\") = %q, %v; want the zero value", how, v.String(), err)
				}
			}
			if err := c.zero().UnmarshalJSON([]byte("null")); err != nil {
				t.Errorf("UnmarshalJSON(null): %v", err)
			}
		})
	}
}
