package cgroup

import (
	"fmt"
	"io/fs"
)

// Lookup is what Locate found for a controller, and how.
type Lookup struct {
	// Hierarchy is the line of /proc/self/cgroup chosen. Its Version is 0
	// when the file could not be read or names no hierarchy with the
	// controller.
	Hierarchy Hierarchy
	// Location is the process's cgroup directory; it holds something only
	// when Found.
	Location Location
	Found    bool
	// Warnings are for the operator to act on: the process's cgroup is
	// outside every mount of its hierarchy, so its limits cannot be read.
	Warnings []string
	// Notes explain quieter facts: a file that could not be read, a
	// directory guessed, a hierarchy without the controller.
	Notes []string
}

// Locate finds this process's cgroup directory in the hierarchy holding
// controller ("cpu", "memory"), reading proc/self/cgroup, proc/self/mountinfo
// and, to guess, the usual mount points under sys/fs/cgroup from fsys, a
// file system rooted at "/".
//
// The order: ParseProcCgroup picks the hierarchy; ParseMountinfo and
// Resolve find the directory. Only when nothing usable is found (a file
// unreadable or malformed, or no mount of the right type) are the usual
// places tried, and the Location is then marked Guess. When the hierarchy
// names no line for the controller, or mounts of the right type exist but
// none shows the process's cgroup, nothing is guessed: no directory holds
// the process's limits. Locate never fails; each step's trouble is told in
// Notes or Warnings, worded for the limit the caller reads ("no cgroup CPU
// limit applies").
func Locate(fsys fs.FS, controller string) Lookup {
	var lk Lookup
	h, ok, err := readCgroup(fsys, controller)
	version := 0
	switch {
	case err != nil:
		lk.note("%v; guessing the cgroup directory", err)
	case !ok:
		lk.note("/proc/self/cgroup names no hierarchy with the %s controller: no cgroup %s limit applies", controller, limitName(controller))
		return lk
	default:
		lk.Hierarchy, version = h, h.Version
		mounts, err := readMountinfo(fsys)
		if err != nil {
			lk.note("%v; guessing the cgroup directory", err)
			break
		}
		loc, ok, err := Resolve(h, mounts)
		if err != nil {
			lk.Warnings = append(lk.Warnings, fmt.Sprintf("%v: its %s limit cannot be read, so it is ignored", err, limitName(controller)))
			return lk
		}
		if ok {
			lk.Location, lk.Found = loc, true
			return lk
		}
		lk.note("/proc/self/mountinfo has no %s mount; guessing the cgroup directory", kind(h))
	}
	loc, ok := guess(fsys, controller, version)
	if !ok {
		lk.note("no cgroup directory found: no cgroup %s limit is known", limitName(controller))
		return lk
	}
	lk.note("guessed cgroup directory %s (cgroup v%d)", loc.Dir, loc.Version)
	lk.Location, lk.Found = loc, true
	return lk
}

func (lk *Lookup) note(format string, args ...any) {
	lk.Notes = append(lk.Notes, fmt.Sprintf(format, args...))
}

// limitName names a controller's limit for people: "CPU", "memory".
func limitName(controller string) string {
	if controller == "cpu" {
		return "CPU"
	}
	return controller
}

func readCgroup(fsys fs.FS, controller string) (Hierarchy, bool, error) {
	f, err := fsys.Open("proc/self/cgroup")
	if err != nil {
		return Hierarchy{}, false, fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	defer f.Close()
	return ParseProcCgroup(f, controller)
}

func readMountinfo(fsys fs.FS) ([]Mount, error) {
	f, err := fsys.Open("proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	defer f.Close()
	return ParseMountinfo(f)
}
