package cpus

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/herd-sh/herd/cluster/cgroup"
)

// Sources: the input that decided the budget.
const (
	SourceAffinity = "affinity"
	SourceCgroupV1 = "cgroup-v1"
	SourceCgroupV2 = "cgroup-v2"
	SourceRequest  = "request"
	SourceLimit    = "limit"
)

// Input is everything Compute looks at. Only FS is read; the rest is
// passed in, so tests never touch the machine they run on.
type Input struct {
	// FS is the root of the file system: Compute reads proc/self/cgroup,
	// proc/self/mountinfo and files under the cgroup mounts, with no
	// leading slash. In production, os.DirFS("/").
	FS fs.FS
	// Affinity is the number of CPUs the process may run on (Affinity()).
	// It must be at least 1.
	Affinity int
	// Request is the container's CPU request in millicores
	// (HERD_CPU_REQUEST, see ParseRequest); 0 means not set.
	Request int64
	// Limit is the container's CPU limit in millicores (HERD_CPU_LIMIT,
	// read like the request); 0 means not set. It stands in for the quota
	// when none is visible, and is only compared with a quota that is.
	Limit int64
	// Rounding turns the budget into workers; empty means Nearest.
	Rounding Rounding
	// Min and Max clamp the number of workers (HERD_MIN_WORKERS,
	// HERD_MAX_WORKERS); 0 means no clamp. Max, when set, must not be
	// below Min.
	Min, Max int
	// Reserve is CPU kept for herd itself, subtracted from the budget but
	// never taking it below min(budget, 1): a budget of one CPU or less is
	// left as it is, and a larger one never drops below one CPU, since
	// there is always at least one worker to run. Zero (the default)
	// reserves nothing.
	Reserve Fraction
}

// Level is one cgroup directory walked: the leaf, or one of its ancestors
// up to the mount point.
type Level struct {
	Dir string `json:"dir"`
	// File is what was read: cpu.max for v2; for v1 cpu.cfs_quota_us, and
	// "cpu.cfs_quota_us/cpu.cfs_period_us" when the quota was set and the
	// period read too.
	File string `json:"file"`
	// Raw is the text read, newlines removed ("quota/period" for v1).
	Raw string `json:"raw"`
	// Read says whether every file named by File could be read.
	Read bool `json:"read"`
	// Bandwidth is the parsed limit, zero when the level has none.
	Bandwidth Bandwidth `json:"bandwidth,omitzero"`
	// Limit is Bandwidth in CPUs; HasLimit says whether there is one.
	Limit    Fraction `json:"limit,omitzero"`
	HasLimit bool     `json:"has_limit"`
	// Smallest marks the level whose limit is the quota (the leaf-most
	// one on a tie).
	Smallest bool `json:"smallest"`
	// Note says what the level contributed: "no limit (max)", "missing:
	// no limit here", "malformed: ...", "1.5 CPUs".
	Note string `json:"note"`
}

