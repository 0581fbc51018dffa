// Command goserver is a tiny HTTP server that runs alone or as a worker
// under herd (herd -- goserver), with every scheduling policy, through
// worker.Listen. It listens on $PORT (default 8080), answers with its pid
// and worker id, and stops gracefully when herd disconnects it or on
// SIGTERM/SIGINT: no new connections, in-flight requests finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herd-sh/herd/cluster/worker"
)

const drainTimeout = 10 * time.Second

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	l, err := worker.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid %d worker %d url %s\n", os.Getpid(), worker.ID(), r.URL.Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-worker.Disconnected(): // nil, never ready, outside herd
	case <-sig:
	case err := <-served:
		// herd's disconnect closes the listener, which can show here first.
		if !errors.Is(err, net.ErrClosed) {
			log.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	// herd reads EOF and waits for the exit; a no-op outside herd.
	if err := worker.Disconnect(); err != nil {
		log.Printf("disconnect: %v", err)
	}
}
