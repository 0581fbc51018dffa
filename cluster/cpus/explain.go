package cpus

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// LogLine explains the decision in one line:
//
//	workers=3 source=cgroup-v2 dir=/sys/fs/cgroup cpu.max=250000/100000 (2.5) affinity=16 request=- rounding=nearest
//
// The limit is shown as the smallest level's quota/period and its value in
// CPUs, under the key cpu.max for v2 (or when no cgroup was found) and
// cpu.cfs_quota_us/cpu.cfs_period_us for v1; "-" when no level limits. A
// request is shown in millicores ("request=2000m"). A dir holding spaces or
// other unusual characters is quoted; "-" when none was found. Only when
// they apply, these follow: limit=1500m (HERD_CPU_LIMIT), guess=true (the
// directory was guessed), reserve=0.5, min=N, max=N. Warnings are not part of the line; log them
// separately.
func (r Result) LogLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workers=%d source=%s dir=%s %s=%s affinity=%d request=%s rounding=%s",
		r.Workers, r.Source, logValue(r.Dir), r.limitKey(), r.limitValue(), r.Affinity, r.requestValue(), r.Rounding)
	if r.Limit > 0 {
		fmt.Fprintf(&b, " limit=%s", r.cpuLimitValue())
	}
	if r.Guess {
		b.WriteString(" guess=true")
	}
	if !r.Reserve.IsZero() {
		fmt.Fprintf(&b, " reserve=%s", r.Reserve)
	}
	if r.Min > 0 {
		fmt.Fprintf(&b, " min=%d", r.Min)
	}
	if r.Max > 0 {
		fmt.Fprintf(&b, " max=%d", r.Max)
	}
	return b.String()
}

func (r Result) limitKey() string {
	if r.Version == 1 {
		return "cpu.cfs_quota_us/cpu.cfs_period_us"
	}
	return "cpu.max"
}

func (r Result) limitValue() string {
	for _, lv := range r.Levels {
		if lv.Smallest {
			return fmt.Sprintf("%s (%s)", lv.Bandwidth, lv.Limit)
		}
	}
	return "-"
}

func (r Result) requestValue() string { return millicores(r.Request) }

func (r Result) cpuLimitValue() string { return millicores(r.Limit) }

// millicores shows an amount from the Downward API: "1500m", "-" for none.
func millicores(m int64) string {
	if m == 0 {
		return "-"
	}
	return strconv.FormatInt(m, 10) + "m"
}

