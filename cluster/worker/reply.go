package worker

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/herd-sh/herd/cluster/ipc"
)

// reply is herd's answer to one queryServer (docs/protocol.md §5.2):
//
//	shared    NODE_HANDLE with a bound or listening socket, errno 0
//	rr        no fd, errno null, sockname for TCP
//	error     no fd, errno < 0 (a negative errno, -98 for EADDRINUSE)
type reply struct {
	errno    int64
	key      string
	sockname *sockname // rr over TCP only
	fd       int       // -1 without one; the caller owns it
}

type sockname struct {
	Address string `json:"address"`
	Family  string `json:"family"`
	Port    int    `json:"port"`
}

// parseReply decodes the cluster message m that answered a queryServer; fd
// is the socket that came with it, or -1.
func parseReply(m *ipc.Message, fd int) (reply, error) {
	r := reply{fd: fd}
	if raw, ok := m.Field("errno"); ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &r.errno); err != nil {
			return r, fmt.Errorf("worker: herd's queryServer reply: errno %s: %w", raw, err)
		}
	}
	if raw, ok := m.Field("key"); ok {
		if err := json.Unmarshal(raw, &r.key); err != nil {
			return r, fmt.Errorf("worker: herd's queryServer reply: key %s: %w", raw, err)
		}
	}
	if raw, ok := m.Field("sockname"); ok && string(raw) != "null" {
		r.sockname = new(sockname)
		if err := json.Unmarshal(raw, r.sockname); err != nil {
			return r, fmt.Errorf("worker: herd's queryServer reply: sockname %s: %w", raw, err)
		}
	}
	if r.errno == 0 && r.key == "" {
		return r, fmt.Errorf("worker: herd's queryServer reply has no key: %s", m.Raw)
	}
	return r, nil
}

// rrAddr is what a round-robin listener reports as its address: the
// sockname herd bound (node's fake handle returns it from getsockname), or
// for a unix socket the path.
func (r reply) rrAddr(q query) net.Addr {
	if q.addressType == addressTypeUnix {
		return q.addr
	}
	if r.sockname != nil {
		return &net.TCPAddr{IP: net.ParseIP(r.sockname.Address), Port: r.sockname.Port}
	}
	ta := *q.addr.(*net.TCPAddr)
	return &ta
}
