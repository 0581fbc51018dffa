package memory

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"

	"github.com/herd-sh/herd/cluster/cgroup"
)

// Sources: what decided the budget.
const (
	SourceCgroupV1 = "cgroup-v1"
	SourceCgroupV2 = "cgroup-v2"
	SourceLimit    = "limit" // HERD_MEMORY_LIMIT
	SourceNone     = "none"
)

// NoLimit is the smallest value read as "no limit": 2^62 bytes. cgroup v1
// shows an unset limit as the largest page count times the page size,
// 9223372036854771712 with 4 KiB pages; no machine has 4 EiB of memory.
const NoLimit = 1 << 62

// pageSlack is how far HERD_MEMORY_LIMIT may exceed a cgroup limit and
// still agree with it: the kernel rounds a limit down to whole pages, and
// pages are at most 64 KiB (arm64, ppc64).
const pageSlack = 64 << 10

// Input is everything Compute looks at. Only FS is read.
type Input struct {
	// FS is the root of the file system: Compute reads proc/self/cgroup,
	// proc/self/mountinfo, proc/meminfo and files under the cgroup mounts,
	// with no leading slash. In production, os.DirFS("/").
	FS fs.FS
	// Limit is HERD_MEMORY_LIMIT in bytes (see ParseQuantity); 0 means not
	// set. It stands in for a cgroup limit when none is visible, and is
	// only compared with one that is.
	Limit int64
}

// Level is one limit file read: the leaf's or an ancestor's, up to the
// mount point. A v2 directory gives two, memory.max and memory.high.
type Level struct {
	Dir string `json:"dir"`
	// File is memory.max or memory.high (v2), memory.limit_in_bytes (v1).
	File string `json:"file"`
	// Raw is the text read, newlines removed.
	Raw string `json:"raw"`
	// Read says whether the file could be read.
	Read bool `json:"read"`
	// Value is Raw as a number of bytes, 0 when it is no number ("max",
	// malformed, above 2^63-1).
	Value int64 `json:"value"`
	// HasLimit says whether Value limits: a number below NoLimit and not
	// above the machine's memory.
	HasLimit bool `json:"has_limit"`
	// Smallest marks the level whose limit is the budget (the leaf-most
	// one on a tie).
	Smallest bool `json:"smallest"`
	// Note says what the level contributed: "256MiB", "no limit here
	// (max)", "missing, no limit here", "malformed, ...".
	Note string `json:"note"`
}

// Result is the memory budget and every input and step that led to it.
type Result struct {
	// Limit is the budget in bytes, 0 when there is none.
	Limit int64 `json:"limit"`
	// Source is what decided Limit: SourceCgroupV1, SourceCgroupV2,
	// SourceLimit or SourceNone.
	Source string `json:"source"`
	// Dir is where usage is read: the directory of the smallest limit,
	// whose usage is what the limit binds, or with no cgroup limit herd's
	// own (Leaf); empty when no cgroup directory was found. OOM kills
	// read there include those of every descendant under v2 only (see
	// ReadOOMKills).
	Dir string `json:"dir"`
	// Version is the cgroup version of Dir (of the hierarchy when no
	// directory was found), 0 when unknown.
	Version int `json:"cgroup_version"`
	// File is the file of the smallest limit, empty when no cgroup limit
	// decided.
	File string `json:"file"`
	// Cgroup is the path from /proc/self/cgroup, empty if unknown.
	Cgroup string `json:"cgroup"`
	// Leaf is herd's own cgroup directory, the first level walked, where
	// its workers run: under v1 their OOM kills are counted here alone.
	Leaf       string `json:"leaf"`
	MountPoint string `json:"mount_point"`
	MountRoot  string `json:"mount_root"`
	// Guess is set when Leaf was guessed rather than found.
	Guess bool `json:"guess"`
	// Setting is HERD_MEMORY_LIMIT in bytes, 0 when not set.
	Setting int64 `json:"limit_setting"`
	// MemTotal is the machine's memory from /proc/meminfo, 0 if unknown.
	MemTotal int64 `json:"mem_total"`
	// Levels is every limit file read, leaf first.
	Levels []Level `json:"levels"`
	// Warnings are for the operator to act on: a cgroup outside every
	// mount, a HERD_MEMORY_LIMIT that disagrees with the cgroup's limit.
	Warnings []string `json:"warnings"`
	// Notes explain quieter facts: files that could not be read, a
	// guessed directory, no limit at all.
	Notes []string `json:"notes"`
}

