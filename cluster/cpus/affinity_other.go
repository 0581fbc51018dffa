//go:build !linux

package cpus

// Affinity is only implemented on Linux.
func Affinity() (int, error) { return 0, ErrNotSupported }
