package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/cpus"
	"github.com/herd-sh/herd/cluster/listen"
	initproc "github.com/herd-sh/herd/init"
)

// Config is herd's whole configuration. Every field is one setting: the
// envconfig tag is its variable, from which its flag (--shutdown-timeout)
// and its key in the YAML file (shutdown_timeout) are derived; desc says
// what it means. Each field's type parses its own text (Set) so the three
// sources share one validation and one wording of errors.
type Config struct {
	Workers         Workers    `envconfig:"HERD_WORKERS" desc:"number of workers, or auto: one per CPU the container may use (herd cpus shows how that is found)"`
	CPURequest      CPUAmount  `envconfig:"HERD_CPU_REQUEST" desc:"the container's CPU request, used by auto when no CPU limit is found: millicores as the Downward API writes them (500) or a quantity (500m, 2, 1.5)"`
	CPULimit        CPUAmount  `envconfig:"HERD_CPU_LIMIT" desc:"the container's CPU limit (limits.cpu through the Downward API), used by auto when no cgroup quota is visible, ahead of the request; set it only for a container with a limit: without one Kubernetes writes the node's allocatable CPU"`
	CPURounding     Rounding   `envconfig:"HERD_CPU_ROUNDING" desc:"how auto turns the CPU budget into workers: nearest (halves up), floor or ceil"`
	MinWorkers      Count      `envconfig:"HERD_MIN_WORKERS" desc:"with auto, at least this many workers (0: no minimum)"`
	MaxWorkers      Count      `envconfig:"HERD_MAX_WORKERS" desc:"with auto, at most this many workers (0: no maximum)"`
	CPUReserve      CPUAmount  `envconfig:"HERD_CPU_RESERVE" desc:"with auto, CPU kept for herd itself and taken off a budget above one CPU before rounding (100m, 0.25)"`
	CPURecheck      Duration   `envconfig:"HERD_CPU_RECHECK" desc:"with auto, how often the CPU budget is read again to follow an in-place resize (0: only on SIGHUP)"`
	ScaleDownChecks Count      `envconfig:"HERD_SCALE_DOWN_CHECKS" desc:"with auto, how many re-checks in a row must see a smaller budget before workers are stopped"`
	WorkerHints     Bool       `envconfig:"HERD_WORKER_HINTS" desc:"with auto, give each worker HERD_WORKER_CPUS (its share of the budget) and size GOMAXPROCS and UV_THREADPOOL_SIZE to it, unless already set"`
	Listen          Listen     `envconfig:"HERD_LISTEN" desc:"addresses herd binds before any worker starts, separated by commas: :8080, 0.0.0.0:8080, [::]:8080, tcp4://..., tcp6://..., unix:///run/app.sock?mode=0660&owner=app&group=app&name=web"`
	Backlog         Count      `envconfig:"HERD_BACKLOG" desc:"listen backlog of each socket (0: the kernel's net.core.somaxconn)"`
	SchedPolicy     Policy     `envconfig:"HERD_SCHED_POLICY" desc:"how connections reach workers: rr (herd accepts and hands each to the next free worker over Node's cluster protocol), none (alias shared: every worker gets every socket, as fd 3.. with LISTEN_FDS and in reply to listen()) or reuseport (one SO_REUSEPORT socket per worker slot); NODE_CLUSTER_SCHED_POLICY is read when this is not set"`
	NodeChannel     Bool       `envconfig:"HERD_NODE_CHANNEL" desc:"give every worker Node's cluster IPC channel (NODE_CHANNEL_FD, NODE_UNIQUE_ID), so an unmodified Node server's listen() runs through herd; false for workers that must not see Node's variables"`
	ReadySignal     Ready      `envconfig:"HERD_READY_SIGNAL" desc:"what makes a worker count as listening: listening (it says so: sd_notify READY=1), notify (READY=1 only) or started (its process has run for a second)"`
	ReadyTimeout    Duration   `envconfig:"HERD_READY_TIMEOUT" desc:"how long a rolling restart waits for a replacement to listen before it gives up"`
	WatchdogTimeout Duration   `envconfig:"HERD_WATCHDOG_TIMEOUT" desc:"restart a worker that sends no sd_notify WATCHDOG=1 for this long (0: off); workers get WATCHDOG_USEC"`
	UID             UserID     `envconfig:"HERD_UID" desc:"user the workers run as, a name or a number (empty: herd's own)"`
	GID             GroupID    `envconfig:"HERD_GID" desc:"group the workers run as, a name or a number (empty: the user's primary group, or herd's own)"`
	HealthAddr      HealthAddr `envconfig:"HERD_HEALTH_ADDR" desc:"address of the probe server (/livez, /readyz, /startupz, /status), host:port with a numeric port (:9090, 127.0.0.1:9090, [::1]:9090); off (any case) disables it"`
	ReadyMin        Count      `envconfig:"HERD_READY_MIN" desc:"workers that must be listening for /readyz to pass; at most HERD_WORKERS (or HERD_MAX_WORKERS with auto)"`
	LivenessGrace   Duration   `envconfig:"HERD_LIVENESS_GRACE" desc:"/livez fails once no worker has been listening for this long after start-up (a crash loop then gets the pod restarted)"`
	Restart         Restart    `envconfig:"HERD_RESTART" desc:"which worker exits are followed by a restart: on-failure (non-zero or signal), always, never"`
	BackoffMin      Duration   `envconfig:"HERD_BACKOFF_MIN" desc:"delay before the first restart of a failing slot; doubles per quick failure (0 restarts at once)"`
	BackoffMax      Duration   `envconfig:"HERD_BACKOFF_MAX" desc:"longest delay between restarts of a slot"`
	BackoffReset    Duration   `envconfig:"HERD_BACKOFF_RESET" desc:"uptime after which a worker counts as stable and its slot's delay starts again from the minimum"`
	ShutdownTimeout Duration   `envconfig:"HERD_SHUTDOWN_TIMEOUT" desc:"on SIGTERM/SIGINT, how long to wait for every worker and descendant before SIGKILL"`
	ShutdownDelay   Duration   `envconfig:"HERD_SHUTDOWN_DELAY" desc:"on SIGTERM/SIGINT, keep serving this long with readiness failing (while Kubernetes removes the pod from its endpoints) before stopping workers"`
	StopSignal      Signal     `envconfig:"HERD_WORKER_STOP_SIGNAL" desc:"signal that asks a worker to stop: TERM, or QUIT for nginx- and unicorn-style servers"`
	NodeStop        NodeStop   `envconfig:"HERD_NODE_STOP" desc:"how herd stops a worker that speaks Node's cluster protocol: disconnect (its servers close and in-flight requests finish; the stop signal follows after HERD_DISCONNECT_GRACE, SIGKILL at HERD_SHUTDOWN_TIMEOUT) or signal (the stop signal at once, for apps whose SIGTERM handler is their shutdown)"`
	DisconnectGrace Grace      `envconfig:"HERD_DISCONNECT_GRACE" desc:"with HERD_NODE_STOP=disconnect, how long a worker may take to finish after disconnect before it also gets the stop signal: a duration up to half of HERD_SHUTDOWN_TIMEOUT, or auto (half of it)"`
	ExitRemap       Remap      `envconfig:"HERD_EXIT_REMAP" desc:"rewrite herd's exit code, FROM=TO[,FROM=TO] (143=0 reports a SIGTERM stop as success)"`
	TerminationLog  LogPath    `envconfig:"HERD_TERMINATION_LOG" desc:"file that receives a summary (at most 4 KiB) on exit; the default is written only where it exists (Kubernetes mounts it), a path you set is created (a relative one in the directory herd was started in); off (any case) disables"`
	Subreaper       Bool       `envconfig:"HERD_SUBREAPER" desc:"when not PID 1, adopt orphaned descendants (PR_SET_CHILD_SUBREAPER)"`
	LogFormat       LogFormat  `envconfig:"HERD_LOG_FORMAT" desc:"log format on stderr: text or json"`
	LogLevel        LogLevel   `envconfig:"HERD_LOG_LEVEL" desc:"least severe level logged: debug, info, warn, error"`
}

