package main

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/cluster/memory"
	initproc "github.com/herd-sh/herd/init"
)

// The types of the settings, but for the enums (cluster's and cpus's own
// types) and HealthAddr (healthaddr.go). Each Set says what is allowed when
// it refuses a value.

// Workers is a positive count or auto.
type Workers struct {
	Auto bool
	N    int
}

// MaxWorkers bounds HERD_WORKERS: far above any CPU count, low enough that
// a typo (an extra zero or two) is caught.
const MaxWorkers = 10000

func (w *Workers) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "auto") {
		*w = Workers{Auto: true}
		return nil
	}
	n, err := wholeNumber(s, 1, MaxWorkers, "auto or ")
	if err != nil {
		return err
	}
	*w = Workers{N: n}
	return nil
}

// Errors of whole numbers. Each says what is allowed.
var (
	errNegative = errors.New("must not be negative")
	errTooLarge = errors.New("too large")
)

// wholeNumber parses a whole number from min to max, with an error that
// says which way a number outside is wrong. or names what else the setting
// takes ("auto or "), for the errors.
func wholeNumber(s string, min, max int, or string) (int, error) {
	n, err := strconv.Atoi(s)
	var ne *strconv.NumError
	switch {
	case err != nil && !(errors.As(err, &ne) && ne.Err == strconv.ErrRange):
		return 0, fmt.Errorf("must be %sa whole number from %d to %d", or, min, max)
	case strings.HasPrefix(s, "-") && (err != nil || n < 0):
		return 0, fmt.Errorf("%w: %sa whole number from %d to %d", errNegative, or, min, max)
	case err != nil || n > max:
		return 0, fmt.Errorf("%w: at most %d", errTooLarge, max)
	case n < min:
		return 0, fmt.Errorf("must be %sa whole number from %d to %d", or, min, max)
	}
	return n, nil
}

func (w *Workers) String() string {
	if w.Auto {
		return "auto"
	}
	return strconv.Itoa(w.N)
}

// Count is a whole number from 0 to MaxWorkers.
type Count int

func (c *Count) Set(s string) error {
	n, err := wholeNumber(strings.TrimSpace(s), 0, MaxWorkers, "")
	if err != nil {
		return err
	}
	*c = Count(n)
	return nil
}

func (c *Count) String() string { return strconv.Itoa(int(*c)) }

// CPUAmount is an amount of CPU in millicores, written as cpus.ParseRequest
// reads it; 0 is none.
type CPUAmount int64

func (a *CPUAmount) Set(s string) error {
	m, err := cpus.ParseRequest(s)
	if err != nil {
		return err
	}
	*a = CPUAmount(m)
	return nil
}

func (a *CPUAmount) String() string {
	if *a == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*a), 10) + "m"
}

// MemoryAmount is an amount of memory in bytes, written as
// memory.ParseQuantity reads it (268435456, 256Mi, 1G); 0 is none.
type MemoryAmount int64

func (a *MemoryAmount) Set(s string) error {
	n, err := memory.ParseQuantity(s)
	if err != nil {
		return err
	}
	*a = MemoryAmount(n)
	return nil
}

func (a *MemoryAmount) String() string { return memory.FormatQuantity(int64(*a)) }

// Listen is HERD_LISTEN: the addresses herd binds.
type Listen []listen.Spec

func (l *Listen) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*l = nil
		return nil
	}
	specs, err := listen.Parse(s)
	if err != nil {
		return err
	}
	*l = specs
	return nil
}

func (l *Listen) String() string {
	parts := make([]string, len(*l))
	for i, sp := range *l {
		parts[i] = sp.String()
	}
	return strings.Join(parts, ",")
}

// UserID is a user given by name or number, resolved when set.
type UserID struct {
	Text     string
	UID, GID int // GID: the user's primary group, -1 if unknown
}

func (u *UserID) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*u = UserID{}
		return nil
	}
	uid, gid, err := listen.LookupUser(s)
	if err != nil {
		return err
	}
	*u = UserID{Text: s, UID: uid, GID: gid}
	return nil
}

func (u *UserID) String() string { return u.Text }

// GroupID is a group given by name or number, resolved when set.
type GroupID struct {
	Text string
	GID  int
}

func (g *GroupID) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*g = GroupID{}
		return nil
	}
	gid, err := listen.LookupGroup(s)
	if err != nil {
		return err
	}
	*g = GroupID{Text: s, GID: gid}
	return nil
}

func (g *GroupID) String() string { return g.Text }

// Duration is a time.Duration written as Go writes it (1m30s, 250ms) or as
// a whole number of seconds.
type Duration time.Duration

// maxDuration is the longest Duration, about 292 years.
const maxDuration = time.Duration(math.MaxInt64)

// durationForms says how a Duration is written.
const durationForms = "a duration such as 250ms, 30s or 1m, or a whole number of seconds"

