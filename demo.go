package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/cluster/worker"
)

// demoWorkerArg is the hidden first argument with which herd runs itself as
// the demo's worker.
const demoWorkerArg = "demo-worker"

// demoWorker is a small HTTP server. It listens with herd's worker package:
// under herd that asks herd for the port over Node's cluster protocol (so
// the demo works under every HERD_SCHED_POLICY), outside herd it binds
// $PORT (default 8080) itself. It also reports its status through
// sd_notify, and stops gracefully when herd disconnects it or on SIGTERM.
func demoWorker() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := worker.Listen("tcp", ":"+port)
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
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		select {
		case <-stop:
		case <-worker.Disconnected(): // herd closed the listener already
		}
		sdNotify("STOPPING=1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // lets in-flight requests finish
	}()
	sdNotify("STATUS=serving HTTP")
	if err := srv.Serve(ln); err != http.ErrServerClosed && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, "herd demo worker:", err)
		return 1
	}
	<-drained
	_ = worker.Disconnect()
	return 0
}

// demoBanner tells the person who ran herd demo where to look: the
// service's URLs and the probe server's endpoints.
func demoBanner(w io.Writer, service []*listen.Listener, specs []listen.Spec, probes net.Addr) {
	var urls []string
	for _, l := range service {
		if u := demoURL(l.Addr); u != "" {
			urls = append(urls, u+"/")
		}
	}
	if len(service) == 0 {
		for _, sp := range specs { // reuseport: each worker binds its own
			if sp.Network != "unix" {
				urls = append(urls, "http://"+localHost(sp.Address)+"/")
			}
		}
	}
	var b strings.Builder
	b.WriteString("herd demo: the workers answer at " + strings.Join(urls, " ") + " (each answer names its worker)\n")
	if p := demoURL(probes); p != "" {
		fmt.Fprintf(&b, "herd demo: probes  %[1]s/livez %[1]s/readyz %[1]s/startupz (add ?verbose)\n", p)
		fmt.Fprintf(&b, "herd demo: status  %s/status\n", p)
		fmt.Fprintf(&b, "herd demo: metrics %s/metrics\n", p)
	} else {
		b.WriteString("herd demo: no probe server (HERD_HEALTH_ADDR=off)\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// demoURL is http://host:port for a TCP address, with localhost for the
// wildcard address; "" for anything else.
func demoURL(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok || t == nil {
		return ""
	}
	return "http://" + localHost(t.String())
}

// localHost replaces an empty or wildcard host of host:port by localhost.
func localHost(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
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