// configFileVar names the YAML file to read; it is not itself a setting.
const configFileVar = "HERD_CONFIG"

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Workers:         Workers{Auto: true},
		CPURounding:     Rounding(cpus.Nearest),
		CPURecheck:      Duration(5 * time.Second),
		ScaleDownChecks: 3,
		WorkerHints:     true,
		Restart:         Restart(cluster.RestartOnFailure),
		BackoffMin:      Duration(250 * time.Millisecond),
		BackoffMax:      Duration(16 * time.Second),
		BackoffReset:    Duration(30 * time.Second),
		ShutdownTimeout: Duration(25 * time.Second),
		ExitRemap:       Remap{},
		StopSignal:      Signal(unix.SIGTERM),
		NodeStop:        NodeStop(cluster.NodeStopDisconnect),
		DisconnectGrace: Grace{Auto: true},
		SchedPolicy:     Policy(cluster.PolicyRR),
		NodeChannel:     true,
		ReadySignal:     Ready(cluster.ReadyListening),
		ReadyTimeout:    Duration(60 * time.Second),
		HealthAddr:      ":9090",
		ReadyMin:        1,
		LivenessGrace:   Duration(30 * time.Second),
		TerminationLog:  "/dev/termination-log",
		Subreaper:       true,
		LogFormat:       "text",
		LogLevel:        "info",
	}
}

