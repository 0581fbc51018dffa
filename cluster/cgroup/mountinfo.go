package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo (proc(5)), with the octal
// escapes of its path fields decoded.
type Mount struct {
	ID     int `json:"id"`
	Parent int `json:"parent"`
	// Root is the directory of the mounted file system that appears at
	// MountPoint: for a cgroup file system, the cgroup whose directory is
	// MountPoint. It may climb ("/../../..") when the mount was made
	// outside this process's cgroup namespace.
	Root       string `json:"root"`
	MountPoint string `json:"mount_point"`
	FSType     string `json:"fs_type"`
	Source     string `json:"source"`
	// SuperOptions are the per-superblock options; for a v1 cgroup mount,
	// the controllers it holds ("rw,cpu,cpuacct").
	SuperOptions string `json:"super_options"`
}

// ParseMountinfo reads /proc/self/mountinfo.
//
// A line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] -
// FSTYPE SOURCE SUPEROPTIONS". The number of optional fields varies, so the
// parser looks for the lone "-" field rather than counting. The kernel
// writes space, tab, newline and backslash in paths as \040, \011, \012 and
// \134; every such three-digit octal escape is decoded, and any other use
// of a backslash is an error. Lines may be of any length (an overlay mount
// with many layers passes 100 KB). Any malformed line makes the whole file
// an error: the kernel writes none, so the file is not what it claims to
// be.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("/proc/self/mountinfo: %w", err)
		}
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			m, perr := parseMountLine(line)
			if perr != nil {
				return nil, fmt.Errorf("/proc/self/mountinfo line %d: %w", n, perr)
			}
			mounts = append(mounts, m)
		}
		if err == io.EOF {
			return mounts, nil
		}
	}
}

func parseMountLine(line string) (Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) < sep+3 {
		return Mount{}, errors.New("want ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS")
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil || m.ID < 0 {
		return Mount{}, fmt.Errorf("mount ID %q is not a number", trim(f[0]))
	}
	if m.Parent, err = strconv.Atoi(f[1]); err != nil || m.Parent < 0 {
		return Mount{}, fmt.Errorf("parent ID %q is not a number", trim(f[1]))
	}
	if !strings.Contains(f[2], ":") {
		return Mount{}, fmt.Errorf("device %q is not MAJ:MIN", trim(f[2]))
	}
	fields := []struct {
		dst  *string
		src  string
		name string
	}{
		{&m.Root, f[3], "root"},
		{&m.MountPoint, f[4], "mount point"},
		{&m.FSType, f[sep+1], "file system type"},
		{&m.Source, f[sep+2], "source"},
		{&m.SuperOptions, strings.Join(f[sep+3:], " "), "super options"},
	}
	for _, x := range fields {
		if *x.dst, err = unescape(x.src); err != nil {
			return Mount{}, fmt.Errorf("%s %q: %w", x.name, trim(x.src), err)
		}
	}
	return m, nil
}

// unescape decodes the kernel's \ooo octal escapes.
func unescape(s string) (string, error) {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for ; i >= 0; i = strings.IndexByte(s, '\\') {
		b.WriteString(s[:i])
		if len(s) < i+4 || !octal(s[i+1]) || !octal(s[i+2]) || !octal(s[i+3]) {
			return "", errors.New(`invalid escape: want \ and three octal digits`)
		}
		if s[i+1] > '3' {
			return "", errors.New(`invalid escape: above \377`)
		}
		b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
		s = s[i+4:]
	}
	b.WriteString(s)
	return b.String(), nil
}

func octal(c byte) bool { return '0' <= c && c <= '7' }

// trim shortens s for an error message.
func trim(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