// logValue quotes s when it would not read as one key=value token.
func logValue(s string) string {
	if s == "" {
		return "-"
	}
	for _, c := range s {
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f || !strconv.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}

// WriteTable writes the whole derivation for people: the decision, every
// input, every level walked, the warnings and the notes.
func (r Result) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	p("DECISION")
	p("  workers\t%d\t%s", r.Workers, r.workersWhy())
	p("  budget\t%s\t%s", cpus(r.Budget), r.budgetWhy())
	p("  source\t%s", r.Source)
	p("")
	p("INPUTS")
	p("  affinity, CPUs in sched_getaffinity's mask\t%d", r.Affinity)
	p("  request, HERD_CPU_REQUEST\t%s", r.requestValue())
	p("  limit, HERD_CPU_LIMIT\t%s", r.cpuLimitValue())
	p("  rounding, HERD_CPU_ROUNDING\t%s", r.Rounding)
	p("  min workers, HERD_MIN_WORKERS\t%s", orDash(r.Min))
	p("  max workers, HERD_MAX_WORKERS\t%s", orDash(r.Max))
	p("  reserve for herd\t%s", r.reserveValue())
	p("  %s\t%s", r.cgroupWhat(), dash(r.Cgroup))
	p("  %s\t%s", r.mountWhat(), dash(quoted(r.MountPoint)))
	p("  %s\t%s", r.dirWhat(), dash(quoted(r.Dir)))
	p("  quota, smallest limit over the levels\t%s", r.quotaValue())
	p("")
	p("LEVELS (leaf first, up to the mount point)")
	if len(r.Levels) == 0 {
		p("  none walked")
	}
	for _, lv := range r.Levels {
		p("  %s", quoted(lv.Dir))
		mark := ""
		if lv.Smallest {
			mark = "  <- smallest"
		}
		content := ""
		if lv.Read || lv.Raw != "" {
			content = " " + strconv.Quote(lv.Raw)
		}
		p("      %s%s: %s%s", lv.File, content, lv.Note, mark)
	}
	for _, s := range []struct {
		title string
		lines []string
	}{{"WARNINGS", r.Warnings}, {"NOTES", r.Notes}} {
		if len(s.lines) == 0 {
			continue
		}
		p("")
		p("%s", s.title)
		for _, l := range s.lines {
			p("  - %s", l)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return ew.err
}

// errWriter keeps the first error of w, which tabwriter may not report.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

// cpus renders f with its unit: "0.5 CPU", "1 CPU", "2.5 CPUs".
func cpus(f Fraction) string {
	if Whole(1).Less(f) {
		return f.String() + " CPUs"
	}
	return f.String() + " CPU"
}

func (r Result) workersWhy() string {
	s := fmt.Sprintf("%s(%s) = %d", r.Rounding, r.Budget, r.Rounded)
	if r.Rounded < 1 {
		s += ", at least 1"
	}
	switch w := max(r.Rounded, 1); {
	case r.Workers > w:
		s += fmt.Sprintf(", raised to HERD_MIN_WORKERS %d", r.Min)
	case r.Workers < w:
		s += fmt.Sprintf(", lowered to HERD_MAX_WORKERS %d", r.Max)
	}
	return s
}

func (r Result) budgetWhy() string {
	var s string
	switch {
	case r.Source == SourceCgroupV1 || r.Source == SourceCgroupV2:
		s = fmt.Sprintf("quota %s <= affinity %d", r.Quota, r.Affinity)
	case r.Source == SourceLimit:
		s = fmt.Sprintf("no quota; limit %s <= affinity %d", newFraction(uint64(r.Limit), 1000), r.Affinity)
	case r.Source == SourceRequest:
		s = fmt.Sprintf("no quota; request %s <= affinity %d", newFraction(uint64(r.Request), 1000), r.Affinity)
	case r.Quota != nil:
		s = fmt.Sprintf("affinity %d < quota %s", r.Affinity, r.Quota)
	case r.Limit > 0:
		s = fmt.Sprintf("no quota; affinity %d < limit %s", r.Affinity, newFraction(uint64(r.Limit), 1000))
	case r.Request > 0:
		s = fmt.Sprintf("no quota; affinity %d < request %s", r.Affinity, newFraction(uint64(r.Request), 1000))
	default:
		s = fmt.Sprintf("no quota, no request: affinity %d", r.Affinity)
	}
	if r.Budget.Cmp(r.Available) != 0 {
		s += fmt.Sprintf("; %s minus reserve %s", r.Available, r.Reserve)
		if r.Budget.Cmp(Whole(1)) == 0 {
			s += ", not below 1"
		}
	}
	return s
}

func (r Result) cgroupWhat() string {
	if r.Cgroup == "" {
		return "cgroup, /proc/self/cgroup"
	}
	return fmt.Sprintf("cgroup v%d, /proc/self/cgroup", r.Version)
}

func (r Result) mountWhat() string {
	switch {
	case r.Guess:
		return "mount point, guessed"
	case r.MountPoint == "":
		return "mount point, /proc/self/mountinfo"
	}
	return fmt.Sprintf("mount point of cgroup %s, /proc/self/mountinfo", r.MountRoot)
}

func (r Result) dirWhat() string {
	if r.Guess {
		return "directory, guessed"
	}
	return "directory, mount point + cgroup - mount root"
}

func (r Result) reserveValue() string {
	if r.Reserve.IsZero() {
		return "-"
	}
	return cpus(r.Reserve)
}

func (r Result) quotaValue() string {
	if r.Quota == nil {
		return "-"
	}
	return cpus(*r.Quota)
}

func quoted(s string) string {
	if s == "" {
		return ""
	}
	return logValue(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