// Compute finds the memory budget, in the order of the package
// documentation. Files that are missing, unreadable or malformed never
// make it fail: each is recorded in Levels, Notes or Warnings. It returns
// an error only for an Input no caller should pass: a nil FS or a negative
// Limit.
func Compute(in Input) (Result, error) {
	switch {
	case in.FS == nil:
		return Result{}, errors.New("memory: Input.FS is nil")
	case in.Limit < 0:
		return Result{}, fmt.Errorf("memory: limit %d bytes: must not be negative", in.Limit)
	}
	r := Result{Setting: in.Limit, Levels: []Level{}, Warnings: []string{}, Notes: []string{}}
	r.readMemTotal(in.FS)
	lk := cgroup.Locate(in.FS, "memory")
	r.Cgroup, r.Version = lk.Hierarchy.Path, lk.Hierarchy.Version
	r.Warnings = append(r.Warnings, lk.Warnings...)
	r.Notes = append(r.Notes, lk.Notes...)
	if lk.Found {
		loc := lk.Location
		r.Version, r.Leaf, r.MountPoint, r.MountRoot, r.Guess = loc.Version, loc.Dir, loc.MountPoint, loc.MountRoot, loc.Guess
		r.walk(in.FS, loc)
	}
	r.decide()
	return r, nil
}

// readMemTotal sets r.MemTotal from proc/meminfo.
func (r *Result) readMemTotal(fsys fs.FS) {
	raw, err := readSmall(fsys, "/proc/meminfo", maxStatFile)
	if err == nil {
		if kb, ok := field(raw, "MemTotal:"); ok && kb > 0 && kb <= NoLimit/1024 {
			r.MemTotal = kb * 1024
			return
		}
		err = errors.New("no MemTotal line in kB")
	}
	r.note("reading /proc/meminfo: %v: only limits of 2^62 bytes or more count as none", err)
}

// walk reads the limit files of every level of loc, sets r.Levels and
// marks the smallest.
func (r *Result) walk(fsys fs.FS, loc cgroup.Location) {
	files := []string{"memory.limit_in_bytes"}
	if loc.Version == 2 {
		files = []string{"memory.max", "memory.high"}
	}
	dirs := loc.Levels()
	for i, dir := range dirs {
		if i > 0 && loc.Version == 1 && !r.charged(fsys, dir, dirs[i-1]) {
			break
		}
		for _, f := range files {
			r.Levels = append(r.Levels, r.readLevel(fsys, dir, f))
		}
	}
	smallest := -1
	for i, lv := range r.Levels {
		if lv.HasLimit && (smallest < 0 || lv.Value < r.Levels[smallest].Value) {
			smallest = i
		}
	}
	if smallest >= 0 {
		r.Levels[smallest].Smallest = true
	}
}

// charged reports whether a v1 child's memory is charged to parent too:
// only when parent's memory.use_hierarchy is 1. Since Linux 5.11 it always
// is; before, a parent at 0 kept its children out of its limit, and out of
// its ancestors'. A file that cannot be read counts as 1.
func (r *Result) charged(fsys fs.FS, parent, child string) bool {
	raw, err := readSmall(fsys, parent+"/memory.use_hierarchy", maxLimitFile)
	if err != nil || strings.TrimSpace(raw) != "0" {
		return true
	}
	r.note("%s/memory.use_hierarchy is 0: %s is not charged to it, so its limit and those above it do not apply", parent, child)
	return false
}

