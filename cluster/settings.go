package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The settings of package cluster that take one of a few words. Each type
// reads its own text wherever herd's settings come from: Set (flag.Value,
// and envconfig's Setter) and UnmarshalText take the text of a flag or a
// variable, UnmarshalJSON a scalar of the YAML file, which sigs.k8s.io/yaml
// decodes through JSON. All three trim the text and, but for Restart, take
// it in any case; their errors say what is allowed, and the caller names the
// setting and the value.

// Policy says how workers get the listening sockets.
type Policy string

const (
	// PolicyNone gives every worker every listening socket (fds 3 and up,
	// LISTEN_FDS); the kernel picks the worker that accepts.
	PolicyNone Policy = "none"
	// PolicyReuseport gives each slot its own SO_REUSEPORT socket per
	// address; the kernel hashes connections over them.
	PolicyReuseport Policy = "reuseport"
	// PolicyRR: herd accepts and hands each connection to the next free
	// worker over Node's cluster protocol, as Node's primary does.
	PolicyRR Policy = "rr"
	// PolicyAuto, the default, serves every language: every worker gets
	// every listening socket, as under PolicyNone, and for an address a
	// worker asks for through Node's cluster protocol herd accepts and
	// hands the connections out, as under PolicyRR.
	PolicyAuto Policy = "auto"
)

// handsOff reports whether herd accepts and hands out the connections of
// an address workers ask for through the cluster protocol.
func (p Policy) handsOff() bool { return p == PolicyRR || p == PolicyAuto }

// parsePolicy accepts auto, rr, none (or its alias shared) and reuseport.
func parsePolicy(s string) (Policy, error) {
	switch s {
	case "auto":
		return PolicyAuto, nil
	case "none", "shared":
		return PolicyNone, nil
	case "reuseport":
		return PolicyReuseport, nil
	case "rr":
		return PolicyRR, nil
	}
	return "", fmt.Errorf("must be auto (every worker gets the sockets; herd hands connections out to workers that speak Node's cluster protocol), rr (herd accepts; workers speak the protocol), none (alias shared) or reuseport")
}

