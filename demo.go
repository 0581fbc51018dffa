package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// demoWorkerArg is the hidden first argument with which herd runs itself as
// the demo's worker.
const demoWorkerArg = "demo-worker"

// demoWorker is a small HTTP server on $PORT (default 8080). Every worker
// binds the port with SO_REUSEPORT, so the kernel spreads connections over
// them. It stops gracefully on SIGTERM or SIGINT.
func demoWorker() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herd demo worker:", err)
		return 1
	}
	id, index, pid := os.Getenv("HERD_WORKER_ID"), os.Getenv("HERD_WORKER_INDEX"), os.Getpid()
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from herd's demo: worker id=%s index=%s pid=%d\n", id, index, pid)
		}),
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGTERM, unix.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "herd demo worker:", err)
		return 1
	}
	return 0
}
