package notify

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Notify wire values: the keys of sd_notify(3) that herd acts on, and the
// values that switch them on.
const (
	keyReady     = "READY"     // READY=1: the worker serves
	keyReloading = "RELOADING" // RELOADING=1: reloading; READY=1 follows when done
	keyStopping  = "STOPPING"  // STOPPING=1: the worker is shutting down (draining)
	keyStatus    = "STATUS"    // STATUS=free text, one line
	keyWatchdog  = "WATCHDOG"  // WATCHDOG=1 heartbeat; WATCHDOG=trigger: treat me as failed now
	keyMainPID   = "MAINPID"   // MAINPID=4711: the service's main process, if not the sender

	valueOn      = "1"       // READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1
	valueTrigger = "trigger" // WATCHDOG=trigger
)

// maxPayload is the largest datagram accepted, systemd's NOTIFY_BUFFER_MAX
// (PIPE_BUF, 4096 on Linux).
const maxPayload = 4096

// Message is one datagram: who sent it and what it said. One datagram
// may set several flags; systemd lets STOPPING=1 win over READY=1, and READY=1
// over RELOADING=1 (READY=1 with RELOADING=1 means a reload has finished).
type Message struct {
	// Pid is the sender, from the kernel's SCM_CREDENTIALS, not from the
	// payload. It may be a child of a worker; see Attribute and Worker.
	Pid int
	// Lineage is Pid followed by its ancestors (at most maxAncestors),
	// read from /proc by Run when the datagram arrived, while a short-lived
	// sender such as systemd-notify is most likely still there. Nil when the
	// sender had already gone; parse leaves it nil.
	Lineage []int
	// Fields holds every assignment, keys as sent; when a key repeats the
	// last value wins.
	Fields map[string]string
	// Ignored counts the lines that were not KEY=VALUE (no '=', empty key),
	// and a STATUS= that was not UTF-8.
	Ignored int

	Ready           bool // READY=1
	Reloading       bool // RELOADING=1
	Stopping        bool // STOPPING=1
	Watchdog        bool // WATCHDOG=1
	WatchdogTrigger bool // WATCHDOG=trigger
	Status          string
	HasStatus       bool // STATUS= was sent (possibly empty: clears the status)
	MainPID         int  // MAINPID=, 0 when absent or not a positive number
}

// Worker maps the message's sender to a worker pid through Lineage: the
// sender itself if it is in workers, else its nearest ancestor that is. When
// Lineage is empty (the sender had exited before Run looked), only Pid itself
// is checked.
func (m Message) Worker(workers map[int]bool) (worker int, ok bool) {
	if len(m.Lineage) == 0 {
		return m.Pid, m.Pid > 0 && workers[m.Pid]
	}
	for _, pid := range m.Lineage {
		if workers[pid] {
			return pid, true
		}
	}
	return 0, false
}

// Why a datagram is dropped.
var (
	errTooLong   = fmt.Errorf("notify: datagram longer than %d bytes", maxPayload)
	errNUL       = errors.New("notify: datagram holds a NUL byte")
	errEmpty     = errors.New("notify: datagram holds no KEY=VALUE assignment")
	errNoCreds   = errors.New("notify: datagram without sender credentials")
	errTruncated = errors.New("notify: datagram with truncated control data (too many fds)")
)

// parse parses one payload: assignments KEY=VALUE separated by '\n'
// (or '\r'). Empty lines are skipped; a line without '=' or with an empty key
// is skipped and counted in Ignored, as systemd ignores what it does not
// understand. The value is everything after the first '=', taken literally.
// One trailing NUL byte is allowed. It fails when the payload is longer than
// maxPayload, holds any other NUL byte, or holds no assignment at all.
// Pid and Lineage are left zero: the payload does not say who sent it.
func parse(payload []byte) (Message, error) {
	if len(payload) > maxPayload {
		return Message{}, errTooLong
	}
	if i := bytes.IndexByte(payload, 0); i >= 0 {
		if i != len(payload)-1 {
			return Message{}, errNUL
		}
		payload = payload[:i]
	}
	m := Message{Fields: make(map[string]string)}
	for line := range strings.FieldsFuncSeq(string(payload), isNewline) {
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			m.Ignored++
			continue
		}
		m.Fields[key] = value
	}
	if len(m.Fields) == 0 {
		return Message{}, errEmpty
	}
	m.Ready = m.Fields[keyReady] == valueOn
	m.Reloading = m.Fields[keyReloading] == valueOn
	m.Stopping = m.Fields[keyStopping] == valueOn
	m.Watchdog = m.Fields[keyWatchdog] == valueOn
	m.WatchdogTrigger = m.Fields[keyWatchdog] == valueTrigger
	if status, ok := m.Fields[keyStatus]; ok {
		if utf8.ValidString(status) {
			m.Status, m.HasStatus = status, true
		} else {
			m.Ignored++
		}
	}
	if pid, err := strconv.Atoi(m.Fields[keyMainPID]); err == nil && pid > 0 {
		m.MainPID = pid
	}
	return m, nil
}

func isNewline(r rune) bool { return r == '\n' || r == '\r' }
