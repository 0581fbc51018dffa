package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is a FROM and what follows it.
type stage struct {
	from, name string
	platform   string // FROM --platform=..., as written
	instrs     []instruction
}

// parseDockerfile reads the instructions of a Dockerfile by stage, enough
// for the checks below: comments and blank lines dropped, lines ending in
// a backslash joined, instructions before the first FROM (ARG) dropped.
func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() error {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			var st stage
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				if v, ok := strings.CutPrefix(f[0], "--platform="); ok {
					st.platform = v
				}
				f = f[1:]
			}
			if len(f) == 0 {
				return fmt.Errorf("line %d: FROM without an image", in.line)
			}
			st.from = f[0]
			switch {
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.name = f[2]
			case len(f) != 1:
				// Docker refuses it: "FROM requires either one or three
				// arguments". A comment after it is one cause.
				return fmt.Errorf("line %d: FROM %s: want FROM IMAGE or FROM IMAGE AS NAME (a # starts a comment only at the start of a line)", in.line, in.args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		} else if in.cmd != "ARG" {
			return fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		}
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue // a comment, or a blank line inside a continuation
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("the last instruction ends in a backslash")
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// execForm parses a JSON-array (exec form) argument; ok is false for the
// shell form.
func execForm(args string) ([]string, bool) {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		return nil, false
	}
	return argv, true
}

// imageConfig is what the final stage sets, as an image's config holds it.
type imageConfig struct {
	entrypoint, cmd []string
	workdir         string
	env             []string // KEY=value, in order
	user            string
	copies          []copyInstr // COPY and ADD of the final stage
}

type copyInstr struct {
	from    string // --from, "" for the build context
	srcs    []string
	dest    string // as written: relative to workdir unless absolute
	workdir string // WORKDIR when the COPY ran
}

func finalConfig(stages []stage) imageConfig {
	var c imageConfig
	for _, in := range stages[len(stages)-1].instrs {
		switch in.cmd {
		case "ENTRYPOINT":
			c.entrypoint, _ = execForm(in.args)
			c.cmd = nil // setting ENTRYPOINT resets CMD
		case "CMD":
			c.cmd, _ = execForm(in.args)
		case "WORKDIR":
			if path.IsAbs(in.args) {
				c.workdir = path.Clean(in.args)
			} else {
				c.workdir = path.Join("/", c.workdir, in.args)
			}
		case "ENV":
			c.env = append(c.env, parseEnv(in.args)...)
		case "USER":
			c.user = in.args
		case "COPY", "ADD":
			var cp copyInstr
			var rest []string
			for _, f := range strings.Fields(in.args) {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					cp.from = v
				} else if !strings.HasPrefix(f, "--") {
					rest = append(rest, f)
				}
			}
			if len(rest) >= 2 {
				cp.srcs, cp.dest = rest[:len(rest)-1], rest[len(rest)-1]
			}
			cp.workdir = c.workdir
			c.copies = append(c.copies, cp)
		}
	}
	return c
}

// parseEnv reads ENV KEY=value KEY2=value2, or the older ENV KEY value.
func parseEnv(args string) []string {
	f := strings.Fields(args)
	if len(f) > 0 && !strings.Contains(f[0], "=") {
		return []string{f[0] + "=" + strings.TrimSpace(strings.TrimPrefix(args, f[0]))}
	}
	var out []string
	for _, kv := range f {
		k, v, _ := strings.Cut(kv, "=")
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		out = append(out, k+"="+v)
	}
	return out
}

var (
	staticBase = regexp.MustCompile(`^(scratch|gcr\.io/distroless/static[-a-z0-9]*(:[-a-z0-9.]+)?(@sha256:[0-9a-f]{64})?)$`)
	nonRootUID = regexp.MustCompile(`^([1-9][0-9]*|nonroot)(:([1-9][0-9]*|nonroot))?$`)
)

