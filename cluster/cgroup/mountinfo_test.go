package cgroup

import (
	"reflect"
	"strings"
	"testing"
)

const (
	lineV2         = "1399 1398 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot"
	lineV2Root     = "1399 1398 0:30 /sandbox/container /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw"
	lineV1Mixed    = "606 603 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:16 - cgroup cgroup rw,cpu,cpuacct"
	lineV1Cpuset   = "605 603 0:29 /docker/abc /sys/fs/cgroup/cpuset ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,cpuset"
	lineHostCPU    = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu"
	lineEscaped    = `40 31 0:38 / /sys/fs/cgroup/tab\011tab rw,relatime shared:5 master:3 propagate_from:2 - cgroup2 cgroup\040two rw`
	lineOutside    = "1399 1398 0:30 /../../.. /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw"
	lineTmpfsCg    = "1500 1398 0:99 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755"
	lineHostMemory = "34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"
)

// overlay returns an overlay root mount line of about n bytes: unrelated,
// long, and harmless.
func overlay(n int) string {
	var b strings.Builder
	b.WriteString("1393 1306 0:375 / / rw,relatime master:381 - overlay overlay rw,lowerdir=")
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1290/fs")
	}
	b.WriteString(",upperdir=/u,workdir=/w")
	return b.String()
}

