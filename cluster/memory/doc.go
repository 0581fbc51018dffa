// Package memory finds how much memory the container may use, the memory
// budget, the way package cpus finds its CPU budget: the smallest of every
// limit the kernel enforces on the process, read from the process's own
// view of /proc and /sys, and, where the kernel shows none, what
// Kubernetes says through the Downward API; explained in one log line.
// It also reads what a cgroup is charged, its OOM kills and the size of a
// process, for the supervisor to compare with the budget.
//
// # Order
//
// Compute follows docs/memory.md:
//
//  1. The cgroup directory of the memory controller, found by package
//     cgroup (Locate with "memory"): the v1 line of /proc/self/cgroup whose
//     controllers hold "memory", else the v2 line; its mount in
//     /proc/self/mountinfo; the usual places only when those cannot be
//     read.
//  2. The limit is the smallest over the directory and every ancestor up
//     to the mount point: v2 memory.max and memory.high ("max" is none),
//     v1 memory.limit_in_bytes. A value of 2^62 bytes or more is none (v1
//     shows an unset limit as about 2^63, the largest page count times the
//     page size), and so is a value above the machine's memory, MemTotal of
//     /proc/meminfo: the kernel never reaches it. A missing, unreadable or
//     malformed file is "no limit here", recorded in Result.Levels, and the
//     walk goes on. Under v1, the walk stops below a parent whose
//     memory.use_hierarchy is 0 (kernels before 5.11 only): its children
//     are not charged to it.
//  3. With no cgroup limit, HERD_MEMORY_LIMIT (the container's limits.memory
//     through the Downward API) stands in, for a sandbox that hides the
//     cgroup; with neither, there is no budget. HERD_MEMORY_LIMIT beside a
//     cgroup limit only raises a warning when the two differ by more than
//     the kernel's rounding down to whole pages: the kernel enforces the
//     cgroup's. It is compared with the smallest memory.max or
//     memory.limit_in_bytes, not with a memory.high below them, which
//     Kubernetes may set under its limit (memory QoS).
//  4. Result.Dir is where the supervisor reads usage: the directory of
//     the smallest limit, since its usage is what that limit binds, or
//     herd's own directory (Result.Leaf) when no cgroup limit decided.
//
// # The Linux behaviour relied on
//
//   - A cgroup's memory is charged to each of its ancestors, and a charge
//     that would take any of them past its memory.max (v2) or
//     memory.limit_in_bytes (v1) makes the kernel reclaim and, failing
//     that, OOM-kill a process in that cgroup's subtree
//     (Documentation/admin-guide/cgroup-v2.rst, "Memory"; cgroup-v1/memory.rst).
//     The limit that binds is the smallest on the path.
//   - Past memory.high, the kernel throttles the cgroup's tasks and
//     reclaims hard, but does not kill: the budget stops there too.
//   - The kernel rounds a limit written down to whole pages.
//   - memory.current and memory.usage_in_bytes count the page cache;
//     memory.stat's inactive_file (v2) and total_inactive_file (v1) is the
//     part reclaimed first. The kubelet's working set, which it compares
//     with the limit to evict, is usage less inactive_file.
//   - memory.events (v2) and memory.oom_control (v1, Linux 4.13 and later)
//     count OOM kills (oom_kill) in the victim's cgroup; v2 counts them in
//     every ancestor too, v1 does not (TestRealCgroup shows both counts).
//   - /proc/PID/smaps_rollup (Linux 4.14 and later) sums a process's
//     mappings; its Pss divides each page among the processes mapping it.
//
// # Invariants
//
//   - Only /proc/self and /proc/meminfo are read to find the budget, never
//     /proc/1: in a pod sharing its process namespace, PID 1 is the pause
//     container, in another cgroup.
//   - Limit is the Value of the level marked Smallest when a cgroup limit
//     decides, HERD_MEMORY_LIMIT when none is visible, else 0; it is never
//     negative and never 2^62 or more.
//   - Compute never fails because of what it reads: each problem lands in
//     Result.Levels, Result.Notes or Result.Warnings.
//
// Compute, ReadUsage, ReadOOMKills and ProcessSize are pure functions of
// the file system they are given; when to call them again is the caller's
// business.
package memory
