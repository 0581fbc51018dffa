package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// addrOff is the HERD_HEALTH_ADDR value that turns the server off.
const addrOff = "off"

// Limits of the health server. Probes are tiny GET requests; nothing
// legitimate needs more.
const (
	readHeaderTimeout = 2 * time.Second
	readTimeout       = 5 * time.Second
	writeTimeout      = 5 * time.Second
	idleTimeout       = 30 * time.Second
	maxHeaderBytes    = 8 << 10
)

// Server is the health HTTP server. Its methods may be called on the
// disabled Server that Start returns for "off".
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
	err  error         // Serve's error other than http.ErrServerClosed; read after done
}

// connStateHook, when set (by tests, before Start), sees every connection
// state change.
var connStateHook func(net.Conn, http.ConnState)

// Start listens on addr (host:port, the value of HERD_HEALTH_ADDR) and
// serves h there from a goroutine of its own. A listen error (port in use,
// permission, bad address) is returned at once, naming HERD_HEALTH_ADDR.
// With addr "off", in any case, nothing is listened on and Start returns a
// disabled Server: Addr is nil and Shutdown does nothing.
func Start(addr string, h http.Handler) (*Server, error) {
	if strings.EqualFold(addr, addrOff) {
		return &Server{}, nil
	}
	if addr == "" {
		return nil, errors.New(`health: HERD_HEALTH_ADDR is empty: want host:port (such as ":8081") or "off"`)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("health: HERD_HEALTH_ADDR=%q: the port is already in use; choose a free host:port or \"off\": %w", addr, err)
		}
		return nil, fmt.Errorf("health: HERD_HEALTH_ADDR=%q: want a host:port herd can listen on, or \"off\": %w", addr, err)
	}
	s := &Server{
		ln:   ln,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
			ConnState:         connStateHook,
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("health: serve on %s: %w", ln.Addr(), err)
			slog.Error("health server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on (with the real port when addr
// asked for port 0), or nil when it is off.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting, lets requests under way finish until ctx is
// done, then closes what is left and returns once the server has stopped.
// It returns ctx's error if it had to close connections, or the error that
// stopped the server earlier, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close() //nolint:errcheck // already reporting err
		err = fmt.Errorf("health: shutdown: %w", err)
	}
	<-s.done
	if err == nil {
		err = s.err
	}
	return err
}