// errDuration is a text that is no duration at all.
var errDuration = errors.New("must be " + durationForms)

// durationSyntax is a duration as time.ParseDuration reads it, sign and
// magnitude aside: it tells a number too large from text that is no
// duration.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

func (d *Duration) Set(s string) error {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if n, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case neg && (err != nil || n < 0):
			return fmt.Errorf("%w: %s", errNegative, durationForms)
		case err != nil || n > int64(maxDuration/time.Second):
			return fmt.Errorf("%w: at most %d seconds (%v)", errTooLarge, int64(maxDuration/time.Second), maxDuration.Truncate(time.Second))
		}
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	switch {
	case err == nil && v < 0, err != nil && neg && durationSyntax.MatchString(s):
		return fmt.Errorf("%w: %s", errNegative, durationForms)
	case err != nil && durationSyntax.MatchString(s):
		return fmt.Errorf("%w: at most %v", errTooLarge, maxDuration.Truncate(time.Second))
	case err != nil:
		return errDuration
	}
	*d = Duration(v)
	return nil
}

func (d *Duration) String() string { return time.Duration(*d).String() }

// Grace is HERD_DISCONNECT_GRACE: a duration, or auto for half of the
// shutdown timeout.
type Grace struct {
	Auto bool
	D    Duration
}

func (g *Grace) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*g = Grace{Auto: true}
		return nil
	}
	var d Duration
	switch err := d.Set(s); {
	case errors.Is(err, errDuration):
		return fmt.Errorf("must be auto or %s", durationForms)
	case errors.Is(err, errNegative):
		return fmt.Errorf("%w: auto or %s", errNegative, durationForms)
	case err != nil:
		return err
	}
	*g = Grace{D: d}
	return nil
}

func (g *Grace) String() string {
	if g.Auto {
		return "auto"
	}
	return g.D.String()
}

// Of is the grace for a shutdown timeout: auto is half of it.
func (g Grace) Of(timeout time.Duration) time.Duration {
	if g.Auto {
		return timeout / 2
	}
	return time.Duration(g.D)
}

// Signal is a catchable signal, or empty.
type Signal int

func (g *Signal) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*g = 0
		return nil
	}
	sig, ok := initproc.ParseSignal(s)
	if !ok {
		return errors.New("must be a catchable signal name or number such as TERM, SIGQUIT, INT or 15, or empty")
	}
	*g = Signal(sig)
	return nil
}

func (g *Signal) String() string {
	if *g == 0 {
		return ""
	}
	return initproc.SignalName(unix.Signal(*g))
}

// stopSignalFault says why sig, as the stop signal, does not end a worker
// that has no handler for it: its default action ignores it or suspends the
// process. It is "" for a signal whose default action ends the process.
func stopSignalFault(sig unix.Signal) string {
	switch sig {
	case unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH:
		return "is ignored by default"
	case unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return "suspends a process by default"
	}
	return ""
}

// Remap is an initproc.Remap.
type Remap initproc.Remap

func (r *Remap) Set(s string) error {
	m, err := initproc.ParseRemap(s)
	if err != nil {
		return fmt.Errorf("must be FROM=TO pairs separated by commas, such as 143=0: %v", err)
	}
	*r = Remap(m)
	return nil
}

func (r *Remap) String() string { return initproc.Remap(*r).String() }

// off is the value that turns the probe server or the termination log off,
// in any case.
const off = "off"

// LogPath is HERD_TERMINATION_LOG: a file path, or off (in any case).
type LogPath string

func (p *LogPath) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), off) {
		*p = off
		return nil
	}
	if strings.ContainsRune(s, 0) {
		return errors.New("must be a file path (without NUL bytes) or off")
	}
	*p = LogPath(s)
	return nil
}

func (p *LogPath) String() string { return string(*p) }

// Bool is true or false, also written 1/0, yes/no, on/off.
type Bool bool

func (b *Bool) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		*b = true
	case "false", "0", "no", "off":
		*b = false
	default:
		return errors.New("must be true or false")
	}
	return nil
}

func (b *Bool) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *Bool) IsBoolFlag() bool { return true }

// LogFormat is text or json.
type LogFormat string

func (f *LogFormat) Set(s string) error {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "text", "json":
		*f = LogFormat(v)
		return nil
	}
	return errors.New("must be text or json")
}

func (f *LogFormat) String() string { return string(*f) }

// LogLevel is debug, info, warn or error.
type LogLevel string

func (l *LogLevel) Set(s string) error {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "debug", "info", "warn", "error":
		*l = LogLevel(v)
		return nil
	case "warning":
		*l = "warn"
		return nil
	}
	return errors.New("must be debug, info, warn or error")
}

func (l *LogLevel) String() string { return string(*l) }
