package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// The YAML file named by HERD_CONFIG or --config: one scalar per setting,
// read strictly.

// MaxConfigFile is the largest configuration file herd reads. A file of
// settings is a few hundred bytes; the bound keeps a wrong path (a device
// such as /dev/zero, a log file) from growing herd's memory.
const MaxConfigFile = 1 << 20

// loadFile applies a YAML file strictly: duplicate and unknown keys are
// errors, and every value must be a scalar. from is how the file was named
// (HERD_CONFIG or --config).
func (l *Loaded) loadFile(from, path string) error {
	data, err := readConfigFile(path)
	if err != nil {
		return &ConfigError{fmt.Sprintf("invalid %s=%s: %v", from, quote(path), err)}
	}
	where := "configuration file " + quote(path)
	if at, what := notText(data); at >= 0 {
		line := 1 + strings.Count(string(data[:at]), "\n")
		return &ConfigError{fmt.Sprintf("%s: line %d, byte offset %d: %s; herd expects a YAML file of key: value lines", where, line, at, what)}
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		msg := strings.TrimPrefix(oneLine(err), "yaml: ")
		if strings.Contains(msg, "map key") {
			// A key that is a list, a map or null: the converter's message
			// shows Go's types.
			msg = "a key is not a setting name (key: value, such as workers: 2)"
		}
		return &ConfigError{fmt.Sprintf("%s: not valid YAML: %s", where, clipQuoted(msg))}
	}
	var doc map[string]json.RawMessage
	switch kind := jsonKind(js); kind {
	case "null": // an empty file, or only comments: nothing set
	case "mapping":
		if err := json.Unmarshal(js, &doc); err != nil {
			return &ConfigError{fmt.Sprintf("%s: must be a YAML mapping of settings (key: value): %v", where, err)}
		}
	default:
		return &ConfigError{fmt.Sprintf("%s: must be a YAML mapping of settings (key: value), not %s", where, kind)}
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := settingByKey(k)
		if !ok {
			hint := ""
			if s := suggestKey(k); s != "" {
				hint = " (did you mean " + s + "?)"
			}
			return &ConfigError{fmt.Sprintf("%s: unknown key %s%s; known keys: %s", where, quote(k), hint, knownKeys())}
		}
		text, err := scalar(doc[k])
		if err != nil {
			return &ConfigError{fmt.Sprintf("%s: %s: %v", where, k, err)}
		}
		if err := s.value(&l.Config).Set(text); err != nil {
			return badValue(k, text, fmt.Errorf("%w (in %s; variable %s)", err, quote(path), s.env))
		}
		l.Sources[s.env] = FromFile
	}
	l.File = path
	return nil
}

// readConfigFile reads at most MaxConfigFile bytes of path, through a
// limited reader whatever the file is: a device's size says nothing.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration file: %v", pathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration file: %v", pathErr(err))
	}
	if len(data) > MaxConfigFile {
		return nil, fmt.Errorf("the configuration file is larger than 1 MiB (%d bytes), the most herd reads; give a YAML file of key: value lines", MaxConfigFile)
	}
	return data, nil
}

// pathErr is the reason alone of an error about a file, without the path
// the caller already shows (quoted and clipped).
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// notText finds the first byte of data that no YAML text holds: a byte
// that is not UTF-8, or a control character other than tab, line feed and
// carriage return. It returns -1 when there is none.
func notText(data []byte) (int, string) {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return i, fmt.Sprintf("byte 0x%02x is not UTF-8 text", data[i])
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f:
			return i, fmt.Sprintf("byte 0x%02x is a control character, not text", r)
		}
		i += n
	}
	return -1, ""
}

// jsonKind names what a JSON document is: null, mapping, list, string,
// number or boolean.
func jsonKind(js []byte) string {
	t := strings.TrimSpace(string(js))
	if t == "" {
		return "null"
	}
	switch t[0] {
	case 'n':
		return "null"
	case '{':
		return "mapping"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// oneLine folds a multi-line error (the YAML parser writes one line per
// problem) into one line.
func oneLine(err error) string {
	parts := strings.Split(err.Error(), "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, " ")
}

// scalar turns a JSON scalar into the text a variable would hold.
func scalar(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return string(raw), nil
	case nil:
		return "", nil
	}
	return "", errors.New("must be a single value, not a list or a map")
}