// setting is one field of Config seen through reflection.
type setting struct {
	env, flag, key, desc string
	value                func(*Config) value
}

// value is what every setting type implements: flag.Value, which envconfig
// also accepts as its Setter.
type value interface {
	Set(string) error
	String() string
}

// settings lists Config's fields in declaration order.
var settings = func() []setting {
	t := reflect.TypeFor[Config]()
	out := make([]setting, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		env := f.Tag.Get("envconfig")
		name := strings.ToLower(strings.TrimPrefix(env, "HERD_"))
		idx := i
		out = append(out, setting{
			env:  env,
			flag: strings.ReplaceAll(name, "_", "-"),
			key:  name,
			desc: f.Tag.Get("desc"),
			value: func(c *Config) value {
				return reflect.ValueOf(c).Elem().Field(idx).Addr().Interface().(value)
			},
		})
	}
	return out
}()

// Source says where a setting's value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Loaded is a configuration with the origin of each value.
type Loaded struct {
	Config
	File    string            // YAML file read, if any
	Sources map[string]Source // by variable name
}

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

// LoadConfig builds the configuration from defaults, then the YAML file
// named by --config or HERD_CONFIG, then HERD_* variables, then flags.
// flags holds the flags given on the command line, in order, by flag name.
func LoadConfig(flags []flagValue) (*Loaded, error) {
	l := &Loaded{Config: Defaults(), Sources: map[string]Source{}}
	for _, s := range settings {
		l.Sources[s.env] = FromDefault
	}

	file, fileFrom := os.Getenv(configFileVar), configFileVar
	for _, f := range flags {
		if f.name == "config" {
			file, fileFrom = f.val, "--config"
		}
	}
	if file != "" {
		if err := l.loadFile(fileFrom, file); err != nil {
			return nil, err
		}
	}

	if err := l.loadEnv(); err != nil {
		return nil, err
	}

	for _, f := range flags {
		if f.name == "config" {
			continue
		}
		s := settingByFlag(f.name)
		if err := s.value(&l.Config).Set(f.val); err != nil {
			return nil, badValue("--"+f.name, f.val, fmt.Errorf("%w (%s)", err, s.env))
		}
		l.Sources[s.env] = FromFlag
	}
	return l, l.check()
}

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
			return &ConfigError{fmt.Sprintf("%s: unknown key %s; known keys: %s", where, quote(k), knownKeys())}
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

// loadEnv applies the HERD_* variables that are set. envconfig sees only
// the fields' explicit names (the prefix is part of each tag), so it never
// falls back to an unprefixed variable such as PORT, and it has no defaults
// to overwrite values from the file.
func (l *Loaded) loadEnv() error {
	if err := envconfig.Process("", &l.Config); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return badValue(pe.KeyName, pe.Value, pe.Err)
		}
		return &ConfigError{err.Error()}
	}
	for _, s := range settings {
		if _, ok := os.LookupEnv(s.env); ok {
			l.Sources[s.env] = FromEnv
		}
	}
	// Node's own variable for the policy, when herd's is not set.
	if v, ok := os.LookupEnv("NODE_CLUSTER_SCHED_POLICY"); ok && l.Sources["HERD_SCHED_POLICY"] != FromEnv {
		if err := l.SchedPolicy.Set(v); err != nil {
			return badValue("NODE_CLUSTER_SCHED_POLICY", v, err)
		}
		l.Sources["HERD_SCHED_POLICY"] = FromEnv
	}
	return nil
}

