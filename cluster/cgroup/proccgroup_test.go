package cgroup

import (
	"strings"
	"testing"
)

// The /proc/self/cgroup vectors of docs/workers.md (controller cpu) and
// docs/memory.md (controller memory).
var procCgroupVectors = []procCgroupVector{
	{
		name: "v1 cpu wins over blkio and v2",
		in:   "2:cpu,cpuacct:/a/b/cpu\n1:blkio:/a/b/blkio\n0::/a/b/v2\n",
		want: Hierarchy{Version: 1, Controllers: "cpu,cpuacct", Path: "/a/b/cpu"}, ok: true,
	},
	{
		name: "v1 cpu wins even after the v2 line",
		in:   "0::/a/b/v2\n2:cpu,cpuacct:/a/b/cpu\n",
		want: Hierarchy{Version: 1, Controllers: "cpu,cpuacct", Path: "/a/b/cpu"}, ok: true,
	},
	{name: "v2 only", in: "0::/a/b/c\n", want: Hierarchy{Version: 2, Path: "/a/b/c"}, ok: true},
	{name: "v2 without newline", in: "0::/", want: Hierarchy{Version: 2, Path: "/"}, ok: true},
	{name: "cpu last in the list", in: "12:cpuacct,cpu:/x\n", want: Hierarchy{Version: 1, Controllers: "cpuacct,cpu", Path: "/x"}, ok: true},
	{name: "cpuset alone is no cpu hierarchy", in: "3:cpuset:/\n"},
	{name: "cpuacct alone is no cpu hierarchy", in: "2:cpuacct:/\n1:name=systemd:/\n"},
	{name: "empty file", in: ""},
	{
		name: "this machine: hybrid, cpu on v1",
		in:   "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/bb7602fd\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n",
		want: Hierarchy{Version: 1, Controllers: "cpu", Path: "/"}, ok: true,
	},
	{name: "path containing colons", in: "0::/kubepods/pod:a:b/c:d\n", want: Hierarchy{Version: 2, Path: "/kubepods/pod:a:b/c:d"}, ok: true},
	{name: "v1 path containing colons", in: "4:cpu,cpuacct:/docker/a:b\n", want: Hierarchy{Version: 1, Controllers: "cpu,cpuacct", Path: "/docker/a:b"}, ok: true},
	{name: "outside the namespace root", in: "0::/../../init.scope\n", want: Hierarchy{Version: 2, Path: "/../../init.scope"}, ok: true},
	{name: "line without two colons", in: "0::/\n4/cpu/x\n", err: true},
	{name: "line with one colon", in: "4:cpu\n", err: true},
	{name: "non-numeric ID", in: "x:cpu:/a\n", err: true},
	{name: "relative path", in: "0::a/b\n", err: true},
	{
		name: "memory: this machine, memory on v1", ctl: "memory",
		in:   "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/bb7602fd\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n",
		want: Hierarchy{Version: 1, Controllers: "memory", Path: "/process_api/bb7602fd"}, ok: true,
	},
	{name: "memory: v2 only", ctl: "memory", in: "0::/kubepods.slice/pod/c\n", want: Hierarchy{Version: 2, Path: "/kubepods.slice/pod/c"}, ok: true},
	{name: "memory: the cpu line is not memory's", ctl: "memory", in: "2:cpu,cpuacct:/a\n0::/b\n", want: Hierarchy{Version: 2, Path: "/b"}, ok: true},
	{name: "memory: memsw is no token of its own", ctl: "memory", in: "3:memory_x:/a\n"},
	{name: "memory: named hierarchy only", ctl: "memory", in: "1:name=systemd:/\n"},
	{name: "empty controller matches nothing", ctl: "-", in: "1:a,,b:/x\n"},
}

type procCgroupVector struct {
	name string
	ctl  string // the controller asked for: "" is cpu, "-" the empty name
	in   string
	want Hierarchy // but for Controller, the one asked for when ok
	ok   bool
	err  bool
}

func (v procCgroupVector) controller() string {
	switch v.ctl {
	case "":
		return "cpu"
	case "-":
		return ""
	}
	return v.ctl
}

func TestParseProcCgroup(t *testing.T) {
	for _, v := range procCgroupVectors {
		t.Run(v.name, func(t *testing.T) {
			want := v.want
			if v.ok {
				want.Controller = v.controller()
			}
			h, ok, err := ParseProcCgroup(strings.NewReader(v.in), v.controller())
			if (err != nil) != v.err || ok != v.ok || h != want {
				t.Errorf("ParseProcCgroup(%q, %q) = %+v, %v, %v; want %+v, %v, error %v", v.in, v.controller(), h, ok, err, want, v.ok, v.err)
			}
		})
	}
}

func TestHasToken(t *testing.T) {
	for _, c := range []struct {
		list string
		want bool
	}{
		{"cpu", true}, {"cpu,cpuacct", true}, {"cpuacct,cpu", true}, {"rw,nosuid,cpu", true},
		{"cpuset", false}, {"cpuacct", false}, {"", false}, {"rw,cpuacct,cpuset", false}, {",,", false},
	} {
		if got := hasToken(c.list, "cpu"); got != c.want {
			t.Errorf("hasToken(%q, cpu) = %v", c.list, got)
		}
	}
	for _, list := range []string{"", ",", "a,,b", "cpu"} {
		if hasToken(list, "") {
			t.Errorf("hasToken(%q, \"\") = true", list)
		}
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, v := range procCgroupVectors {
		f.Add(v.in, v.controller())
	}
	f.Fuzz(func(t *testing.T, s, controller string) {
		h, ok, err := ParseProcCgroup(strings.NewReader(s), controller)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if ok {
			if h.Controller != controller || (h.Version == 1 && !hasToken(h.Controllers, controller)) {
				t.Fatalf("line %+v chosen for controller %q", h, controller)
			}
			if h.Version != 1 && h.Version != 2 {
				t.Fatalf("version %d", h.Version)
			}
			if !strings.HasPrefix(h.Path, "/") || !strings.Contains(s, h.Path) {
				t.Fatalf("path %q", h.Path)
			}
		}
	})
}