// Result is the budget, the number of workers and every input and step
// that led to them.
type Result struct {
	// Workers is the number of workers to run: Budget rounded, at least
	// 1, then clamped to Min and Max.
	Workers int `json:"workers"`
	// Budget is the CPU budget B after the reserve.
	Budget Fraction `json:"budget"`
	// Available is the budget before the reserve: min(Affinity, Quota);
	// with no quota min(Affinity, limit), or min(Affinity, request) with no
	// limit either.
	Available Fraction `json:"available"`
	// Source is what decided Available: SourceAffinity, SourceCgroupV1,
	// SourceCgroupV2, SourceLimit or SourceRequest.
	Source string `json:"source"`
	// Version is the cgroup version whose directory was walked, 0 when
	// none was found.
	Version int `json:"cgroup_version"`
	// Cgroup is the path from /proc/self/cgroup, empty if unknown.
	Cgroup string `json:"cgroup"`
	// Dir is the cgroup directory found; empty when none.
	Dir        string `json:"dir"`
	MountPoint string `json:"mount_point"`
	MountRoot  string `json:"mount_root"`
	// Guess is set when Dir was guessed rather than found.
	Guess bool `json:"guess"`
	// Quota is the smallest limit over the levels; nil when none.
	Quota    *Fraction `json:"quota"`
	Affinity int       `json:"affinity"`
	// Request is the CPU request in millicores, 0 when not set.
	Request int64 `json:"request_millicores"`
	// Limit is the CPU limit in millicores, 0 when not set.
	Limit    int64    `json:"limit_millicores"`
	Rounding Rounding `json:"rounding"`
	// Rounded is Budget rounded, before the minimum of one and the clamps.
	Rounded int      `json:"rounded"`
	Min     int      `json:"min_workers"`
	Max     int      `json:"max_workers"`
	Reserve Fraction `json:"reserve"`
	// Levels is every cgroup directory walked, leaf first.
	Levels []Level `json:"levels"`
	// Warnings are for the operator to act on: no limit and no request
	// (with how to pass the request), a cgroup outside every mount, a
	// cpu.max without a period, a request or limit that looks like a unit
	// mistake, a limit that disagrees with the quota.
	Warnings []string `json:"warnings"`
	// Notes explain quieter facts: files that could not be read, a
	// guessed directory.
	Notes []string `json:"notes"`
}

// RequestHint says how to hand the pod's CPU request to herd.
const RequestHint = "set HERD_CPU_REQUEST from the Downward API with its unit: " +
	"env CPU_M valueFrom.resourceFieldRef {resource: requests.cpu, divisor: 1m}, then HERD_CPU_REQUEST value \"$(CPU_M)m\""

// Compute derives the CPU budget and the number of workers, in the order
// of the package documentation. Files that are missing, unreadable or
// malformed never make it fail: each is recorded in Levels, Notes or
// Warnings and Compute falls back. It returns an error only for an Input
// no caller should pass: a nil FS, Affinity below 1, a negative Request,
// Min or Max, Max below Min, an unknown Rounding or an invalid Reserve.
func Compute(in Input) (Result, error) {
	if err := in.check(); err != nil {
		return Result{}, err
	}
	r := Result{
		Affinity: in.Affinity,
		Request:  in.Request,
		Limit:    in.Limit,
		Rounding: in.Rounding,
		Min:      in.Min,
		Max:      in.Max,
		Reserve:  in.Reserve.norm(),
		Levels:   []Level{},
		Warnings: []string{},
		Notes:    []string{},
	}
	if r.Rounding == "" {
		r.Rounding = Nearest
	}
	if loc, ok := r.locate(in.FS); ok {
		r.Version, r.Dir, r.MountPoint, r.MountRoot, r.Guess = loc.Version, loc.Dir, loc.MountPoint, loc.MountRoot, loc.Guess
		r.walk(in.FS, loc)
	}
	r.decide()
	return r, nil
}

func (in Input) check() error {
	switch {
	case in.FS == nil:
		return errors.New("cpus: Input.FS is nil")
	case in.Affinity < 1:
		return fmt.Errorf("cpus: affinity %d: must be at least 1", in.Affinity)
	case in.Request < 0:
		return fmt.Errorf("cpus: request %d millicores: must not be negative", in.Request)
	case in.Limit < 0:
		return fmt.Errorf("cpus: limit %d millicores: must not be negative", in.Limit)
	case in.Min < 0 || in.Max < 0:
		return fmt.Errorf("cpus: min %d, max %d workers: must not be negative", in.Min, in.Max)
	case in.Max > 0 && in.Min > in.Max:
		return fmt.Errorf("cpus: min workers %d above max workers %d", in.Min, in.Max)
	case !in.Reserve.valid():
		return fmt.Errorf("cpus: reserve %d/0: denominator must not be 0", in.Reserve.Num)
	}
	if _, err := ParseRounding(string(in.Rounding)); err != nil {
		return fmt.Errorf("cpus: rounding %q: %w", in.Rounding, err)
	}
	return nil
}