// dockerfileProblems checks what every herd Dockerfile must do: exec-form
// ENTRYPOINT and CMD, herd as the final stage's ENTRYPOINT, a non-root
// user. app adds what an application image must do: copy herd in from
// herd's image, end the ENTRYPOINT with "--" and repeat CMD after it.
// static says the final stage is an empty or distroless image, which
// needs a static build (CGO_ENABLED=0, -trimpath, -ldflags "-s -w";
// version the -X main.version of herd's own build), cross-compiled in a
// stage on the build machine's platform for the target's, without
// emulation.
func dockerfileProblems(text string, app, static, version bool) []string {
	stages, err := parseDockerfile(text)
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	for _, st := range stages {
		for _, in := range st.instrs {
			// In RUN the shell reads a # word as a comment; Docker does not.
			if in.cmd != "RUN" && slices.ContainsFunc(strings.Fields(in.args), func(w string) bool { return strings.HasPrefix(w, "#") }) {
				bad("line %d: %s %s: a # starts a comment only at the start of a line; here it is an argument", in.line, in.cmd, in.args)
			}
			if in.cmd == "ENTRYPOINT" || in.cmd == "CMD" {
				if _, ok := execForm(in.args); !ok {
					bad("line %d: %s %s is in shell form: /bin/sh -c would be PID 1 and take SIGTERM instead of herd", in.line, in.cmd, in.args)
				}
			}
		}
	}
	final := stages[len(stages)-1]
	c := finalConfig(stages)
	if len(c.entrypoint) == 0 || path.Base(c.entrypoint[0]) != "herd" {
		bad("the final stage's ENTRYPOINT %q does not start herd", c.entrypoint)
	}
	if !nonRootUID.MatchString(c.user) {
		bad("the final stage runs as %q: want a non-root USER such as 65532:65532", c.user)
	}
	if app {
		if len(c.entrypoint) < 2 || c.entrypoint[len(c.entrypoint)-1] != "--" {
			bad("ENTRYPOINT %q: end it with \"--\" so that any CMD runs as the workers", c.entrypoint)
		}
		if len(c.cmd) == 0 {
			bad("no CMD after ENTRYPOINT: setting ENTRYPOINT resets the base image's CMD, so repeat it")
		}
		copied := false
		for _, cp := range c.copies {
			if cp.from != "" && len(cp.srcs) == 1 && cp.srcs[0] == "/herd" && path.Base(cp.dest) == "herd" {
				copied = true
			}
		}
		if !copied {
			bad("no COPY --from=<herd's image> /herd .../herd in the final stage")
		}
	}
	if static {
		if !staticBase.MatchString(final.from) {
			bad("the final stage is FROM %s: want scratch or gcr.io/distroless/static", final.from)
		}
		if len(stages) < 2 {
			bad("a single stage: build in one stage, copy the binary into an empty one")
		}
		var builds []string
		for _, st := range stages[:len(stages)-1] {
			for _, in := range st.instrs {
				if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
					builds = append(builds, in.args)
					if st.platform != "$BUILDPLATFORM" && st.platform != "${BUILDPLATFORM}" {
						bad("line %d: go build in a stage FROM %s for the target's platform: want FROM --platform=$BUILDPLATFORM, to cross-compile without emulation", in.line, st.from)
					}
				}
			}
		}
		if len(builds) == 0 {
			bad("no RUN go build in a build stage")
		}
		for _, b := range builds {
			for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags"} {
				if !strings.Contains(b, flag) {
					bad("%q lacks %s: the binary must be static and reproducible", b, flag)
				}
			}
			for _, flag := range []string{"GOOS=$TARGETOS", "GOARCH=$TARGETARCH"} {
				if !strings.Contains(b, flag) {
					bad("%q lacks %s: the build stage runs on the build machine's platform", b, flag)
				}
			}
			ld := regexp.MustCompile(`-ldflags[= ]"([^"]*)"`).FindStringSubmatch(b)
			if ld == nil || !strings.Contains(" "+ld[1]+" ", " -s ") || !strings.Contains(" "+ld[1]+" ", " -w ") {
				bad("%q: want -ldflags \"-s -w ...\"", b)
			} else if version && !strings.Contains(ld[1], "-X main.version=") {
				bad("%q: want -X main.version=... in -ldflags", b)
			}
		}
	}
	return p
}

