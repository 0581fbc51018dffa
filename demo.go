package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// demoWorkerArg is the hidden first argument with which herd runs itself as
// the demo's worker.
const demoWorkerArg = "demo-worker"

// demoWorker is a small HTTP server. It serves on the socket herd passes
// as fd 3 (LISTEN_FDS, the systemd convention) or, run without one, binds
// $PORT (default 8080) itself with SO_REUSEPORT. It tells herd it serves
// and that it stops through sd_notify, and stops gracefully on SIGTERM or
// SIGINT.
func demoWorker() int {
	ln, err := demoListener()
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
		sdNotify("STOPPING=1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	sdNotify("READY=1\nSTATUS=serving HTTP")
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "herd demo worker:", err)
		return 1
	}
	return 0
}

func demoListener() (net.Listener, error) {
	if os.Getenv("LISTEN_FDS") != "" && os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		f := os.NewFile(3, "listen")
		defer f.Close()
		return net.FileListener(f)
	}
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
	return lc.Listen(context.Background(), "tcp", ":"+port)
}

// sdNotify sends state to $NOTIFY_SOCKET, if herd (or systemd) gave one.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