func TestParseMountinfo(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want []Mount
		err  bool
	}{
		{
			name: "non-root v2 mount",
			in:   lineV2Root + "\n",
			want: []Mount{{ID: 1399, Parent: 1398, Root: "/sandbox/container", MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup", SuperOptions: "rw"}},
		},
		{
			name: "v1 mixed non-root mount, one optional field",
			in:   lineV1Mixed,
			want: []Mount{{ID: 606, Parent: 603, Root: "/docker/abc", MountPoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Source: "cgroup", SuperOptions: "rw,cpu,cpuacct"}},
		},
		{
			name: "escaped mount point and source, three optional fields",
			in:   lineEscaped + "\n",
			want: []Mount{{ID: 40, Parent: 31, Root: "/", MountPoint: "/sys/fs/cgroup/tab\ttab", FSType: "cgroup2", Source: "cgroup two", SuperOptions: "rw"}},
		},
		{
			name: "every escape the kernel writes",
			in:   `1 0 0:1 /a\040b\011c\012d\134e /m\134n rw - cgroup2 cgroup rw` + "\n",
			want: []Mount{{ID: 1, Parent: 0, Root: "/a b\tc\nd\\e", MountPoint: `/m\n`, FSType: "cgroup2", Source: "cgroup", SuperOptions: "rw"}},
		},
		{
			name: "out-of-namespace root",
			in:   lineOutside,
			want: []Mount{{ID: 1399, Parent: 1398, Root: "/../../..", MountPoint: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup", SuperOptions: "rw"}},
		},
		{name: "invalid escape", in: `1 0 0:1 /\1 /m rw - cgroup2 cgroup rw`, err: true},
		{name: "escape too short at the end", in: `1 0 0:1 / /m\04 rw - cgroup2 cgroup rw`, err: true},
		{name: "escape above 0377", in: `1 0 0:1 / /m\400 rw - cgroup2 cgroup rw`, err: true},
		{name: "escape with a non-octal digit", in: `1 0 0:1 / /m\08a rw - cgroup2 cgroup rw`, err: true},
		{name: "no separator", in: "1 0 0:1 / /m rw cgroup2 cgroup rw", err: true},
		{name: "separator without fields after it", in: "1 0 0:1 / /m rw - cgroup2", err: true},
		{name: "separator too early", in: "1 0 0:1 / - cgroup2 cgroup rw", err: true},
		{name: "non-numeric ID", in: "x 0 0:1 / /m rw - cgroup2 cgroup rw", err: true},
		{name: "non-numeric parent", in: "1 y 0:1 / /m rw - cgroup2 cgroup rw", err: true},
		{name: "device without colon", in: "1 0 01 / /m rw - cgroup2 cgroup rw", err: true},
		{name: "one bad line spoils the file", in: lineV2 + "\n" + "garbage\n", err: true},
		{name: "empty", in: ""},
		{name: "blank lines are skipped", in: "\n" + lineHostCPU + "\n\n", want: []Mount{{ID: 32, Parent: 31, Root: "/", MountPoint: "/sys/fs/cgroup/cpu", FSType: "cgroup", Source: "cgroup", SuperOptions: "rw,cpu"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMountinfo(strings.NewReader(c.in))
			if (err != nil) != c.err {
				t.Fatalf("error %v, want error: %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseMountinfoLongLines(t *testing.T) {
	for _, n := range []int{70 << 10, 200 << 10, 1 << 20} {
		long := overlay(n)
		mounts, err := ParseMountinfo(strings.NewReader(lineV2 + "\n" + long + "\n" + lineHostCPU + "\n"))
		if err != nil {
			t.Fatalf("%d-byte line: %v", len(long), err)
		}
		if len(mounts) != 3 || mounts[1].FSType != "overlay" || len(mounts[1].SuperOptions) < n-100 || mounts[2].MountPoint != "/sys/fs/cgroup/cpu" {
			t.Fatalf("%d-byte line: got %d mounts", len(long), len(mounts))
		}
	}
}

func mustMounts(t *testing.T, lines ...string) []Mount {
	t.Helper()
	m, err := ParseMountinfo(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResolve(t *testing.T) {
	v2 := func(p string) Hierarchy { return Hierarchy{Controller: "cpu", Version: 2, Path: p} }
	v1 := func(p string) Hierarchy {
		return Hierarchy{Controller: "cpu", Version: 1, Controllers: "cpu,cpuacct", Path: p}
	}
	mem := func(p string) Hierarchy {
		return Hierarchy{Controller: "memory", Version: 1, Controllers: "memory", Path: p}
	}
	for _, c := range []struct {
		name   string
		h      Hierarchy
		lines  []string
		dir    string
		levels []string
		ok     bool
		err    bool
	}{
		{
			name: "namespace root", h: v2("/"), lines: []string{lineV2},
			dir: "/sys/fs/cgroup", levels: []string{"/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "whole hierarchy: every ancestor up to the mount point", h: v2("/kubepods/pod1/c1"), lines: []string{lineV2},
			dir:    "/sys/fs/cgroup/kubepods/pod1/c1",
			levels: []string{"/sys/fs/cgroup/kubepods/pod1/c1", "/sys/fs/cgroup/kubepods/pod1", "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "non-root v2 mount", h: v2("/sandbox/container/app"), lines: []string{lineV2Root},
			dir: "/sys/fs/cgroup/app", levels: []string{"/sys/fs/cgroup/app", "/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "v1 mixed non-root mount, cpuset ignored", h: v1("/docker/abc"), lines: []string{lineV1Mixed, lineV1Cpuset},
			dir: "/sys/fs/cgroup/cpu,cpuacct", levels: []string{"/sys/fs/cgroup/cpu,cpuacct"}, ok: true,
		},
		{
			name: "v1 ignores cgroup2", h: v1("/docker/abc"), lines: []string{lineV1Mixed, lineV2},
			dir: "/sys/fs/cgroup/cpu,cpuacct", levels: []string{"/sys/fs/cgroup/cpu,cpuacct"}, ok: true,
		},
		{
			name: "escaped mount point", h: v2("/a"), lines: []string{lineEscaped},
			dir: "/sys/fs/cgroup/tab\ttab/a", levels: []string{"/sys/fs/cgroup/tab\ttab/a", "/sys/fs/cgroup/tab\ttab"}, ok: true,
		},
		{
			name: "path with colons", h: v2("/pod:a/c:1"), lines: []string{lineV2},
			dir: "/sys/fs/cgroup/pod:a/c:1", levels: []string{"/sys/fs/cgroup/pod:a/c:1", "/sys/fs/cgroup/pod:a", "/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "stacked mounts: the later wins", h: v2("/sandbox/container"),
			lines: []string{lineV2, lineV2Root},
			dir:   "/sys/fs/cgroup", levels: []string{"/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "stacked mounts: the later wins in the other order too", h: v2("/sandbox/container"),
			lines: []string{lineV2Root, lineV2},
			dir:   "/sys/fs/cgroup/sandbox/container", levels: []string{"/sys/fs/cgroup/sandbox/container", "/sys/fs/cgroup/sandbox", "/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "two mount points: the one showing more ancestors wins", h: v2("/sandbox/container/app"),
			lines:  []string{lineV2Root, "1400 1398 0:30 / /run/cgroup rw - cgroup2 cgroup rw", "1401 1398 0:30 /sandbox/container/app /run/app rw - cgroup2 cgroup rw"},
			dir:    "/run/cgroup/sandbox/container/app",
			levels: []string{"/run/cgroup/sandbox/container/app", "/run/cgroup/sandbox/container", "/run/cgroup/sandbox", "/run/cgroup"}, ok: true,
		},
		{
			name: "two mount points showing as much: the later wins", h: v2("/sandbox/container"),
			lines: []string{"1400 1398 0:30 /sandbox /run/a rw - cgroup2 cgroup rw", "1401 1398 0:30 /sandbox /run/b rw - cgroup2 cgroup rw"},
			dir:   "/run/b/container", levels: []string{"/run/b/container", "/run/b"}, ok: true,
		},
		{
			name: "shadowed by a later tmpfs on the same point", h: v2("/"), lines: []string{lineV2, lineTmpfsCg},
		},
		{
			name: "a later mount elsewhere does not shadow", h: v2("/"), lines: []string{lineV2, lineHostCPU},
			dir: "/sys/fs/cgroup", levels: []string{"/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "this machine: hybrid", h: Hierarchy{Controller: "cpu", Version: 1, Controllers: "cpu", Path: "/"},
			lines: []string{
				"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
				lineHostCPU,
				"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
				"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset",
				"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
			},
			dir: "/sys/fs/cgroup/cpu", levels: []string{"/sys/fs/cgroup/cpu"}, ok: true,
		},
		{
			name: "this machine: memory on v1", h: mem("/process_api/bb7602fd"),
			lines:  []string{lineHostCPU, lineHostMemory, "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"},
			dir:    "/sys/fs/cgroup/memory/process_api/bb7602fd",
			levels: []string{"/sys/fs/cgroup/memory/process_api/bb7602fd", "/sys/fs/cgroup/memory/process_api", "/sys/fs/cgroup/memory"},
			ok:     true,
		},
		{name: "memory ignores the cpu mount", h: mem("/"), lines: []string{lineHostCPU, lineV1Mixed}},
		{
			name: "memory: a Docker container's own cgroup", h: mem("/docker/abc"),
			lines: []string{lineV1Mixed, "607 603 0:31 /docker/abc /sys/fs/cgroup/memory ro,nosuid master:17 - cgroup cgroup rw,memory"},
			dir:   "/sys/fs/cgroup/memory", levels: []string{"/sys/fs/cgroup/memory"}, ok: true,
		},
		{name: "no cgroup2 mount", h: v2("/"), lines: []string{lineHostCPU, lineV1Cpuset}},
		{name: "no v1 cpu mount", h: v1("/"), lines: []string{lineV2, lineV1Cpuset}},
		{name: "out-of-namespace root", h: v2("/"), lines: []string{lineOutside}, err: true},
		{
			name: "out-of-namespace root reaches a path outside too", h: v2("/../../../x"), lines: []string{lineOutside},
			dir: "/sys/fs/cgroup/x", levels: []string{"/sys/fs/cgroup/x", "/sys/fs/cgroup"}, ok: true,
		},
		{name: "path climbs out of the mount", h: v2("/../../init.scope"), lines: []string{lineV2}, err: true},
		{name: "root does not contain the path", h: v1("/docker/other"), lines: []string{lineV1Mixed}, err: true},
		{name: "root is a prefix only as a string", h: v2("/sandbox/containers/x"), lines: []string{lineV2Root}, err: true},
		{name: "sand is not a prefix of sandbox", h: v2("/sandbox"), lines: []string{"1 0 0:30 /sand /sys/fs/cgroup rw - cgroup2 cgroup rw"}, err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			loc, ok, err := Resolve(c.h, mustMounts(t, c.lines...))
			if (err != nil) != c.err || ok != c.ok {
				t.Fatalf("Resolve = %+v, %v, %v; want ok %v, error %v", loc, ok, err, c.ok, c.err)
			}
			if !ok {
				return
			}
			if loc.Dir != c.dir || loc.Version != c.h.Version || loc.Guess {
				t.Errorf("Resolve = %+v, want dir %q", loc, c.dir)
			}
			if got := loc.Levels(); !reflect.DeepEqual(got, c.levels) {
				t.Errorf("levels %q, want %q", got, c.levels)
			}
		})
	}
}

func FuzzParseMountinfo(f *testing.F) {
	for _, s := range []string{
		lineV2, lineV2Root, lineV1Mixed, lineV1Cpuset, lineHostCPU, lineHostMemory, lineEscaped, lineOutside, lineTmpfsCg,
		`1 0 0:1 /\1 /m rw - cgroup2 cgroup rw`,
		lineV2 + "\n" + lineV2Root + "\n",
		overlay(70 << 10),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mounts, err := ParseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.ID < 0 || m.Parent < 0 {
				t.Fatalf("negative IDs in %+v", m)
			}
		}
		// Whatever the mounts, resolving a path never panics and never
		// yields a directory outside a mount point.
		for _, h := range []Hierarchy{
			{Controller: "cpu", Version: 2, Path: "/"}, {Controller: "cpu", Version: 1, Path: "/a/b"},
			{Controller: "memory", Version: 1, Path: "/a"}, {Controller: "cpu", Version: 2, Path: "/../x"},
		} {
			loc, ok, _ := Resolve(h, mounts)
			if ok && !strings.HasPrefix(loc.Dir, loc.MountPoint) {
				t.Fatalf("dir %q outside mount point %q", loc.Dir, loc.MountPoint)
			}
			if ok {
				loc.Levels()
			}
		}
	})
}
