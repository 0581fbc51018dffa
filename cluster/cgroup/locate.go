package cgroup

import (
	"fmt"
	"io/fs"
	"strings"
)

// Location is the cgroup directory of this process in one hierarchy, and
// the mount it was found under.
type Location struct {
	Version int `json:"version"`
	// Dir is the cgroup's directory, an absolute path.
	Dir string `json:"dir"`
	// MountPoint is where the cgroup file system is mounted: Dir or one of
	// its ancestors, and the last directory whose limits can be read.
	MountPoint string `json:"mount_point"`
	// MountRoot is the cgroup shown at MountPoint ("/" for the root of
	// the namespace); empty when Guess is set.
	MountRoot string `json:"mount_root,omitempty"`
	// Guess is set when Dir was not derived from /proc/self/cgroup and
	// /proc/self/mountinfo but tried at a usual place.
	Guess bool `json:"guess"`
}

// Levels returns Dir and each of its ancestors up to and including
// MountPoint, leaf first: the directories whose limits bound the process
// and that this file system shows.
func (l Location) Levels() []string {
	rel := strings.TrimPrefix(l.Dir, l.MountPoint)
	dirs := []string{l.Dir}
	for parts := components(rel); len(parts) > 0; {
		parts = parts[:len(parts)-1]
		dirs = append(dirs, join(l.MountPoint, parts))
	}
	return dirs
}

// Resolve finds the directory of h's cgroup among mounts, as ParseMountinfo
// returns them.
//
// It walks the mounts from the last back, because a later mount on the
// same mount point shadows an earlier one (whatever its type). A mount
// qualifies when it is cgroup2 for a v2 hierarchy, or cgroup with
// h.Controller among its super options for v1. The directory is MountPoint
// joined with h.Path minus the mount's Root, where Root must be a prefix of
// h.Path at a path-component boundary ("/sand" is not a prefix of
// "/sandbox") and the remainder must not climb through "..".
//
// When the hierarchy is visible at several mount points (a bind mount of
// one cgroup besides the whole tree), every one shows the same cgroups, so
// Resolve takes the one that shows the most ancestors, to walk them all;
// on a tie, the later line.
//
// ok is false with a nil error when no mount qualifies at all: the caller
// may then guess. An error means that mounts qualify but none of them shows
// h's cgroup (the process sits outside the part of the hierarchy mounted
// here, such as "/../../init.scope" outside its namespace's root): no
// directory in this file system holds its limits, and a guess would read
// another cgroup's.
func Resolve(h Hierarchy, mounts []Mount) (Location, bool, error) {
	seen := make(map[string]bool)
	var roots []string
	var best Location
	depth := -1
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if seen[m.MountPoint] {
			continue // shadowed by a later mount on the same point
		}
		seen[m.MountPoint] = true
		if !qualifies(h, m) {
			continue
		}
		rest, ok := within(m.Root, h.Path)
		if !ok {
			roots = append(roots, fmt.Sprintf("root %s at %s", m.Root, m.MountPoint))
			continue
		}
		if depth < 0 || len(rest) > depth {
			depth = len(rest)
			best = Location{
				Version:    h.Version,
				Dir:        join(m.MountPoint, rest),
				MountPoint: m.MountPoint,
				MountRoot:  m.Root,
			}
		}
	}
	if depth >= 0 {
		return best, true, nil
	}
	if len(roots) == 0 {
		return Location{}, false, nil
	}
	return Location{}, false, fmt.Errorf("cgroup %s is not visible under any %s mount (%s)",
		h.Path, kind(h), strings.Join(roots, "; "))
}

func qualifies(h Hierarchy, m Mount) bool {
	if h.Version == 2 {
		return m.FSType == "cgroup2"
	}
	return m.FSType == "cgroup" && hasToken(m.SuperOptions, h.Controller)
}

// kind names the mounts that may show h: "cgroup2", "cgroup (cpu)".
func kind(h Hierarchy) string {
	if h.Version == 2 {
		return "cgroup2"
	}
	return "cgroup (" + h.Controller + ")"
}

// within returns the components of p below root, or false when root is
// not a prefix of p at a component boundary or the rest would climb.
func within(root, p string) ([]string, bool) {
	rc, pc := components(root), components(p)
	if len(rc) > len(pc) {
		return nil, false
	}
	for i := range rc {
		if rc[i] != pc[i] {
			return nil, false
		}
	}
	rest := pc[len(rc):]
	for _, c := range rest {
		if c == ".." || c == "." {
			return nil, false
		}
	}
	return rest, true
}

// components splits a slash-separated path, dropping empty elements.
func components(p string) []string {
	var c []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			c = append(c, s)
		}
	}
	return c
}

// join appends components to an absolute directory without cleaning it.
func join(dir string, parts []string) string {
	if len(parts) == 0 {
		return dir
	}
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return dir + strings.Join(parts, "/")
}

// fsPath turns an absolute path into a name for an fs.FS rooted at "/".
func fsPath(abs string) string {
	if p := strings.TrimLeft(abs, "/"); p != "" {
		return p
	}
	return "."
}

// Usual places of the cgroup file system, tried when /proc/self/cgroup or
// /proc/self/mountinfo cannot be read or names no usable mount.
const guessV2 = "/sys/fs/cgroup" // cgroup2 root of a private cgroup namespace

// usualV1 lists, for a controller, the usual mount points of its v1
// hierarchy and a file each holds when the controller is mounted there. A
// controller not listed is tried at /sys/fs/cgroup/CONTROLLER, for
// cgroup.procs.
var usualV1 = map[string]struct {
	dirs []string
	file string
}{
	"cpu":    {[]string{"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu", "/sys/fs/cgroup/cpu"}, "cpu.cfs_quota_us"},
	"memory": {[]string{"/sys/fs/cgroup/memory"}, "memory.limit_in_bytes"},
}

// guess tries the usual mount points: for version 2, /sys/fs/cgroup when
// it is a cgroup2 root (it holds cgroup.controllers); for version 1, the
// usual v1 mount points of controller that hold its file; for version 0
// (unknown), both in that order. The directory found is its own mount
// point: no ancestor is walked.
func guess(fsys fs.FS, controller string, version int) (Location, bool) {
	if version != 1 {
		if _, err := fs.Stat(fsys, fsPath(guessV2+"/cgroup.controllers")); err == nil {
			return Location{Version: 2, Dir: guessV2, MountPoint: guessV2, Guess: true}, true
		}
	}
	if version != 2 {
		usual, ok := usualV1[controller]
		if !ok {
			usual.dirs, usual.file = []string{"/sys/fs/cgroup/" + controller}, "cgroup.procs"
		}
		for _, d := range usual.dirs {
			if _, err := fs.Stat(fsys, fsPath(d+"/"+usual.file)); err == nil {
				return Location{Version: 1, Dir: d, MountPoint: d, Guess: true}, true
			}
		}
	}
	return Location{}, false
}
