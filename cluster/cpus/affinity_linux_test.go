package cpus

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAffinityMatchesSchedGetaffinity(t *testing.T) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	n, err := Affinity()
	if err != nil {
		t.Fatal(err)
	}
	if n != set.Count() || n < 1 {
		t.Errorf("Affinity() = %d, unix.SchedGetaffinity counts %d", n, set.Count())
	}
}

// TestAffinityGrowsBuffer fakes a kernel with more than 1024 CPUs: it
// refuses buffers smaller than its mask with EINVAL, as sched_getaffinity
// does.
func TestAffinityGrowsBuffer(t *testing.T) {
	for _, c := range []struct {
		kernelCPUs int // nr_cpu_ids
		allowed    []int
	}{
		{64, []int{0, 1, 2, 3}},
		{1024, []int{0, 1023}},
		{1025, []int{1024}},
		{4096, []int{0, 100, 2047, 2048, 4095}},
		{8192, []int{8191}},
	} {
		var sizes []int
		get := func(buf []uint64) error {
			sizes = append(sizes, len(buf))
			if len(buf)*64 < c.kernelCPUs {
				return unix.EINVAL
			}
			for _, cpu := range c.allowed {
				buf[cpu/64] |= 1 << (cpu % 64)
			}
			return nil
		}
		n, err := countAffinity(get)
		if err != nil || n != len(c.allowed) {
			t.Errorf("%d CPUs: countAffinity = %d, %v; want %d", c.kernelCPUs, n, err, len(c.allowed))
		}
		if sizes[0] != 16 {
			t.Errorf("first buffer of %d words, want 16 (1024 CPUs)", sizes[0])
		}
		if last := sizes[len(sizes)-1]; last*64 < c.kernelCPUs || (len(sizes) > 1 && last*32 >= c.kernelCPUs) {
			t.Errorf("%d CPUs: buffer sizes %v", c.kernelCPUs, sizes)
		}
	}

	other := errors.New("EFAULT")
	if _, err := countAffinity(func([]uint64) error { return other }); !errors.Is(err, other) {
		t.Errorf("other errors pass through wrapped: %v", err)
	}
	if _, err := countAffinity(func([]uint64) error { return unix.EINVAL }); err == nil {
		t.Error("a kernel that never accepts: no error")
	}
	if _, err := countAffinity(func([]uint64) error { return nil }); err == nil {
		t.Error("an empty mask: no error")
	}
}

// TestAffinityFollowsTheMask narrows this thread's mask to one CPU, as an
// exclusive cpuset would, and reads it back through the raw syscall.
func TestAffinityFollowsTheMask(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &old)
	first := -1
	for i := 0; i < len(old)*64 && first < 0; i++ {
		if old.IsSet(i) {
			first = i
		}
	}
	var one unix.CPUSet
	one.Set(first)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	if n, err := Affinity(); err != nil || n != 1 {
		t.Errorf("Affinity() with a one-CPU mask = %d, %v", n, err)
	}
}
