package acceptance

// A minimal WebSocket client (RFC 6455): the handshake, text frames in, and
// the close frame's status code.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type wsConn struct {
	c  net.Conn
	br *bufio.Reader
}

func wsDial(addr string) (*wsConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	w := &wsConn{c: c, br: br}
	if op, payload, err := w.frame(); err != nil || op != 1 || !strings.HasPrefix(string(payload), "hello ") {
		c.Close()
		return nil, fmt.Errorf("greeting: opcode %d %q %v", op, payload, err)
	}
	_ = c.SetDeadline(time.Time{})
	return w, nil
}

// frame reads one unfragmented server frame (servers do not mask).
func (w *wsConn) frame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(w.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(w.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil || n > 1<<20 {
		return 0, nil, fmt.Errorf("frame length %d: %v", n, err)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return h[0] & 0x0f, payload, err
}

// waitClose reads frames until a close frame, answers it with a close
// frame of the same code as a client must (the server waits for that),
// and returns the code, or what came instead.
func (w *wsConn) waitClose(guard time.Duration) string {
	_ = w.c.SetDeadline(time.Now().Add(guard))
	for {
		op, payload, err := w.frame()
		if err != nil {
			return "no close frame: " + err.Error()
		}
		if op != 8 {
			continue
		}
		if len(payload) < 2 {
			return "close frame without a code"
		}
		// A client's frames are masked; a zero mask leaves the payload as is.
		_, _ = w.c.Write([]byte{0x88, 0x80 | 2, 0, 0, 0, 0, payload[0], payload[1]})
		// The server then closes the connection; so does the client.
		_, _ = io.Copy(io.Discard, w.br)
		w.c.Close()
		return strconv.Itoa(int(binary.BigEndian.Uint16(payload)))
	}
}

func (w *wsConn) Close() error { return w.c.Close() }
