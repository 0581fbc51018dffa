package cgroup

import (
	"strings"
	"testing"
	"testing/fstest"
)

const hostCgroup = "9:name=systemd:/\n4:memory:/process_api/bb7602fd\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// TestLocate goes through every step of Locate: what it finds, whether it
// guessed, and what it tells.
func TestLocate(t *testing.T) {
	hostMounts := file(strings.Join([]string{lineHostCPU, lineHostMemory, "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw"}, "\n"))
	for _, c := range []struct {
		name       string
		controller string
		fs         fstest.MapFS
		dir        string // "" when nothing is found
		version    int    // of the hierarchy chosen
		dirVersion int    // of the directory found, when it differs
		guess      bool
		warn       string // in the one warning, "" for none
		notes      []string
	}{
		{
			name: "this machine: memory", controller: "memory",
			fs:  fstest.MapFS{"proc/self/cgroup": file(hostCgroup), "proc/self/mountinfo": hostMounts},
			dir: "/sys/fs/cgroup/memory/process_api/bb7602fd", version: 1,
		},
		{
			name: "this machine: cpu", controller: "cpu",
			fs:  fstest.MapFS{"proc/self/cgroup": file(hostCgroup), "proc/self/mountinfo": hostMounts},
			dir: "/sys/fs/cgroup/cpu", version: 1,
		},
		{
			name: "nothing readable", controller: "memory", fs: fstest.MapFS{},
			notes: []string{"reading /proc/self/cgroup", "no cgroup directory found: no cgroup memory limit is known"},
		},
		{
			name: "no memory hierarchy: nothing is guessed", controller: "memory",
			fs: fstest.MapFS{
				"proc/self/cgroup":                           file("1:cpu:/\n"),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
			},
			notes: []string{"/proc/self/cgroup names no hierarchy with the memory controller: no cgroup memory limit applies"},
		},
		{
			name: "no mountinfo: the usual v1 memory mount", controller: "memory",
			fs: fstest.MapFS{
				"proc/self/cgroup":                           file(hostCgroup),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
			},
			dir: "/sys/fs/cgroup/memory", version: 1, guess: true,
			notes: []string{"reading /proc/self/mountinfo", "guessed cgroup directory /sys/fs/cgroup/memory (cgroup v1)"},
		},
		{
			name: "no memory mount: guessed", controller: "memory",
			fs: fstest.MapFS{
				"proc/self/cgroup":                           file(hostCgroup),
				"proc/self/mountinfo":                        file(lineHostCPU),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
			},
			dir: "/sys/fs/cgroup/memory", version: 1, guess: true,
			notes: []string{"/proc/self/mountinfo has no cgroup (memory) mount; guessing the cgroup directory", "guessed cgroup directory"},
		},
		{
			name: "no proc: the cgroup2 root", controller: "memory",
			fs:  fstest.MapFS{"sys/fs/cgroup/cgroup.controllers": file("cpu memory pids\n")},
			dir: "/sys/fs/cgroup", dirVersion: 2, guess: true,
			notes: []string{"reading /proc/self/cgroup", "guessed cgroup directory /sys/fs/cgroup (cgroup v2)"},
		},
		{
			name: "outside the namespace's root", controller: "memory",
			fs:      fstest.MapFS{"proc/self/cgroup": file("0::/../../init.scope\n"), "proc/self/mountinfo": file(lineV2)},
			version: 2, warn: "cgroup /../../init.scope is not visible under any cgroup2 mount (root / at /sys/fs/cgroup): its memory limit cannot be read",
		},
		{
			name: "another controller: its usual mount point", controller: "pids",
			fs:  fstest.MapFS{"proc/self/cgroup": file("8:pids:/\n"), "sys/fs/cgroup/pids/cgroup.procs": file("1\n")},
			dir: "/sys/fs/cgroup/pids", version: 1, guess: true,
			notes: []string{"reading /proc/self/mountinfo", "guessed cgroup directory /sys/fs/cgroup/pids (cgroup v1)"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			lk := Locate(c.fs, c.controller)
			if lk.Found != (c.dir != "") || lk.Location.Dir != c.dir || lk.Location.Guess != c.guess {
				t.Errorf("found %v %+v, want dir %q guess %v", lk.Found, lk.Location, c.dir, c.guess)
			}
			if lk.Hierarchy.Version != c.version {
				t.Errorf("hierarchy %+v, want version %d", lk.Hierarchy, c.version)
			}
			if want := max(c.version, c.dirVersion); lk.Found && lk.Location.Version != want {
				t.Errorf("location %+v, want version %d", lk.Location, want)
			}
			if c.version != 0 && lk.Hierarchy.Controller != c.controller {
				t.Errorf("hierarchy %+v, want controller %q", lk.Hierarchy, c.controller)
			}
			if (len(lk.Warnings) > 0) != (c.warn != "") || (c.warn != "" && !strings.Contains(lk.Warnings[0], c.warn)) {
				t.Errorf("warnings %q, want %q", lk.Warnings, c.warn)
			}
			if len(lk.Notes) != len(c.notes) {
				t.Fatalf("notes %q, want %q", lk.Notes, c.notes)
			}
			for i, n := range c.notes {
				if !strings.Contains(lk.Notes[i], n) {
					t.Errorf("note %d %q, want %q", i, lk.Notes[i], n)
				}
			}
		})
	}
}
