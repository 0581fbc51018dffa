package cpus

import (
	"encoding"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var _ interface {
	flag.Value
	encoding.TextMarshaler
	encoding.TextUnmarshaler
	json.Unmarshaler
} = new(Rounding)

const errRounding = "must be nearest, floor or ceil"

func TestRoundingSet(t *testing.T) {
	type setter func(*Rounding, string) error
	for how, set := range map[string]setter{
		"Set":           (*Rounding).Set,
		"UnmarshalText": func(r *Rounding, s string) error { return r.UnmarshalText([]byte(s)) },
		"UnmarshalJSON": func(r *Rounding, s string) error {
			js, _ := json.Marshal(s)
			return r.UnmarshalJSON(js)
		},
	} {
		for in, want := range map[string]Rounding{
			"nearest": Nearest, "floor": Floor, "ceil": Ceil,
			"": Nearest, "  ": Nearest, " Floor ": Floor, "CEIL": Ceil, "\tNearest\n": Nearest,
		} {
			var r Rounding
			if err := set(&r, in); err != nil || r != want {
				t.Errorf("%s(%q) = %q, %v; want %q", how, in, r, err, want)
			}
		}
		for _, in := range []string{"round", "up", "down", "half", "1", "true", "flo or", "floor,ceil"} {
			r := Floor
			if err := set(&r, in); err == nil || err.Error() != errRounding {
				t.Errorf("%s(%q) error %v; want %q", how, in, err, errRounding)
			}
			if r != Floor {
				t.Errorf("%s(%q) refused, but set %q", how, in, r)
			}
		}
	}
}

// TestRoundingJSONScalars: a YAML scalar that is not a string reaches
// UnmarshalJSON as a JSON number, boolean or null, and is read as its text.
func TestRoundingJSONScalars(t *testing.T) {
	for _, js := range []string{"2", "-1", "0.5", "1e999", "true", "false"} {
		var r Rounding
		if err := r.UnmarshalJSON([]byte(js)); err == nil || err.Error() != errRounding {
			t.Errorf("UnmarshalJSON(%s) error %v; want %q", js, err, errRounding)
		}
	}
	r := Ceil
	if err := r.UnmarshalJSON([]byte("null")); err != nil || r != Nearest {
		t.Errorf("UnmarshalJSON(null) = %q, %v; want nearest, as the empty text", r, err)
	}
	for _, js := range []string{`["floor"]`, `{"a":1}`} {
		if err := r.UnmarshalJSON([]byte(js)); err == nil || err.Error() != "must be a single value, not a list or a map" {
			t.Errorf("UnmarshalJSON(%s) error %v", js, err)
		}
	}
	for _, js := range []string{``, `"`, `"floor" "ceil"`} {
		if err := r.UnmarshalJSON([]byte(js)); err == nil {
			t.Errorf("UnmarshalJSON(%s) accepted", js)
		}
	}
}

func TestRoundingRoundTrip(t *testing.T) {
	for _, val := range []Rounding{Nearest, Floor, Ceil} {
		if val.String() != string(val) {
			t.Errorf("String() = %q, want %q", val.String(), string(val))
		}
		text, err := val.MarshalText()
		var back Rounding
		if err != nil || back.UnmarshalText(text) != nil || back != val {
			t.Errorf("text round trip of %q: %q via %q, %v", val, back, text, err)
		}
		js, err := json.Marshal(val)
		back = ""
		if err != nil || string(js) != `"`+string(val)+`"` || json.Unmarshal(js, &back) != nil || back != val {
			t.Errorf("JSON round trip of %q: %q via %s, %v", val, back, js, err)
		}
	}
}

func TestRoundingYAML(t *testing.T) {
	type doc struct {
		CPURounding Rounding `json:"cpu_rounding"`
	}
	for in, want := range map[string]Rounding{
		"cpu_rounding: floor": Floor, "cpu_rounding: 'Ceil'": Ceil, "cpu_rounding:": Nearest, "{}": "",
	} {
		var d doc
		if err := yaml.Unmarshal([]byte(in), &d); err != nil || d.CPURounding != want {
			t.Errorf("%s: %q, %v; want %q", in, d.CPURounding, err, want)
		}
	}
	for _, in := range []string{"cpu_rounding: 2", "cpu_rounding: up", "cpu_rounding: false"} {
		var d doc
		if err := yaml.Unmarshal([]byte(in), &d); err == nil || !strings.Contains(err.Error(), errRounding) {
			t.Errorf("%s: error %v; want one containing %q", in, err, errRounding)
		}
	}
	out, err := yaml.Marshal(doc{Floor})
	if err != nil || string(out) != "cpu_rounding: floor\n" {
		t.Errorf("encoded %q, %v", out, err)
	}
}
