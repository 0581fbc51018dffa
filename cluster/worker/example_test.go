package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/herd-sh/herd/cluster/worker"
)

// Listen works the same under herd and alone; alone it is net.Listen.
func Example() {
	l, err := worker.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	fmt.Println(l.Addr().Network(), worker.IsWorker())
	// Output: tcp false
}

// A graceful stop: herd's disconnect closes the listener, the server
// finishes its requests, and Disconnect tells herd it is done.
func ExampleDisconnected() {
	l, err := worker.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Fatal(err)
		}
	}()
	<-worker.Disconnected()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	worker.Disconnect()
}
