package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ConfigError is an invalid setting. Its message names the setting as the
// user wrote it, the value, and what is allowed.
type ConfigError struct{ msg string }

func (e *ConfigError) Error() string { return e.msg }

func badValue(where, val string, err error) error {
	return &ConfigError{fmt.Sprintf("invalid %s=%s: %s", where, quote(val), clipQuoted(err.Error()))}
}

// maxShown is how much of a value an error repeats: enough to recognise it,
// short enough that the error stays one readable line.
const maxShown = 64

// quote is val as an error repeats it: %q, cut to maxShown bytes (at a
// character boundary) with the full length said when it is longer.
func quote(val string) string {
	if len(val) <= maxShown {
		return strconv.Quote(val)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(val[cut]) {
		cut--
	}
	return fmt.Sprintf("%q (%d bytes)", val[:cut]+"…", len(val))
}

// clipQuoted cuts every double-quoted string in msg that is longer than
// maxShown, as quote does: the parsers of the setting types repeat the part
// of a value they refuse (an entry of HERD_LISTEN, a user name, a pair of
// HERD_EXIT_REMAP), which may be as long as the value itself.
func clipQuoted(msg string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		q, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			b.WriteByte('"')
			msg = msg[i+1:]
			continue
		}
		if text, err := strconv.Unquote(q); err == nil && len(text) > maxShown && !clipped.MatchString(msg[i+len(q):]) {
			b.WriteString(quote(text))
		} else {
			b.WriteString(q)
		}
		msg = msg[i+len(q):]
	}
}

// clipped is what follows a value quote has cut already.
var clipped = regexp.MustCompile(`^ \([0-9]+ bytes\)`)

// name is a setting as the user wrote it (its flag, its key in the file, or
// its variable), for errors about relations between settings.
func (l *Loaded) name(env string) string {
	s, _ := settingByEnv(env)
	switch l.Sources[env] {
	case FromFlag:
		return "--" + s.flag
	case FromFile:
		return s.key
	}
	return env
}

// shown is a setting as the user wrote it with its value: --workers="2".
func (l *Loaded) shown(env string) string {
	s, _ := settingByEnv(env)
	return l.name(env) + "=" + quote(s.value(&l.Config).String())
}

// bad is an error about the value of the setting env, worded for where it
// was set, as the errors of single values are.
func (l *Loaded) bad(env string, err error) error {
	s, _ := settingByEnv(env)
	val := s.value(&l.Config).String()
	switch l.Sources[env] {
	case FromFlag:
		return badValue("--"+s.flag, val, fmt.Errorf("%w (%s)", err, env))
	case FromFile:
		return badValue(s.key, val, fmt.Errorf("%w (in %s; variable %s)", err, quote(l.File), env))
	}
	return badValue(env, val, err)
}