// locate finds the cgroup directory of the cpu controller, recording how
// in r.
func (r *Result) locate(fsys fs.FS) (cgroup.Location, bool) {
	lk := cgroup.Locate(fsys, "cpu")
	r.Cgroup, r.Version = lk.Hierarchy.Path, lk.Hierarchy.Version
	r.Warnings = append(r.Warnings, lk.Warnings...)
	r.Notes = append(r.Notes, lk.Notes...)
	return lk.Location, lk.Found
}

// walk reads the limit of every level of loc, sets r.Levels and r.Quota.
func (r *Result) walk(fsys fs.FS, loc cgroup.Location) {
	smallest := -1
	for _, dir := range loc.Levels() {
		var lv Level
		if loc.Version == 2 {
			lv = r.readV2(fsys, dir)
		} else {
			lv = readV1(fsys, dir)
		}
		if lv.HasLimit && (smallest < 0 || lv.Limit.Less(r.Levels[smallest].Limit)) {
			smallest = len(r.Levels)
		}
		r.Levels = append(r.Levels, lv)
	}
	if smallest >= 0 {
		r.Levels[smallest].Smallest = true
		q := r.Levels[smallest].Limit
		r.Quota = &q
	}
}

func (r *Result) readV2(fsys fs.FS, dir string) Level {
	lv := Level{Dir: dir, File: "cpu.max"}
	raw, err := readSmall(fsys, dir+"/cpu.max")
	if err != nil {
		lv.Note = unreadable(err)
		return lv
	}
	lv.Raw, lv.Read = oneLine(raw), true
	b, ok, err := ParseCPUMax(raw)
	switch {
	case err != nil:
		lv.Note = "malformed, no limit here: " + err.Error()
	case !ok:
		lv.Note = "no limit here (max)"
	default:
		lv.setLimit(b)
		if b.PeriodAssumed {
			lv.Note += fmt.Sprintf(", period %d µs assumed", b.PeriodUS)
			r.warn("%s/cpu.max holds a quota without a period (%q): read as %s", dir, lv.Raw, b)
		}
	}
	return lv
}

func readV1(fsys fs.FS, dir string) Level {
	lv := Level{Dir: dir, File: "cpu.cfs_quota_us"}
	quota, err := readSmall(fsys, dir+"/cpu.cfs_quota_us")
	if err != nil {
		lv.Note = unreadable(err)
		return lv
	}
	lv.Raw, lv.Read = oneLine(quota), true
	if strings.TrimSpace(quota) == "-1" {
		lv.Note = "no limit here (-1: the parent's limit applies)"
		return lv
	}
	// Check the quota alone first, so a bad quota is reported as such
	// even when the period cannot be read.
	if _, _, err := ParseV1Quota(quota, "1"); err != nil {
		lv.Note = "malformed, no limit here: " + err.Error()
		return lv
	}
	lv.File = "cpu.cfs_quota_us/cpu.cfs_period_us"
	period, err := readSmall(fsys, dir+"/cpu.cfs_period_us")
	if err != nil {
		lv.Read = false
		lv.Note = "cpu.cfs_period_us " + unreadable(err)
		return lv
	}
	lv.Raw += "/" + oneLine(period)
	b, _, err := ParseV1Quota(quota, period)
	if err != nil {
		lv.Note = "malformed, no limit here: " + err.Error()
		return lv
	}
	lv.setLimit(b)
	return lv
}

func (lv *Level) setLimit(b Bandwidth) {
	lv.Bandwidth, lv.Limit, lv.HasLimit = b, b.CPUs(), true
	lv.Note = cpus(lv.Limit)
}

func unreadable(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "missing, no limit here"
	}
	return "unreadable, no limit here: " + err.Error()
}

// maxFile bounds what is read of a limit file: the real ones hold a few
// dozen bytes.
const maxFile = 4096

// fsPath turns an absolute path into a name for an fs.FS rooted at "/".
func fsPath(abs string) string {
	if p := strings.TrimLeft(abs, "/"); p != "" {
		return p
	}
	return "."
}