// The Dockerfiles, read offline (no image is built): herd's own, and one
// per example.
func TestDockerfiles(t *testing.T) {
	for _, c := range []struct {
		file                 string
		context              string // build context, for COPY sources
		app, static, version bool
	}{
		{"Dockerfile", ".", false, true, true},
		{"examples/node/Dockerfile", "examples/node", true, false, false},
		{"examples/python/Dockerfile", "examples/python", true, false, false},
		{"examples/goserver/Dockerfile", ".", true, true, false},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(repoRoot, c.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range dockerfileProblems(string(b), c.app, c.static, c.version) {
				t.Error(p)
			}
			// Every file copied from the build context exists there.
			stages, _ := parseDockerfile(string(b))
			for _, st := range stages {
				for _, in := range st.instrs {
					if in.cmd != "COPY" || strings.Contains(in.args, "--from") {
						continue
					}
					f := strings.Fields(in.args)
					for _, src := range f[:len(f)-1] {
						if _, err := os.Stat(filepath.Join(repoRoot, c.context, src)); err != nil {
							t.Errorf("line %d: COPY %s: not in the build context %s: %v", in.line, src, c.context, err)
						}
					}
				}
			}
			// The CMD an application image repeats names a file it copies.
			if cfg := finalConfig(stages); c.app && c.context != "." && len(cfg.cmd) > 1 {
				if _, err := os.Stat(filepath.Join(repoRoot, c.context, cfg.cmd[len(cfg.cmd)-1])); err != nil {
					t.Errorf("CMD %q: %v", cfg.cmd, err)
				}
			}
		})
	}
}

// readmeDockerfiles returns the fenced dockerfile blocks of a Markdown
// text, with the line each starts on.
func readmeDockerfiles(text string) (blocks []string, lines []int) {
	var cur []string
	in := false
	for i, l := range strings.Split(text, "\n") {
		switch {
		case !in && strings.TrimSpace(l) == "```dockerfile":
			in, cur = true, nil
			lines = append(lines, i+2)
		case in && strings.TrimSpace(l) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, l)
		}
	}
	return blocks, lines
}

// instructionText is a stage's instructions, one a line, comments dropped.
func instructionText(st stage) string {
	var b strings.Builder
	for _, in := range st.instrs {
		fmt.Fprintf(&b, "%s %s\n", in.cmd, in.args)
	}
	return b.String()
}