// Set reads s as parsePolicy does, trimmed and in any case.
func (p *Policy) Set(s string) error {
	v, err := parsePolicy(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Policy) String() string               { return string(p) }
func (p Policy) MarshalText() ([]byte, error) { return []byte(p), nil }
func (p *Policy) UnmarshalText(text []byte) error {
	return unmarshalText(text, p.Set, func() { *p = "" })
}
func (p *Policy) UnmarshalJSON(data []byte) error {
	return unmarshalScalar(data, p.Set, func() { *p = "" })
}

// ReadySignal says what makes a worker count as listening.
type ReadySignal string

const (
	// ReadyListening: the worker says so, by sd_notify READY=1 (or the
	// cluster protocol's listening message).
	ReadyListening ReadySignal = "listening"
	// ReadyNotify: only sd_notify READY=1 counts.
	ReadyNotify ReadySignal = "notify"
	// ReadyStarted: a worker is listening once its process has run for
	// startedAfter, for servers that say nothing.
	ReadyStarted ReadySignal = "started"
)

// parseReady accepts listening, notify and started.
func parseReady(s string) (ReadySignal, error) {
	switch r := ReadySignal(s); r {
	case ReadyListening, ReadyNotify, ReadyStarted:
		return r, nil
	}
	return "", fmt.Errorf("must be listening, notify or started")
}

// Set reads s as parseReady does, trimmed and in any case.
func (r *ReadySignal) Set(s string) error {
	v, err := parseReady(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r ReadySignal) String() string               { return string(r) }
func (r ReadySignal) MarshalText() ([]byte, error) { return []byte(r), nil }
func (r *ReadySignal) UnmarshalText(text []byte) error {
	return unmarshalText(text, r.Set, func() { *r = "" })
}
func (r *ReadySignal) UnmarshalJSON(data []byte) error {
	return unmarshalScalar(data, r.Set, func() { *r = "" })
}

// Restart says which exits of a worker are followed by a new one in its slot.
type Restart string

const (
	// RestartOnFailure restarts a worker that exited non-zero or was killed
	// by a signal; one that exits 0 on its own has finished its work.
	RestartOnFailure Restart = "on-failure"
	// RestartAlways restarts a worker however it ended.
	RestartAlways Restart = "always"
	// RestartNever never restarts: with one worker herd behaves like tini.
	RestartNever Restart = "never"
)

// parseRestart accepts on-failure, always and never.
func parseRestart(s string) (Restart, error) {
	switch r := Restart(s); r {
	case RestartOnFailure, RestartAlways, RestartNever:
		return r, nil
	}
	return "", fmt.Errorf("must be one of on-failure, always, never")
}

// Set reads s as parseRestart does, trimmed; unlike the other words it is
// taken in lower case only, as herd always has.
func (r *Restart) Set(s string) error {
	v, err := parseRestart(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Restart) String() string               { return string(r) }
func (r Restart) MarshalText() ([]byte, error) { return []byte(r), nil }
func (r *Restart) UnmarshalText(text []byte) error {
	return unmarshalText(text, r.Set, func() { *r = "" })
}
func (r *Restart) UnmarshalJSON(data []byte) error {
	return unmarshalScalar(data, r.Set, func() { *r = "" })
}

// NodeStop says how herd asks a worker that speaks Node's cluster protocol
// to stop.
type NodeStop string

const (
	// NodeStopDisconnect sends Node's disconnect: the worker's servers
	// close and its in-flight requests finish. A worker still running
	// after the disconnect grace gets the stop signal, and SIGKILL at the
	// shutdown timeout.
	NodeStopDisconnect NodeStop = "disconnect"
	// NodeStopSignal sends the stop signal at once, as to every other
	// worker, for apps whose signal handler is their shutdown.
	NodeStopSignal NodeStop = "signal"
)

// parseNodeStop accepts disconnect and signal.
func parseNodeStop(s string) (NodeStop, error) {
	switch n := NodeStop(s); n {
	case NodeStopDisconnect, NodeStopSignal:
		return n, nil
	}
	return "", fmt.Errorf("must be disconnect (Node's disconnect first, the stop signal after HERD_DISCONNECT_GRACE) or signal (the stop signal at once)")
}

// Set reads s as parseNodeStop does, trimmed and in any case.
func (n *NodeStop) Set(s string) error {
	v, err := parseNodeStop(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

func (n NodeStop) String() string               { return string(n) }
func (n NodeStop) MarshalText() ([]byte, error) { return []byte(n), nil }
func (n *NodeStop) UnmarshalText(text []byte) error {
	return unmarshalText(text, n.Set, func() { *n = "" })
}
func (n *NodeStop) UnmarshalJSON(data []byte) error {
	return unmarshalScalar(data, n.Set, func() { *n = "" })
}

// unmarshalScalar applies a JSON scalar to set as the text a variable would
// hold, as herd reads its YAML file: a string as it is, a number or a
// boolean as written (so 2 is refused as "2" is). The empty string and
// null are the zero value (unset): herd's own JSON, a Snapshot published
// before the supervisor set its policy, reads back. A list or a map is no
// value.
func unmarshalScalar(data []byte, set func(string) error, unset func()) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("must be a single value")
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			unset()
			return nil
		}
		return set(x)
	case bool:
		return set(strconv.FormatBool(x))
	case json.Number:
		return set(x.String())
	case nil:
		unset()
		return nil
	}
	return errors.New("must be a single value, not a list or a map")
}

// unmarshalText is UnmarshalText: empty text is the zero value (the
// setting not set, as a Snapshot published before the supervisor knew
// its policy reads back), any other text as Set takes it.
func unmarshalText(text []byte, set func(string) error, unset func()) error {
	if len(text) == 0 {
		unset()
		return nil
	}
	return set(string(text))
}
