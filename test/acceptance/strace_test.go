package acceptance

// herd's side of the Node channel, where a test needs bytes or their
// order: strace -f -Y -xx of herd and its workers (sendmsg, recvmsg,
// close; herd's threads are told from node's by their command name).

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sysCall is one completed system call.
type sysCall struct {
	tid    int
	herd   bool   // made by one of herd's threads (not a worker)
	name   string // sendmsg, recvmsg, close
	fd     int
	data   []byte // the iov bytes (at most strace's -s)
	rights []int  // fds in SCM_RIGHTS
	ret    int
	raw    string
}

var (
	straceLine    = regexp.MustCompile(`^(\d+)<([^>]*)>\s+(.*)$`)
	straceResumed = regexp.MustCompile(`^<\.\.\. (\w+) resumed>(.*)$`)
	straceIov     = regexp.MustCompile(`iov_base="((?:\\x[0-9a-f]{2})*)"`)
	straceRights  = regexp.MustCompile(`SCM_RIGHTS, cmsg_data=\[([0-9, ]+)\]`)
	straceRet     = regexp.MustCompile(`\)\s+= (-?\d+)`)
	straceHexByte = regexp.MustCompile(`\\x([0-9a-f]{2})`)
)

func unhex(s string) []byte {
	var out []byte
	for _, m := range straceHexByte.FindAllStringSubmatch(s, -1) {
		b, _ := hex.DecodeString(m[1])
		out = append(out, b...)
	}
	return out
}

// parseStrace parses strace's output; herd's threads are those whose command
// name is herd's and whose tid is no worker's pid (a worker runs herd's
// launcher before it execs node).
func parseStrace(t *testing.T, file string, workers map[int]bool) []sysCall {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("strace output: %v", err)
	}
	comm := filepath.Base(herdPath(t))
	if len(comm) > 15 {
		comm = comm[:15]
	}
	pending := map[int]string{}
	var out []sysCall
	for _, line := range strings.Split(string(b), "\n") {
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		tid, _ := strconv.Atoi(m[1])
		name := string(unhex(m[2]))
		rest := m[3]
		if strings.HasPrefix(rest, "---") || strings.HasPrefix(rest, "+++") {
			continue
		}
		if r := straceResumed.FindStringSubmatch(rest); r != nil {
			p, ok := pending[tid]
			if !ok {
				continue
			}
			delete(pending, tid)
			rest = p + r[2]
		} else if i := strings.Index(rest, " <unfinished ...>"); i >= 0 {
			pending[tid] = rest[:i]
			continue
		}
		open := strings.IndexByte(rest, '(')
		if open < 0 {
			continue
		}
		s := sysCall{tid: tid, name: rest[:open], raw: rest, herd: name == comm && !workers[tid], fd: -1}
		fdText := rest[open+1:]
		if i := strings.IndexAny(fdText, ",)"); i >= 0 {
			s.fd, _ = strconv.Atoi(strings.TrimSpace(fdText[:i]))
		}
		if r := straceRet.FindAllStringSubmatch(rest, -1); len(r) > 0 {
			s.ret, _ = strconv.Atoi(r[len(r)-1][1])
		}
		for _, iov := range straceIov.FindAllStringSubmatch(rest, -1) {
			s.data = append(s.data, unhex(iov[1])...)
		}
		if s.ret >= 0 && s.name == "recvmsg" && len(s.data) > s.ret {
			s.data = s.data[:s.ret]
		}
		if r := straceRights.FindStringSubmatch(rest); r != nil {
			for _, f := range strings.Split(r[1], ",") {
				if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
					s.rights = append(s.rights, n)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// channelFds returns herd's channel fds: those it read a cluster message on.
func channelFds(calls []sysCall) map[int]bool {
	chans := map[int]bool{}
	for _, c := range calls {
		if c.herd && c.name == "recvmsg" && c.ret > 0 && bytes.HasPrefix(c.data, []byte(`{"cmd":"NODE_`)) {
			chans[c.fd] = true
		}
	}
	return chans
}

// checkHerdWrites checks every line herd wrote on a channel: never empty,
// always one JSON value (docs/protocol.md §12.16: an empty or invalid line
// kills the worker). Lines longer than strace's -s are checked up to there.
func checkHerdWrites(t *testing.T, calls []sysCall, chans map[int]bool) int {
	t.Helper()
	n := 0
	for _, c := range calls {
		if !c.herd || c.name != "sendmsg" || !chans[c.fd] || c.ret <= 0 {
			continue
		}
		data := c.data
		if len(data) >= 8192 {
			continue // cut by strace
		}
		if len(data) == 0 || data[len(data)-1] != '\n' {
			continue // a line written in parts: its pieces are not lines
		}
		for _, line := range bytes.Split(data[:len(data)-1], []byte("\n")) {
			n++
			if len(line) == 0 {
				t.Errorf("herd wrote an empty line on fd %d: %q", c.fd, data)
			} else if !json.Valid(line) {
				t.Errorf("herd wrote a line that is not JSON on fd %d: %q", c.fd, line)
			}
		}
	}
	return n
}