// readSmall reads a limit file of at most maxFile bytes.
func readSmall(fsys fs.FS, abs string) (string, error) {
	f, err := fsys.Open(fsPath(abs))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxFile {
		return "", fmt.Errorf("%s: larger than %d bytes", abs, maxFile)
	}
	return string(b), nil
}

// oneLine shows file content on one line, shortened.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	s = strings.ReplaceAll(s, "\n", `\n`)
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// decide computes the budget and the workers from what was read.
func (r *Result) decide() {
	a := Whole(uint64(r.Affinity))
	limit := newFraction(uint64(r.Limit), 1000)
	switch {
	case r.Quota != nil && r.Quota.Cmp(a) <= 0:
		r.Available = *r.Quota
		r.Source = SourceCgroupV2
		if r.Version == 1 {
			r.Source = SourceCgroupV1
		}
	case r.Quota != nil:
		r.Available, r.Source = a, SourceAffinity
	case r.Limit > 0:
		// No quota is visible (quota enforcement off on the node, or a
		// sandbox that hides the cgroup): the declared limit stands in for
		// it, and the request, never above the limit, is not needed.
		r.Available, r.Source = a, SourceAffinity
		if limit.Cmp(a) <= 0 {
			r.Available, r.Source = limit, SourceLimit
		}
		if r.Request > 0 {
			r.note("no cgroup quota: HERD_CPU_LIMIT (%s) decides, not HERD_CPU_REQUEST (%s)", cpus(limit), cpus(newFraction(uint64(r.Request), 1000)))
		}
	case r.Request > 0:
		req := newFraction(uint64(r.Request), 1000)
		r.Available, r.Source = a, SourceAffinity
		if req.Cmp(a) <= 0 {
			r.Available, r.Source = req, SourceRequest
		}
	default:
		r.Available, r.Source = a, SourceAffinity
		r.warn("no CPU limit found (no cgroup quota, HERD_CPU_LIMIT not set) and HERD_CPU_REQUEST is not set: "+
			"one worker per CPU of the affinity mask (%d); to size by the pod's CPU request, %s", r.Affinity, RequestHint)
	}
	if r.Quota != nil && r.Limit > 0 && limit.Cmp(*r.Quota) != 0 {
		r.warn("HERD_CPU_LIMIT is %dm (%s) but the cgroup quota is %s: the quota, which the kernel enforces, decides; "+
			"check that HERD_CPU_LIMIT comes from this container's limits.cpu", r.Limit, cpus(limit), cpus(*r.Quota))
	}
	if r.Request > 0 && r.Limit > 0 && r.Request > r.Limit {
		r.warn("HERD_CPU_REQUEST (%dm) is above HERD_CPU_LIMIT (%dm), which Kubernetes never allows: check both", r.Request, r.Limit)
	}
	for _, v := range []struct {
		name  string
		value int64
	}{{"HERD_CPU_REQUEST", r.Request}, {"HERD_CPU_LIMIT", r.Limit}} {
		if v.value > 0 && v.value < 10 {
			r.warn("%s is %dm (%s CPU), less than any server asks for; for %d CPUs write %d or %d.0",
				v.name, v.value, newFraction(uint64(v.value), 1000), v.value, v.value, v.value)
		}
	}

	r.Budget = r.Available
	one := Whole(1)
	if !r.Reserve.IsZero() && one.Less(r.Budget) {
		b := one
		if r.Reserve.Less(r.Budget) {
			b = r.Budget.sub(r.Reserve)
		}
		if b.Less(one) {
			b = one
		}
		r.Budget = b
	}

	r.Rounded = r.Rounding.Round(r.Budget)
	r.Workers = max(r.Rounded, 1)
	if r.Min > 0 && r.Workers < r.Min {
		r.Workers = r.Min
	}
	if r.Max > 0 && r.Workers > r.Max {
		r.Workers = r.Max
	}
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}
