package main

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster"
	"github.com/herd-sh/herd/cluster/cpus"
)

// Config is herd's whole configuration. Every field is one setting: the
// envconfig tag is its variable, from which its flag (--shutdown-timeout)
// and its key in the YAML file (shutdown_timeout) are derived; desc says
// what it means. Each field's type parses its own text (Set) so the three
// sources share one validation and one wording of errors.
type Config struct {
	Workers           Workers             `envconfig:"HERD_WORKERS" desc:"number of workers, or auto: one per CPU the container may use (herd cpus shows how that is found)"`
	CPURequest        CPUAmount           `envconfig:"HERD_CPU_REQUEST" desc:"the container's CPU request, used by auto when no CPU limit is found: millicores as the Downward API writes them (500) or a quantity (500m, 2, 1.5)"`
	CPULimit          CPUAmount           `envconfig:"HERD_CPU_LIMIT" desc:"the container's CPU limit (limits.cpu through the Downward API), used by auto when no cgroup quota is visible, ahead of the request; set it only for a container with a limit: without one Kubernetes writes the node's allocatable CPU"`
	CPURounding       cpus.Rounding       `envconfig:"HERD_CPU_ROUNDING" desc:"how auto turns the CPU budget into workers: nearest (halves up), floor or ceil"`
	MinWorkers        Count               `envconfig:"HERD_MIN_WORKERS" desc:"with auto, at least this many workers (0: no minimum)"`
	MaxWorkers        Count               `envconfig:"HERD_MAX_WORKERS" desc:"with auto, at most this many workers (0: no maximum)"`
	CPUReserve        CPUAmount           `envconfig:"HERD_CPU_RESERVE" desc:"with auto, CPU kept for herd itself and taken off a budget above one CPU before rounding (100m, 0.25)"`
	CPURecheck        Duration            `envconfig:"HERD_CPU_RECHECK" desc:"with auto, how often the CPU budget is read again to follow an in-place resize (0: only on SIGHUP)"`
	ScaleDownChecks   Count               `envconfig:"HERD_SCALE_DOWN_CHECKS" desc:"with auto, how many re-checks in a row must see a smaller budget before workers are stopped"`
	WorkerHints       Bool                `envconfig:"HERD_WORKER_HINTS" desc:"give each worker its share of the CPU budget (with auto: HERD_WORKER_CPUS, GOMAXPROCS, UV_THREADPOOL_SIZE) and of the memory limit (when one is known: HERD_WORKER_MEMORY, Node's --max-old-space-size in NODE_OPTIONS, GOMEMLIMIT), unless already set"`
	MemoryLimit       MemoryAmount        `envconfig:"HERD_MEMORY_LIMIT" desc:"the container's memory limit (limits.memory through the Downward API, in bytes or with its unit: 268435456, 256Mi, 1G), used when no cgroup memory limit is visible (herd memory shows how the budget is found); set it only for a container with a limit: without one Kubernetes writes the node's allocatable memory"`
	WorkerMaxMemory   MemoryAmount        `envconfig:"HERD_WORKER_MAX_MEMORY" desc:"replace a worker gracefully (its replacement listens first, one slot at a time) once its memory is above this (256Mi, 1G; 0: off)"`
	MemoryHigh        Watermark           `envconfig:"HERD_MEMORY_HIGH" desc:"replace the largest worker gracefully once the container's working set is above this: a share of the memory limit (90%, when a limit is known) or an amount (230Mi); off disables"`
	MemoryCritical    Watermark           `envconfig:"HERD_MEMORY_CRITICAL" desc:"stop the largest worker at once (a new one starts in its slot) once the working set is above this, rather than let the kernel's OOM killer choose: a share of the limit (95%) or an amount, above HERD_MEMORY_HIGH; off disables"`
	MaxRequests       Requests            `envconfig:"HERD_MAX_REQUESTS" desc:"replace a worker gracefully once it has taken this many connections from herd (rr, or auto for workers that speak Node's cluster protocol; 0: off)"`
	MaxRequestsJitter Requests            `envconfig:"HERD_MAX_REQUESTS_JITTER" desc:"add a random 0 to this to each worker's HERD_MAX_REQUESTS, so that workers started together are not replaced together"`
	Listen            Listen              `envconfig:"HERD_LISTEN" desc:"addresses herd binds before any worker starts, separated by commas: :8080, 0.0.0.0:8080, [::]:8080, tcp4://..., tcp6://..., unix:///run/app.sock?mode=0660&owner=app&group=app&name=web"`
	Backlog           Count               `envconfig:"HERD_BACKLOG" desc:"listen backlog of each socket (0: the kernel's net.core.somaxconn)"`
	SchedPolicy       cluster.Policy      `envconfig:"HERD_SCHED_POLICY" desc:"how connections reach workers: auto (every worker gets every socket, as fd 3.. with LISTEN_FDS and in reply to listen(), and herd accepts and hands out the connections of an address workers ask for through Node's cluster protocol: any language works), rr (herd accepts and hands each to the next free worker over Node's cluster protocol), none (alias shared: the workers accept from the sockets they get) or reuseport (one SO_REUSEPORT socket per worker slot); NODE_CLUSTER_SCHED_POLICY is read when this is not set"`
	NodeChannel       Bool                `envconfig:"HERD_NODE_CHANNEL" desc:"give every worker Node's cluster IPC channel (NODE_CHANNEL_FD, NODE_UNIQUE_ID), so an unmodified Node server's listen() runs through herd; false for workers that must not see Node's variables"`
	ReadySignal       cluster.ReadySignal `envconfig:"HERD_READY_SIGNAL" desc:"what makes a worker count as listening: listening (it says so: sd_notify READY=1), notify (READY=1 only) or started (its process has run for a second)"`
	ReadyTimeout      Duration            `envconfig:"HERD_READY_TIMEOUT" desc:"how long a rolling restart waits for a replacement to listen before it gives up"`
	WatchdogTimeout   Duration            `envconfig:"HERD_WATCHDOG_TIMEOUT" desc:"restart a worker that sends no sd_notify WATCHDOG=1 for this long (0: off); workers get WATCHDOG_USEC"`
	UID               UserID              `envconfig:"HERD_UID" desc:"user the workers run as, a name or a number (empty: herd's own)"`
	GID               GroupID             `envconfig:"HERD_GID" desc:"group the workers run as, a name or a number (empty: the user's primary group, or herd's own)"`
	HealthAddr        HealthAddr          `envconfig:"HERD_HEALTH_ADDR" desc:"address of the probe server (/livez, /readyz, /startupz, /status), host:port with a numeric port (:9090, 127.0.0.1:9090, [::1]:9090); off (any case) disables it"`
	ReadyMin          Count               `envconfig:"HERD_READY_MIN" desc:"workers that must be listening for /readyz to pass; at most HERD_WORKERS (or HERD_MAX_WORKERS with auto)"`
	LivenessGrace     Duration            `envconfig:"HERD_LIVENESS_GRACE" desc:"/livez fails once no worker has been listening for this long after start-up (a crash loop then gets the pod restarted)"`
	Restart           cluster.Restart     `envconfig:"HERD_RESTART" desc:"which worker exits are followed by a restart: on-failure (non-zero or signal), always, never"`
	BackoffMin        Duration            `envconfig:"HERD_BACKOFF_MIN" desc:"delay before the first restart of a failing slot; doubles per quick failure (0 restarts at once)"`
	BackoffMax        Duration            `envconfig:"HERD_BACKOFF_MAX" desc:"longest delay between restarts of a slot"`
	BackoffReset      Duration            `envconfig:"HERD_BACKOFF_RESET" desc:"uptime after which a worker counts as stable and its slot's delay starts again from the minimum"`
	ShutdownTimeout   Duration            `envconfig:"HERD_SHUTDOWN_TIMEOUT" desc:"on SIGTERM/SIGINT, how long to wait for every worker and descendant before SIGKILL"`
	ShutdownDelay     Duration            `envconfig:"HERD_SHUTDOWN_DELAY" desc:"on SIGTERM/SIGINT, keep serving this long with readiness failing (while Kubernetes removes the pod from its endpoints) before stopping workers"`
	StopSignal        Signal              `envconfig:"HERD_WORKER_STOP_SIGNAL" desc:"signal that asks a worker to stop: TERM, or QUIT for nginx- and unicorn-style servers"`
	NodeStop          cluster.NodeStop    `envconfig:"HERD_NODE_STOP" desc:"how herd stops a worker that speaks Node's cluster protocol: disconnect (its servers close and in-flight requests finish; the stop signal follows after HERD_DISCONNECT_GRACE, SIGKILL at HERD_SHUTDOWN_TIMEOUT) or signal (the stop signal at once, for apps whose SIGTERM handler is their shutdown)"`
	DisconnectGrace   Grace               `envconfig:"HERD_DISCONNECT_GRACE" desc:"with HERD_NODE_STOP=disconnect, how long a worker may take to finish after disconnect before it also gets the stop signal: a duration up to half of HERD_SHUTDOWN_TIMEOUT, or auto (half of it)"`
	ExitRemap         Remap               `envconfig:"HERD_EXIT_REMAP" desc:"rewrite herd's exit code, FROM=TO[,FROM=TO] (143=0 reports a SIGTERM stop as success)"`
	TerminationLog    LogPath             `envconfig:"HERD_TERMINATION_LOG" desc:"file that receives a summary (at most 4 KiB) on exit; the default is written only where it exists (Kubernetes mounts it), a path you set is created (a relative one in the directory herd was started in); off (any case) disables"`
	Subreaper         Bool                `envconfig:"HERD_SUBREAPER" desc:"when not PID 1, adopt orphaned descendants (PR_SET_CHILD_SUBREAPER)"`
	LogFormat         LogFormat           `envconfig:"HERD_LOG_FORMAT" desc:"log format on stderr: text or json"`
	LogLevel          LogLevel            `envconfig:"HERD_LOG_LEVEL" desc:"least severe level logged: debug, info, warn, error"`
}

