package acceptance

// Ports for the tests' herds, and the listening sockets the kernel's TCP
// tables show (the tests share herd's network namespace).

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
	portNext int
)

// portFree reports whether port is free for TCP (dual-stack and
// 127.0.0.1) and UDP on 127.0.0.1.
func portFree(port int) bool {
	for _, a := range []struct{ net, addr string }{{"tcp", ""}, {"tcp4", "127.0.0.1"}} {
		l, err := net.Listen(a.net, net.JoinHostPort(a.addr, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	c, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort returns a port that is free for TCP (dual-stack and
// 127.0.0.1) and UDP on 127.0.0.1, not handed out before in this run, and
// below the kernel's ephemeral range: the tests' many client connections
// take their local ports from that range, and one of them could take a port
// handed out here before herd binds it.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	first := max(low-12000, 1024)
	if portNext == 0 {
		portNext = first + (os.Getpid()*7919)%(low-first)
	}
	for i := 0; i < low-first; i++ {
		port := portNext
		portNext++
		if portNext >= low {
			portNext = first
		}
		if !portUsed[port] && portFree(port) {
			portUsed[port] = true
			return port
		}
	}
	t.Fatalf("no free port in [%d, %d)", first, low)
	return 0
}

// lowPort returns a port below net.ipv4.ip_unprivileged_port_start that
// is free for TCP (every address and 127.0.0.1) and UDP on 127.0.0.1, 81 if
// it can, not handed out before in this run.
func lowPort(t *testing.T) int {
	t.Helper()
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	if start <= 1 {
		missing(t, "a privileged port: net.ipv4.ip_unprivileged_port_start is %d", start)
	}
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < start; i++ {
		port := (81 + i) % start
		if port != 0 && !portUsed[port] && portFree(port) {
			portUsed[port] = true
			return port
		}
	}
	missing(t, "a free port below %d", start)
	return 0
}

// listener is a socket in LISTEN state in the kernel's TCP tables.
type listener struct {
	uid   string // its owner
	inode string
}

// listeners returns the sockets in LISTEN state on port, from
// /proc/net/tcp and tcp6 (the test's network namespace is herd's).
func listeners(port int) []listener {
	var out []listener
	hexPort := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			p := strings.Fields(line)
			if len(p) > 9 && strings.HasSuffix(p[1], hexPort) && p[3] == "0A" {
				out = append(out, listener{uid: p[7], inode: p[9]})
			}
		}
	}
	return out
}

// listenInodes returns the inodes of the sockets in LISTEN state on port.
func listenInodes(port int) map[string]bool {
	out := map[string]bool{}
	for _, l := range listeners(port) {
		out[l.inode] = true
	}
	return out
}

// listenUIDs returns the owner of every socket in LISTEN state on port.
func listenUIDs(port int) []string {
	var out []string
	for _, l := range listeners(port) {
		out = append(out, l.uid)
	}
	return out
}
