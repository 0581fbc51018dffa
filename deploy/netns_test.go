package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on an OS thread that has joined the network namespace of
// pid, as the kubelet's prober and a Service's traffic reach a pod from
// outside it. A socket belongs to the namespace of the thread that
// created it, so a connection f dials stays in pid's namespace whatever
// thread later reads it. The thread is never unlocked: when the goroutine
// ends, the Go runtime discards the thread rather than reuse it in the
// wrong namespace.
func inNetns(pid int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- fmt.Errorf("setns into the network namespace of pid %d: %w", pid, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// loopbackUp brings up lo in pid's network namespace: a namespace made
// with CLONE_NEWNET starts with it down (runc brings it up itself).
func loopbackUp(pid int) error {
	return inNetns(pid, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("SIOCSIFFLAGS lo: %w", err)
		}
		return nil
	})
}

// netnsClient is an HTTP client whose connections are dialled inside
// pid's network namespace, one connection per request.
func netnsClient(pid int, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(pid, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
	}
}
