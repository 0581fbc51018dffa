// Package cgroup finds the cgroup directory of this process for one
// controller ("cpu", "memory"), and every ancestor of it that the process
// can see, from its own view of /proc and /sys. cluster/cpus reads CPU
// quotas there, cluster/memory memory limits and usage.
//
// # Order
//
//  1. /proc/self/cgroup names the process's cgroup in the hierarchy holding
//     the controller (ParseProcCgroup): a v1 line whose controller list
//     holds the exact token wins wherever it stands, else the "0::" line is
//     v2; each line is split on its first two colons only.
//  2. /proc/self/mountinfo names where that hierarchy is mounted
//     (ParseMountinfo): the kernel's octal escapes are decoded, and walking
//     it from the last line back, a later mount on the same mount point
//     shadows an earlier one. A v1 mount qualifies when its super options
//     hold the controller, a v2 one when it is cgroup2.
//  3. The directory is MOUNTPOINT + (path minus ROOT), where ROOT must be a
//     prefix of the path at a component boundary and the rest must not
//     climb ("/..") (Resolve). Of several mount points that show the
//     cgroup, the one showing the most ancestors is used. Location.Levels
//     lists the directory and its ancestors up to the mount point, leaf
//     first: the directories whose limits bound the process.
//  4. Only when nothing usable is found (files unreadable or malformed, or
//     no mount of the right type) are /sys/fs/cgroup (the cgroup2 root of
//     a private cgroup namespace) and the controller's usual v1 mount
//     points tried, and the result is marked as a guess (Locate). When
//     mounts of the right type exist but none shows the process's cgroup
//     (a path such as "/../../init.scope", outside its namespace's root),
//     no directory holds its limits: nothing is guessed and a warning says
//     so.
//
// # The Linux behaviour relied on
//
// Paths in /proc/self/cgroup are relative to the root of the process's
// cgroup namespace and begin with "/.." when the process sits outside it
// (cgroup_namespaces(7)); mountinfo's ROOT field names which cgroup a mount
// shows (proc_pid_mountinfo(5)), so a container that bind-mounts only its
// own cgroup sees no ancestors, and that is all it can read. On a hybrid
// host each v1 controller has its own hierarchy and mount, beside an empty
// cgroup2 mount: the v1 line of the controller is the one that counts.
//
// # Invariants
//
//   - Only /proc/self is read, never /proc/1: in a pod sharing its process
//     namespace, PID 1 is the pause container, in another cgroup.
//   - A Location's Dir is its MountPoint or below it, never above.
//   - Locate never fails: each problem lands in Lookup.Notes or
//     Lookup.Warnings, and the caller goes on without a directory.
package cgroup