func (r *Result) readLevel(fsys fs.FS, dir, file string) Level {
	lv := Level{Dir: dir, File: file}
	raw, err := readSmall(fsys, dir+"/"+file, maxLimitFile)
	if err != nil {
		lv.Note = unreadable(err)
		return lv
	}
	lv.Raw, lv.Read = oneLine(raw), true
	lv.Value, lv.HasLimit, lv.Note = r.parseLimit(raw)
	return lv
}

// parseLimit reads a limit file: "max" (v2) or a number of bytes, which
// limits only when it is below NoLimit and not above the machine's memory.
func (r *Result) parseLimit(raw string) (int64, bool, string) {
	s := strings.TrimSpace(raw)
	switch s {
	case "max":
		return 0, false, "no limit here (max)"
	case "-1":
		return 0, false, "no limit here (-1)"
	}
	v, err := strconv.ParseUint(s, 10, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, false, "malformed, no limit here: want a whole number of bytes or max"
	case err == nil && v == 0:
		return 0, false, "malformed, no limit here: 0 bytes leaves nothing to run in"
	case err != nil || v > math.MaxInt64:
		return 0, false, `no limit here (2^62 bytes or more: the kernel's "no limit")`
	case v >= NoLimit:
		return int64(v), false, `no limit here (2^62 bytes or more: the kernel's "no limit")`
	case r.MemTotal > 0 && int64(v) > r.MemTotal:
		return int64(v), false, fmt.Sprintf("no limit here: %s is above the machine's memory (MemTotal %s)", Bytes(int64(v)), Bytes(r.MemTotal))
	}
	return int64(v), true, Bytes(int64(v))
}

// decide sets the budget from the levels and the setting.
func (r *Result) decide() {
	var smallest, hard *Level
	for i := range r.Levels {
		lv := &r.Levels[i]
		if lv.Smallest {
			smallest = lv
		}
		if lv.HasLimit && lv.File != "memory.high" && (hard == nil || lv.Value < hard.Value) {
			hard = lv
		}
	}
	r.Dir = r.Leaf
	switch {
	case smallest != nil:
		r.Limit, r.Dir, r.File = smallest.Value, smallest.Dir, smallest.File
		r.Source = SourceCgroupV2
		if r.Version == 1 {
			r.Source = SourceCgroupV1
		}
		if smallest.File == "memory.high" {
			r.note("the smallest limit is a memory.high: above it the kernel throttles the cgroup and reclaims its memory rather than killing")
		}
		if hard == nil {
			hard = smallest
		}
		r.compare(*hard)
	case r.Setting >= NoLimit:
		r.Source = SourceNone
		r.note("HERD_MEMORY_LIMIT is 2^62 bytes or more: no limit")
	case r.Setting > 0:
		r.Limit, r.Source = r.Setting, SourceLimit
	default:
		r.Source = SourceNone
		r.note("no memory limit: no cgroup limit is visible and HERD_MEMORY_LIMIT is not set " +
			"(a container whose limit the kernel does not show can pass limits.memory through the Downward API)")
	}
}

// compare warns when HERD_MEMORY_LIMIT is set and differs from the cgroup's
// hard limit by more than the kernel's rounding to pages.
func (r *Result) compare(lv Level) {
	if r.Setting == 0 || (r.Setting >= lv.Value && r.Setting-lv.Value < pageSlack) {
		return
	}
	r.warn("HERD_MEMORY_LIMIT is %s (%d bytes) but the cgroup limit is %s (%s in %s): the cgroup's, which the kernel enforces, decides; "+
		"check that HERD_MEMORY_LIMIT comes from this container's limits.memory",
		Bytes(r.Setting), r.Setting, Bytes(lv.Value), lv.File, lv.Dir)
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}
