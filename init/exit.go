package initproc

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Exit codes herd reports for its own reasons, chosen as tini and shells do.
const (
	ExitUsage         = 2   // bad command line or configuration
	ExitNotExecutable = 126 // the command exists but cannot be executed
	ExitNotFound      = 127 // the command does not exist
	ExitKilled        = 137 // 128+SIGKILL: the shutdown timeout had to kill
)

// Remap rewrites herd's final exit code: 143 -> 0 reports a stop by SIGTERM
// as success. Codes without an entry pass through.
type Remap map[int]int

// Apply returns the remapped code.
func (r Remap) Apply(code int) int {
	if to, ok := r[code]; ok {
		return to
	}
	return code
}

// ParseRemap reads "143=0,137=1". Both sides must lie in 0..255.
func ParseRemap(text string) (Remap, error) {
	r := Remap{}
	text = strings.TrimSpace(text)
	if text == "" {
		return r, nil
	}
	for _, pair := range strings.Split(text, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not FROM=TO", pair)
		}
		f, err1 := strconv.Atoi(strings.TrimSpace(from))
		t, err2 := strconv.Atoi(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || f < 0 || f > 255 || t < 0 || t > 255 {
			return nil, fmt.Errorf("%q: both codes must be integers in 0..255", pair)
		}
		if _, dup := r[f]; dup {
			return nil, fmt.Errorf("code %d is remapped twice", f)
		}
		r[f] = t
	}
	return r, nil
}

// String writes the remap back as "137=1,143=0", sorted.
func (r Remap) String() string {
	keys := make([]int, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d=%d", k, r[k])
	}
	return strings.Join(parts, ",")
}

// MaxTerminationMessage is the size Kubernetes reads from the termination
// message file; herd never writes more.
const MaxTerminationMessage = 4096

// TerminationMessage writes msg, cut to MaxTerminationMessage bytes, to path.
// An empty path or "off" writes nothing. With create false the file must
// exist already (Kubernetes bind-mounts /dev/termination-log into every
// container; outside Kubernetes herd must not leave a file in /dev). A path
// that cannot be written is reported as an error for the caller to log,
// never to fail on.
func TerminationMessage(path, msg string, create bool) error {
	if path == "" || path == "off" {
		return nil
	}
	flags := os.O_WRONLY | os.O_TRUNC
	if create {
		flags |= os.O_CREATE
	}
	if len(msg) > MaxTerminationMessage {
		msg = msg[:MaxTerminationMessage]
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(msg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