// configFileVar names the YAML file to read; it is not itself a setting.
const configFileVar = "HERD_CONFIG"

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Workers:         Workers{Auto: true},
		CPURounding:     cpus.Nearest,
		CPURecheck:      Duration(5 * time.Second),
		ScaleDownChecks: 3,
		WorkerHints:     true,
		Restart:         cluster.RestartOnFailure,
		BackoffMin:      Duration(250 * time.Millisecond),
		BackoffMax:      Duration(16 * time.Second),
		BackoffReset:    Duration(30 * time.Second),
		ShutdownTimeout: Duration(25 * time.Second),
		ExitRemap:       Remap{},
		StopSignal:      Signal(unix.SIGTERM),
		MemoryHigh:      Watermark{Percent: 90},
		MemoryCritical:  Watermark{Percent: 95},
		NodeStop:        cluster.NodeStopDisconnect,
		DisconnectGrace: Grace{Auto: true},
		SchedPolicy:     cluster.PolicyAuto,
		NodeChannel:     true,
		ReadySignal:     cluster.ReadyListening,
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

// warnUnknownVariables logs one warning per HERD_* variable herd does not
// know, with the setting it most likely meant when one is near.
func warnUnknownVariables(log *slog.Logger, environ []string) {
	for _, name := range UnknownVariables(environ) {
		args := []any{"variable", name}
		if s := suggestVariable(name); s != "" {
			args = append(args, "hint", "did you mean "+s+"?")
		}
		log.Warn("unknown variable ignored; herd config lists the settings", args...)
	}
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
