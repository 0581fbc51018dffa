package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// HealthAddr is HERD_HEALTH_ADDR: host:port for the probe server, or off.
// It is checked here, as far as can be without listening, so that a value
// net.Listen cannot take fails herd config too.
type HealthAddr string

// errHealthAddr says what HERD_HEALTH_ADDR allows.
const errHealthAddr = "must be host:port with a port from 0 to 65535 and a host that is empty, an IP address ([IPv6] in brackets) or a name of letters, digits, dots and hyphens (:9090, 127.0.0.1:9090, [::1]:9090), or off"

func (h *HealthAddr) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, off) {
		*h = off
		return nil
	}
	if err := checkHostPort(s); err != nil {
		return fmt.Errorf("%v: %s", err, errHealthAddr)
	}
	*h = HealthAddr(s)
	return nil
}

func (h *HealthAddr) String() string { return string(*h) }

// checkHostPort says what is wrong with addr as host:port, or nil.
func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(strings.TrimSuffix(ae.Err, " in address"))
		}
		return err
	}
	if port == "" {
		return errors.New("no port after the colon")
	}
	if strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n, err := strconv.Atoi(port); err != nil || n > 65535 {
		return fmt.Errorf("port %q is above 65535", port)
	}
	// SplitHostPort has taken care that a host with colons was bracketed.
	ip, err := netip.ParseAddr(host)
	if strings.HasPrefix(addr, "[") {
		if err != nil || !ip.Is6() {
			return fmt.Errorf("host %q in brackets is not an IPv6 address", host)
		}
		return nil
	}
	if err == nil || host == "" {
		return nil
	}
	if !hostName(host) {
		return fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return nil
}

// hostName reports whether s is a host name: labels of letters, digits and
// hyphens (not at either end, at most 63 each) separated by dots, 253 bytes
// at most, and not all digits (that would be a mistyped IPv4 address).
func hostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || strings.Trim(s, "0123456789.") == "" {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
