package listen

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// BindUDP binds the UDP socket a Node worker's dgram.Socket asks for, with
// the rights of a worker running as cred (as BindAs does; nil binds as
// herd), and returns its descriptor: non-blocking, close-on-exec, with
// SO_REUSEADDR; -1 with an error. network is "udp4" or "udp6"; host is an
// IP literal, or empty for every address. Node's primary shares UDP sockets
// whatever the scheduling policy.
func BindUDP(cred *syscall.Credential, network, host string, port int) (fd int, err error) {
	fd, err = asUser(cred, func() (int, error) { return bindUDP(network, host, port) })
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// bindUDP is BindUDP as the calling thread's user.
func bindUDP(network, host string, port int) (int, error) {
	domain := unix.AF_INET
	if network == "udp6" {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	ip := net.ParseIP(host)
	var sa unix.Sockaddr
	if domain == unix.AF_INET {
		a := &unix.SockaddrInet4{Port: port}
		if ip4 := ip.To4(); ip4 != nil {
			copy(a.Addr[:], ip4)
		}
		sa = a
	} else {
		a := &unix.SockaddrInet6{Port: port}
		if ip != nil {
			copy(a.Addr[:], ip.To16())
		}
		sa = a
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
