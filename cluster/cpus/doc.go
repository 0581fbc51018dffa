// Package cpus decides how many workers herd starts: one per CPU the
// container may use, where "may use" is the smallest of every limit the
// kernel enforces on the process, read from the process's own view of
// /proc and /sys, and explained in one log line.
//
// # Order
//
// Compute follows docs/workers.md. (HERD_WORKERS=N, which skips all of this, is
// the caller's business.)
//
//  1. Affinity A is the number of CPUs in sched_getaffinity(0)'s mask,
//     passed in (see Affinity, which grows its buffer past 1024 CPUs).
//  2. The cgroup directory, found by package cgroup (Locate with the
//     controller "cpu"): /proc/self/cgroup names the process's cgroup in
//     the hierarchy holding the cpu controller (a v1 line with the exact
//     token "cpu" wins, else the "0::" line is v2; each line is split on
//     its first two colons only). /proc/self/mountinfo names where that
//     hierarchy is mounted; walking it from the last line back, a later
//     mount on the same mount point shadows an earlier one. The directory
//     is MOUNTPOINT + (path minus ROOT), where ROOT must be a prefix of the
//     path at a component boundary and the rest must not climb ("/..").
//     Of several mount points that show the cgroup, the one showing the
//     most ancestors is used. Only when nothing usable is found (files unreadable or malformed, or
//     no mount of the right type) are /sys/fs/cgroup (cgroup2 root of a
//     private cgroup namespace) and /sys/fs/cgroup/cpu,cpuacct or
//     /sys/fs/cgroup/cpu tried, and the result is marked as a guess. When
//     mounts of the right type exist but none shows the process's cgroup
//     (a path such as "/../../init.scope", outside its namespace's root),
//     no directory holds its limits: nothing is guessed and a warning says
//     so.
//  3. Quota Q is the smallest limit over the directory and every ancestor
//     up to the mount point: v2 cpu.max ("max 100000", "150000 100000"),
//     v1 cpu.cfs_quota_us over cpu.cfs_period_us (-1 is none). A missing,
//     unreadable or malformed level is "no limit here", recorded in
//     Result.Levels, and the walk goes on.
//  4. Budget B = min(A, Q). With no quota, B = min(A, limit) when
//     HERD_CPU_LIMIT is set (the container's limits.cpu through the
//     Downward API: a quota the node does not enforce, or one hidden from
//     the container), else B = min(A, request) when HERD_CPU_REQUEST is
//     set, else B = A with a warning saying how to pass the request
//     through the Downward API. A limit given beside a visible quota only
//     raises a warning when the two differ: the kernel enforces the quota.
//     cpu.shares and cpu.weight are never read: their mapping from a
//     request changed between runtimes.
//     An optional reserve for herd comes off B, never taking it below
//     min(B, 1).
//  5. Workers W = B rounded (nearest with halves up, floor or ceil), at
//     least 1, then clamped to the minimum and maximum when set.
//
// # A limit through the Downward API
//
// For a container that has no CPU limit, the kubelet resolves limits.cpu to
// the node's allocatable CPU, not to 0 (defaultPodLimitsForDownwardApi in
// Kubernetes' pkg/kubelet/kubelet_resources.go). Compute cannot tell that
// from a real limit: with no quota it would size to min(A, allocatable),
// about one worker per CPU of the node, what no limit gives anyway, and
// the request would go unused. HERD_CPU_LIMIT is therefore meant to be set
// only for a container that has a limit, which is what herd's chart does.
//
// # Why every ancestor
//
// The kernel throttles a task when any cgroup on its path to the root has
// spent its quota (Documentation/scheduler/sched-bwc.rst, "Hierarchical
// considerations"), so the effective limit is the smallest over all of
// them. When a quota is set, tg_cfs_schedulable_down (kernel/sched/core.c)
// treats the hierarchies differently:
//
//   - cgroup v2: a child may write a larger cpu.max than its parent's; the
//     kernel accepts it and enforces min(child, parent). A child may also
//     have no cpu.max file at all, when its parent has not enabled the cpu
//     controller for its children, and the root cgroup never has one
//     (Documentation/admin-guide/cgroup-v2.rst).
//   - cgroup v1: a child's cpu.cfs_quota_us is -1 unless set, and the
//     child then runs under its parent's quota (it inherits it); a child
//     quota above the parent's is refused with EINVAL.
//
// Either way the limit that binds is the smallest on the path, which is
// what the walk computes; it does not rely on either rule.
//
// Reading the leaf alone (as the Go runtime, automaxprocs and .NET do)
// misses a pod-level limit over a container that has none; taking the
// outermost limit (as libuv does) misses a tighter container limit.
//
// Paths in /proc/self/cgroup are relative to the root of the process's
// cgroup namespace and begin with "/.." when the process sits outside it
// (cgroup_namespaces(7)); mountinfo's ROOT field names which cgroup a mount
// shows (proc_pid_mountinfo(5)), so a container that bind-mounts only its
// own cgroup sees no ancestors, and that is all it can read.
//
// # Invariants
//
//   - Only /proc/self is read, never /proc/1: in a pod sharing its process
//     namespace, PID 1 is the pause container, in another cgroup.
//   - Fractions are compared exactly, as 128-bit products of numerators
//     and denominators (math/bits), never as floats: 250000/300000 is 5/6
//     of a CPU, and 9223372036854775807/9223372036854775807 is 1.
//   - B <= A and W >= 1 whatever the files hold (before the clamps, which
//     are the operator's explicit choice).
//   - Compute never fails because of what it reads: each problem lands in
//     Result.Levels, Result.Notes or Result.Warnings, and when nothing can
//     be read B falls back quietly to A.
//
// Re-checking on a timer and on SIGHUP, and scaling down only after the
// smaller value has been seen on consecutive checks, belong to the caller:
// Compute is a pure function of its Input.
package cpus