// The README's quick start is an application image: it passes the rules
// of the examples' Dockerfiles, its Node image is the Node example's, and
// the README says how to build the image it copies herd from.
func TestREADMEDockerfile(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, lines := readmeDockerfiles(string(readme))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```dockerfile block")
	}
	node, err := os.ReadFile(filepath.Join(repoRoot, "examples/node/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	nodeStages, err := parseDockerfile(string(node))
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		for _, p := range dockerfileProblems(b, true, false, false) {
			t.Errorf("README.md, the dockerfile block at line %d: %s", lines[i], p)
		}
		stages, err := parseDockerfile(b)
		if err != nil {
			continue // reported above
		}
		// The Node image the README shows is the example's.
		final, example := stages[len(stages)-1], nodeStages[len(nodeStages)-1]
		if strings.HasPrefix(final.from, "node:") {
			if final.from != example.from {
				t.Errorf("README.md, the dockerfile block at line %d: FROM %s, but examples/node/Dockerfile is FROM %s", lines[i], final.from, example.from)
			}
			if got, want := instructionText(final), instructionText(example); got != want {
				t.Errorf("README.md, the dockerfile block at line %d: its final stage is\n%s\nexamples/node/Dockerfile's is\n%s", lines[i], got, want)
			}
		}
		if stages[0].from == "herd" && !strings.Contains(string(readme), "docker build -t herd .") {
			t.Errorf("README.md, the dockerfile block at line %d copies herd from an image called herd, and the README never says docker build -t herd .", lines[i])
		}
	}
}

// The checks fail on what they are meant to catch.
func TestDockerfileProblems(t *testing.T) {
	const good = `FROM herd AS herd
FROM node:22-slim
COPY --from=herd /herd /usr/local/bin/herd
USER 65532:65532
ENTRYPOINT ["herd", "--"]
CMD ["node", "server.js"]
`
	if p := dockerfileProblems(good, true, false, false); len(p) != 0 {
		t.Fatalf("a good Dockerfile: %q", p)
	}
	for _, c := range []struct {
		name, text string
		app        bool
		want       string
	}{
		{"shell-form ENTRYPOINT", strings.Replace(good, `ENTRYPOINT ["herd", "--"]`, "ENTRYPOINT herd --", 1), true, "shell form"},
		{"shell-form CMD", strings.Replace(good, `CMD ["node", "server.js"]`, "CMD node server.js", 1), true, "shell form"},
		{"CMD not repeated", strings.Replace(good, `CMD ["node", "server.js"]`, "", 1), true, "no CMD after ENTRYPOINT"},
		{"CMD only before ENTRYPOINT", strings.Replace(strings.Replace(good, `CMD ["node", "server.js"]`, "", 1), "USER 65532:65532\n", "USER 65532:65532\nCMD [\"node\", \"server.js\"]\n", 1), true, "no CMD after ENTRYPOINT"},
		{"root", strings.Replace(good, "USER 65532:65532", "USER root", 1), true, "non-root USER"},
		{"uid 0", strings.Replace(good, "USER 65532:65532", "USER 0:0", 1), true, "non-root USER"},
		{"no USER", strings.Replace(good, "USER 65532:65532\n", "", 1), true, "non-root USER"},
		{"no herd copied", strings.Replace(good, "COPY --from=herd /herd /usr/local/bin/herd\n", "", 1), true, "COPY --from"},
		{"no --", strings.Replace(good, `["herd", "--"]`, `["herd"]`, 1), true, `end it with "--"`},
		{"not herd", strings.Replace(good, `["herd", "--"]`, `["tini", "--"]`, 1), true, "does not start herd"},
		{"comment after FROM", strings.Replace(good, "FROM herd AS herd", "FROM herd AS herd   # built from herd's Dockerfile", 1), true, "a # starts a comment only at the start of a line"},
		{"comment after COPY", strings.Replace(good, "/usr/local/bin/herd", "/usr/local/bin/herd # herd", 1), true, "a # starts a comment only at the start of a line"},
		{"FROM with extra words", strings.Replace(good, "FROM herd AS herd", "FROM herd herd", 1), true, "want FROM IMAGE or FROM IMAGE AS NAME"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := strings.Join(dockerfileProblems(c.text, c.app, false, false), "\n")
			if !strings.Contains(p, c.want) {
				t.Errorf("problems %q lack %q", p, c.want)
			}
		})
	}

	const herd = `ARG GO=1.26
FROM --platform=$BUILDPLATFORM golang:${GO} AS build
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /herd .
FROM scratch
COPY --from=build /herd /herd
USER 65532:65532
ENTRYPOINT ["/herd"]
`
	if p := dockerfileProblems(herd, false, true, true); len(p) != 0 {
		t.Fatalf("a good static build: %q", p)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"cgo", "CGO_ENABLED=0 ", "", "lacks CGO_ENABLED=0"},
		{"no trimpath", "-trimpath ", "", "lacks -trimpath"},
		{"symbols kept", `"-s -w -X`, `"-X`, `want -ldflags "-s -w ..."`},
		{"no version", ` -X main.version=${VERSION}`, "", "-X main.version"},
		{"a base with a libc", "FROM scratch", "FROM debian:12", "want scratch or gcr.io/distroless/static"},
		{"a continuation", `go build -trimpath`, "go build \\\n  -trimpath", ""},
		{"emulated", "FROM --platform=$BUILDPLATFORM golang", "FROM golang", "want FROM --platform=$BUILDPLATFORM"},
		{"for the build machine", "GOOS=$TARGETOS GOARCH=$TARGETARCH ", "", "lacks GOOS=$TARGETOS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(herd, c.from, c.to, 1)
			if text == herd {
				t.Fatalf("%q not in the Dockerfile", c.from)
			}
			p := strings.Join(dockerfileProblems(text, false, true, true), "\n")
			if c.want == "" && p != "" || !strings.Contains(p, c.want) {
				t.Errorf("problems %q, want %q", p, c.want)
			}
		})
	}
}
