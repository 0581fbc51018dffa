package memory

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// LogLine explains the budget in one line:
//
//	limit=256MiB source=cgroup-v1 dir=/sys/fs/cgroup/memory/pod memory.limit_in_bytes=268435456
//
// limit is the budget for people ("none" without one), dir where usage is
// read ("-" when no cgroup directory was found; quoted when it holds
// spaces or other unusual characters), and the last key the file of the
// smallest limit with what it holds: memory.max or memory.high for v2,
// memory.limit_in_bytes for v1, "-" when no cgroup limit decided (the key
// is then memory.limit_in_bytes under v1, memory.max otherwise). Only when
// they apply, HERD_MEMORY_LIMIT=256Mi (the setting) and guess=true (the
// directory was guessed) follow. Warnings are not part of the line; log
// them separately.
func (r Result) LogLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "limit=%s source=%s dir=%s %s=%s", r.limitValue(), r.Source, logValue(r.Dir), r.fileKey(), r.fileValue())
	if r.Setting > 0 {
		fmt.Fprintf(&b, " HERD_MEMORY_LIMIT=%s", FormatQuantity(r.Setting))
	}
	if r.Guess {
		b.WriteString(" guess=true")
	}
	return b.String()
}

func (r Result) limitValue() string {
	if r.Limit == 0 {
		return "none"
	}
	return Bytes(r.Limit)
}

func (r Result) fileKey() string {
	switch {
	case r.File != "":
		return r.File
	case r.Version == 1:
		return "memory.limit_in_bytes"
	}
	return "memory.max"
}

func (r Result) fileValue() string {
	for _, lv := range r.Levels {
		if lv.Smallest {
			return logValue(strings.TrimSpace(lv.Raw))
		}
	}
	return "-"
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
// input, every limit file read, the warnings and the notes.
func (r Result) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	p("DECISION")
	p("  limit\t%s\t%s", r.limitValue(), r.limitWhy())
	p("  source\t%s", r.Source)
	p("  directory\t%s\t%s", dash(quoted(r.Dir)), r.dirWhy())
	p("")
	p("INPUTS")
	p("  limit, HERD_MEMORY_LIMIT\t%s", bytesOrDash(r.Setting))
	p("  machine's memory, MemTotal of /proc/meminfo\t%s", bytesOrDash(r.MemTotal))
	p("  %s\t%s", r.cgroupWhat(), dash(r.Cgroup))
	p("  %s\t%s", r.mountWhat(), dash(quoted(r.MountPoint)))
	p("  %s\t%s", r.leafWhat(), dash(quoted(r.Leaf)))
	p("")
	p("LEVELS (leaf first, up to the mount point)")
	if len(r.Levels) == 0 {
		p("  none walked")
	}
	for i, lv := range r.Levels {
		if i == 0 || r.Levels[i-1].Dir != lv.Dir {
			p("  %s", quoted(lv.Dir))
		}
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

func (r Result) limitWhy() string {
	switch r.Source {
	case SourceCgroupV1, SourceCgroupV2:
		return fmt.Sprintf("%d bytes: the smallest cgroup limit, %s", r.Limit, r.File)
	case SourceLimit:
		return fmt.Sprintf("%d bytes: no cgroup limit; HERD_MEMORY_LIMIT", r.Limit)
	}
	return "no cgroup limit, and HERD_MEMORY_LIMIT is not set"
}

func (r Result) dirWhy() string {
	switch {
	case r.Dir == "":
		return "no cgroup directory: usage cannot be read"
	case r.Dir == r.Leaf && r.File == "":
		return "herd's own cgroup: usage is read here"
	}
	return "where the limit is: usage is read here"
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

func (r Result) leafWhat() string {
	if r.Guess {
		return "herd's directory, guessed"
	}
	return "herd's directory, mount point + cgroup - mount root"
}

func bytesOrDash(n int64) string {
	if n == 0 {
		return "-"
	}
	return Bytes(n)
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
