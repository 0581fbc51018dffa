package cpus

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxAffinityWords bounds the mask buffer: 4,194,304 CPUs, far beyond any
// kernel's NR_CPUS.
const maxAffinityWords = 1 << 16

// Affinity returns the number of CPUs in the calling thread's affinity
// mask: sched_getaffinity(0), which a container's cpuset (an exclusive
// --cpuset-cpus or the kubelet's static CPU manager) narrows.
//
// The kernel refuses with EINVAL a buffer smaller than its own mask
// (nr_cpu_ids bits, rounded up to a long), so Affinity starts at 1024 CPUs
// and doubles the buffer until the kernel accepts it; unix.SchedGetaffinity
// would stop at 1024. Go's threads share the process's mask unless
// something called sched_setaffinity on one of them.
func Affinity() (int, error) {
	return countAffinity(getaffinity)
}

// getaffinity fills buf with the calling thread's mask.
func getaffinity(buf []uint64) error {
	_, _, errno := unix.RawSyscall(unix.SYS_SCHED_GETAFFINITY, 0,
		uintptr(len(buf)*8), uintptr(unsafe.Pointer(&buf[0])))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}

// countAffinity calls get with zeroed buffers of 1024 bits, then twice as
// many each time get fails with EINVAL, and counts the bits set. The kernel
// writes only its own mask's bytes; the rest stay zero.
func countAffinity(get func([]uint64) error) (int, error) {
	for words := 1024 / 64; words <= maxAffinityWords; words *= 2 {
		buf := make([]uint64, words)
		err := get(buf)
		if errors.Is(err, unix.EINVAL) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("cpus: sched_getaffinity: %w", err)
		}
		n := 0
		for _, w := range buf {
			n += bits.OnesCount64(w)
		}
		if n == 0 {
			return 0, errors.New("cpus: sched_getaffinity: empty mask")
		}
		return n, nil
	}
	return 0, fmt.Errorf("cpus: sched_getaffinity: mask larger than %d CPUs", maxAffinityWords*64)
}
