package cpus

import "errors"

// ErrNotSupported is returned by Affinity where the kernel has no
// sched_getaffinity.
var ErrNotSupported = errors.New("cpus: CPU affinity is not supported on this platform")
