package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Hierarchy is the line of /proc/self/cgroup that places this process in
// the cgroup hierarchy holding a controller.
type Hierarchy struct {
	// Controller is the controller the line was chosen for ("cpu",
	// "memory"): a v1 mount must hold it to show this hierarchy.
	Controller string `json:"controller"`
	// Version is 1 for a v1 hierarchy with the controller, 2 for the
	// unified hierarchy.
	Version int `json:"version"`
	// Controllers is the controller list of a v1 line ("cpu,cpuacct"),
	// empty for v2.
	Controllers string `json:"controllers,omitempty"`
	// Path is the cgroup's path relative to the root of the process's
	// cgroup namespace. It begins with "/" and may climb out of it
	// ("/../../init.scope") when the process sits outside that root.
	Path string `json:"path"`
}

// ParseProcCgroup reads /proc/self/cgroup and picks the hierarchy that
// holds controller ("cpu", "memory").
//
// Each line is ID:CONTROLLERS:PATH, split on its first two colons only:
// the path may contain colons. A v1 line whose comma-separated controller
// list holds the controller as an exact token wins wherever it stands (for
// "cpu", "cpuacct,cpu" counts, "cpuset" and "cpuacct" do not): on a hybrid
// host a controller may sit on v1 even though a "0::" line for the unified
// hierarchy is present. Otherwise the first "0::" line is v2. ok is false
// when there is neither (for "cpu", "3:cpuset:/" alone). Every line is
// checked: one without two colons or with a non-numeric ID is an error,
// and so is a chosen line whose path does not begin with "/".
func ParseProcCgroup(r io.Reader, controller string) (Hierarchy, bool, error) {
	var v1, v2 Hierarchy
	var haveV1, haveV2 bool
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return Hierarchy{}, false, fmt.Errorf("/proc/self/cgroup: %w", err)
		}
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			h, isV1, isV2, perr := parseCgroupLine(line, controller)
			if perr != nil {
				return Hierarchy{}, false, fmt.Errorf("/proc/self/cgroup line %d: %w", n, perr)
			}
			if isV1 && !haveV1 {
				v1, haveV1 = h, true
			}
			if isV2 && !haveV2 {
				v2, haveV2 = h, true
			}
		}
		if err == io.EOF {
			break
		}
	}
	if haveV1 {
		return v1, true, nil
	}
	return v2, haveV2, nil
}

// parseCgroupLine parses one ID:CONTROLLERS:PATH line and says whether it
// is a v1 line with the controller or the v2 line.
func parseCgroupLine(line, controller string) (h Hierarchy, isV1, isV2 bool, err error) {
	id, rest, ok := strings.Cut(line, ":")
	if !ok {
		return h, false, false, fmt.Errorf("%q: want ID:CONTROLLERS:PATH", line)
	}
	ctl, path, ok := strings.Cut(rest, ":")
	if !ok {
		return h, false, false, fmt.Errorf("%q: want ID:CONTROLLERS:PATH", line)
	}
	if !digits(id) {
		return h, false, false, fmt.Errorf("%q: hierarchy ID %q is not a number", line, id)
	}
	switch {
	case hasToken(ctl, controller):
		h = Hierarchy{Controller: controller, Version: 1, Controllers: ctl, Path: path}
		isV1 = true
	case id == "0" && ctl == "":
		h = Hierarchy{Controller: controller, Version: 2, Path: path}
		isV2 = true
	default:
		return h, false, false, nil
	}
	if !strings.HasPrefix(path, "/") {
		return h, false, false, fmt.Errorf("%q: path %q does not begin with /", line, path)
	}
	return h, isV1, isV2, nil
}

// hasToken reports whether the comma-separated list holds tok exactly; an
// empty tok is in no list.
func hasToken(list, tok string) bool {
	for tok != "" && list != "" {
		var t string
		t, list, _ = strings.Cut(list, ",")
		if t == tok {
			return true
		}
	}
	return false
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
