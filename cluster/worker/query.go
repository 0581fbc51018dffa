package worker

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// Wire values of the cluster layer (lib/internal/cluster/child.js).
const (
	actOnline                = "online"
	actQueryServer           = "queryServer"
	actListening             = "listening"
	actClose                 = "close"
	actNewconn               = "newconn"
	actDisconnect            = "disconnect"
	actExitedAfterDisconnect = "exitedAfterDisconnect"
)

// Node's address types (net.js listenInCluster): 4 and 6 for TCP, -1 for a
// unix socket path, whose port is -1 too.
const (
	addressTypeIPv4 = 4
	addressTypeIPv6 = 6
	addressTypeUnix = -1
)

// uvTCPIPv6Only is libuv's UV_TCP_IPV6ONLY, the flags bit node sends for
// listen({ipv6Only: true}).
const uvTCPIPv6Only = 1

// query is what one queryServer asks herd for: the fields node's
// listenInCluster sends for the equivalent listen() call, so that herd
// cannot tell a Go worker from a node one.
type query struct {
	network string   // Go's: tcp, tcp4, tcp6 or unix
	addr    net.Addr // for errors, as net.Listen reports them

	address     *string // nil is JSON null: every address, dual-stack
	port        int
	addressType int
	flags       *int // sent when an address is: node sends flags with a host
}

// parseQuery maps net.Listen's arguments to node's listen() arguments:
//
//	tcp  ":8080", "0.0.0.0:8080", "[::]:8080"  listen(8080)                     address null, addressType 4
//	tcp4 ":8080"                               listen(8080, "0.0.0.0")          address "0.0.0.0", flags 0
//	tcp6 ":8080"                               listen({port, host: "::", ipv6Only: true})  flags 1
//	tcp  "127.0.0.1:0"                         listen(0, "127.0.0.1")           addressType 4, flags 0
//	tcp  "[::1]:0"                             listen(0, "::1")                 addressType 6, flags 0
//	unix "x.sock"                              listen("/abs/x.sock")            port -1, addressType -1
//
// A wildcard address with "tcp" becomes null because that is what it means
// to net.Listen: one dual-stack socket. "tcp6" always sets IPV6_V6ONLY, as
// net.Listen does. A host name is resolved here, as node's dns.lookup does
// before it asks. ok is false for a network herd does not share (udp,
// unixpacket, ...): the caller binds it itself, as node binds an exclusive
// server.
func parseQuery(network, address string) (q query, ok bool, err error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return parseTCP(network, address)
	case "unix":
		return parseUnix(address)
	}
	return query{}, false, nil
}

func parseTCP(network, address string) (query, bool, error) {
	ta, err := net.ResolveTCPAddr(network, address)
	if err != nil {
		return query{}, true, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	q := query{network: network, addr: ta, port: ta.Port, addressType: addressTypeIPv4}
	flags := 0
	switch {
	case ta.IP == nil || ta.IP.IsUnspecified():
		switch network {
		case "tcp":
			return q, true, nil // address null: node and Go both bind :: dual-stack
		case "tcp4":
			q.address = ptr("0.0.0.0")
		case "tcp6":
			q.address, q.addressType, flags = ptr("::"), addressTypeIPv6, uvTCPIPv6Only
		}
	case ta.IP.To4() != nil:
		q.address = ptr(ta.IP.To4().String())
	default:
		s := ta.IP.String()
		if ta.Zone != "" {
			s += "%" + ta.Zone
		}
		q.address, q.addressType = &s, addressTypeIPv6
		if network == "tcp6" {
			flags = uvTCPIPv6Only
		}
	}
	q.flags = &flags
	return q, true, nil
}

func parseUnix(path string) (query, bool, error) {
	ua := &net.UnixAddr{Name: path, Net: "unix"}
	q := query{network: "unix", addr: ua, port: -1, addressType: addressTypeUnix}
	switch {
	case path == "":
		// Linux autobind: an abstract name only this process knows. Nothing
		// to share; bind it here.
		return query{}, false, nil
	case strings.HasPrefix(path, "@"):
		// An abstract name (Go's spelling). node would mangle it through
		// path.resolve; send it as the kernel spells it and let herd decide.
		q.address = ptr("\x00" + path[1:])
	default:
		abs, err := filepath.Abs(path) // node's path.resolve (child.js)
		if err != nil {
			return query{}, true, &net.OpError{Op: "listen", Net: "unix", Addr: ua, Err: err}
		}
		q.address = &abs
	}
	return q, true, nil
}

// indexesKey is the key under which child.js counts servers within one
// process: address, port, addressType and fd joined with ':' (null and
// absent render as "" in Array.prototype.join).
func (q query) indexesKey() string {
	a := ""
	if q.address != nil {
		a = *q.address
	}
	return fmt.Sprintf("%s:%d:%d:", a, q.port, q.addressType)
}

// fields returns the queryServer fields (and, with act listening and the
// bound port, the listening ones): index, data, address, port,
// addressType, flags, backlog. ipc.ClusterMessage puts them in node's order.
// backlog 0 is what node sends for listen(port) and means "the default" to
// both node's primary and herd.
func (q query) fields(index, port int) map[string]any {
	f := map[string]any{
		"index":       index,
		"data":        nil,
		"address":     nil,
		"port":        port,
		"addressType": q.addressType,
		"backlog":     0,
	}
	if q.address != nil {
		f["address"] = *q.address
	}
	if q.flags != nil {
		f["flags"] = *q.flags
	}
	return f
}

func ptr[T any](v T) *T { return &v }