// check validates what single values cannot: relations between settings.
func (l *Loaded) check() error {
	if l.MaxWorkers > 0 && l.MinWorkers > l.MaxWorkers {
		return l.bad("HERD_MIN_WORKERS", fmt.Errorf("must not be more than %s", l.shown("HERD_MAX_WORKERS")))
	}
	if l.ScaleDownChecks < 1 {
		return l.bad("HERD_SCALE_DOWN_CHECKS", errors.New("must be at least 1"))
	}
	if g := l.DisconnectGrace; !g.Auto && 2*time.Duration(g.D) > time.Duration(l.ShutdownTimeout) {
		return l.bad("HERD_DISCONNECT_GRACE", fmt.Errorf("must not be more than half of %s (the stop signal needs time too), or auto",
			l.shown("HERD_SHUTDOWN_TIMEOUT")))
	}
	if l.BackoffMax < l.BackoffMin {
		return l.bad("HERD_BACKOFF_MAX", fmt.Errorf("must not be less than %s", l.shown("HERD_BACKOFF_MIN")))
	}
	// /readyz passes once HERD_READY_MIN workers listen: more than can ever
	// run, and the pod never becomes ready.
	if !l.Workers.Auto && int(l.ReadyMin) > l.Workers.N {
		return l.bad("HERD_READY_MIN", fmt.Errorf("must not be more than %s, the workers herd runs (readiness could never pass)",
			l.shown("HERD_WORKERS")))
	}
	if l.Workers.Auto && l.MaxWorkers > 0 && l.ReadyMin > l.MaxWorkers {
		return l.bad("HERD_READY_MIN", fmt.Errorf("must not be more than %s, the most workers %s runs (readiness could never pass)",
			l.shown("HERD_MAX_WORKERS"), l.shown("HERD_WORKERS")))
	}
	return nil
}

func settingByFlag(name string) setting {
	for _, s := range settings {
		if s.flag == name {
			return s
		}
	}
	panic("unknown flag " + name) // the flag set only defines known flags
}

func settingByEnv(env string) (setting, bool) {
	for _, s := range settings {
		if s.env == env {
			return s, true
		}
	}
	return setting{}, false
}

func settingByKey(key string) (setting, bool) {
	for _, s := range settings {
		if s.key == key {
			return s, true
		}
	}
	return setting{}, false
}

func knownKeys() string {
	keys := make([]string, len(settings))
	for i, s := range settings {
		keys[i] = s.key
	}
	return strings.Join(keys, ", ")
}

// UnknownVariables lists HERD_* variables in environ that herd does not
// know, most likely misspelt settings. Names Kubernetes injects for a Service
// called herd (HERD_PORT, HERD_PORT_8080_TCP..., HERD_SERVICE_HOST...) and
// the variables herd gives its workers are not reported.
func UnknownVariables(environ []string) []string {
	known := map[string]bool{configFileVar: true, "HERD_WORKER_ID": true, "HERD_WORKER_INDEX": true}
	for _, s := range settings {
		known[s.env] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "HERD_") || known[k] ||
			k == "HERD_PORT" || strings.HasPrefix(k, "HERD_PORT_") || strings.HasPrefix(k, "HERD_SERVICE_") {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// flagValue is one flag as given on the command line.
type flagValue struct{ name, val string }

// recorder is the flag.Value of every setting flag: it keeps the text so
// flags can be applied last, after the file and the environment.
type recorder struct {
	name   string
	isBool bool
	out    *[]flagValue
}

func (r recorder) String() string     { return "" }
func (r recorder) IsBoolFlag() bool   { return r.isBool }
func (r recorder) Set(v string) error { *r.out = append(*r.out, flagValue{r.name, v}); return nil }

// newFlagSet defines --config and one flag per setting, recording into out.
func newFlagSet(out *[]flagValue) *flag.FlagSet {
	fs := flag.NewFlagSet("herd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(recorder{name: "config", out: out}, "config", "YAML configuration file (HERD_CONFIG)")
	defaults := Defaults()
	for _, s := range settings {
		_, isBool := s.value(&defaults).(*Bool)
		fs.Var(recorder{name: s.flag, isBool: isBool, out: out}, s.flag, s.desc+" ("+s.env+")")
	}
	return fs
}

// WriteTable prints every setting: variable, flag, value, default, source
// and meaning. With l nil it prints the defaults alone.
func WriteTable(w io.Writer, l *Loaded) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defaults := Defaults()
	if l == nil {
		fmt.Fprintln(tw, "VARIABLE\tFLAG\tDEFAULT\tMEANING")
	} else {
		fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE\tDEFAULT\tMEANING")
	}
	for _, s := range settings {
		def := show(s.value(&defaults).String())
		if l == nil {
			fmt.Fprintf(tw, "%s\t--%s\t%s\t%s\n", s.env, s.flag, def, s.desc)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.env, show(s.value(&l.Config).String()), l.Sources[s.env], def, s.desc)
	}
	return tw.Flush()
}

func show(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// The setting types. Each Set says what is allowed when it refuses a value.

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

// Rounding is a cpus.Rounding.
type Rounding cpus.Rounding

func (r *Rounding) Set(s string) error {
	v, err := cpus.ParseRounding(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*r = Rounding(v)
	return nil
}

func (r *Rounding) String() string { return string(*r) }

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

// Policy is a cluster.Policy.
type Policy cluster.Policy

func (p *Policy) Set(s string) error {
	v, err := cluster.ParsePolicy(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*p = Policy(v)
	return nil
}

func (p *Policy) String() string { return string(*p) }

// Ready is a cluster.ReadySignal.
type Ready cluster.ReadySignal

func (r *Ready) Set(s string) error {
	v, err := cluster.ParseReady(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*r = Ready(v)
	return nil
}

func (r *Ready) String() string { return string(*r) }

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

// Restart is a cluster.Restart policy.
type Restart cluster.Restart

func (r *Restart) Set(s string) error {
	p, err := cluster.ParseRestart(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*r = Restart(p)
	return nil
}

func (r *Restart) String() string { return string(*r) }

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

// NodeStop is a cluster.NodeStop.
type NodeStop cluster.NodeStop

func (n *NodeStop) Set(s string) error {
	v, err := cluster.ParseNodeStop(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*n = NodeStop(v)
	return nil
}

func (n *NodeStop) String() string { return string(*n) }

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

// HealthAddr is HERD_HEALTH_ADDR: host:port for the probe server, or off.
// It is checked here, as far as can be without listening, so that a value
// net.Listen cannot take fails herd config too.
type HealthAddr string

// errHealthAddr says what HERD_HEALTH_ADDR allows.
const errHealthAddr = "must be host:port with a port from 0 to 65535 and a host that is empty, an IP address ([IPv6] in brackets) or a name of letters, digits, dots and hyphens (:9090, 127.0.0.1:9090, [::1]:9090), or off"

func (h *HealthAddr) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, off) {
		*h = off
		return nil
	}
	if err := checkHostPort(s); err != nil {
		return fmt.Errorf("%v: %s", err, errHealthAddr)
	}
	*h = HealthAddr(s)
	return nil
}

func (h *HealthAddr) String() string { return string(*h) }

// checkHostPort says what is wrong with addr as host:port, or nil.
func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(strings.TrimSuffix(ae.Err, " in address"))
		}
		return err
	}
	if port == "" {
		return errors.New("no port after the colon")
	}
	if strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n, err := strconv.Atoi(port); err != nil || n > 65535 {
		return fmt.Errorf("port %q is above 65535", port)
	}
	// SplitHostPort has taken care that a host with colons was bracketed.
	ip, err := netip.ParseAddr(host)
	if strings.HasPrefix(addr, "[") {
		if err != nil || !ip.Is6() {
			return fmt.Errorf("host %q in brackets is not an IPv6 address", host)
		}
		return nil
	}
	if err == nil || host == "" {
		return nil
	}
	if !hostName(host) {
		return fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return nil
}

// hostName reports whether s is a host name: labels of letters, digits and
// hyphens (not at either end, at most 63 each) separated by dots, 253 bytes
// at most, and not all digits (that would be a mistyped IPv4 address).
func hostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || strings.Trim(s, "0123456789.") == "" {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

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

// MarkdownTable is the settings table of the README, generated from Config.
func MarkdownTable() string {
	var b strings.Builder
	defaults := Defaults()
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "| `%s` | `--%s` | `%s` | %s |\n", s.env, s.flag, show(s.value(&defaults).String()), s.desc)
	}
	return b.String()
}
