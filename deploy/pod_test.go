package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The kubelet's conversions, from Kubernetes' pkg/kubelet/cm
// (MilliCPUToQuota, MilliCPUToShares) and the CFS period it uses.
const (
	cfsPeriod    = 100000 // µs
	minQuota     = 1000   // µs
	minShares    = 2
	sharesPerCPU = 1024
)

// podSpec is what the kubelet and the container runtime make of the
// chart's pod template and the image's config: the process, its user, its
// environment, its mounts and its cgroup limits.
type podSpec struct {
	argv, env  []string
	cwd        string
	uid, gid   uint32
	noNewPrivs bool
	readOnly   bool
	quota      int64 // µs per cfsPeriod; 0: no CPU limit
	shares     uint64
	memory     int64 // bytes; 0: no limit
	limitMilli int64 // the CPU limit in millicores; 0: none
	volumes    []volumeMount
	grace      time.Duration
	listen     int // the port of HERD_LISTEN
	health     int // the port the probes use
	probes     map[string]*corev1.Probe
}

type volumeMount struct {
	path     string
	readOnly bool
	emptyDir bool
}

// containerArgv applies Kubernetes' rule: command replaces the image's
// ENTRYPOINT (and drops its CMD), args replaces its CMD.
func containerArgv(img imageConfig, c corev1.Container) []string {
	switch {
	case len(c.Command) > 0:
		return slices.Concat(c.Command, c.Args)
	case len(c.Args) > 0:
		return slices.Concat(img.entrypoint, c.Args)
	}
	return slices.Concat(img.entrypoint, img.cmd)
}

// cpuQuantity is the container's CPU request or limit as the Downward API
// sees it: a missing limit is the node's allocatable CPU, a missing
// request is the limit (the API server's defaulting) or else zero.
func cpuQuantity(c corev1.Container, res string, allocatable resource.Quantity) resource.Quantity {
	limit, hasLimit := c.Resources.Limits[corev1.ResourceCPU]
	switch res {
	case "limits.cpu":
		if hasLimit {
			return limit
		}
		return allocatable
	case "requests.cpu":
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			return q
		}
		if hasLimit {
			return limit
		}
	}
	return resource.Quantity{}
}

// nodeMemory is the node's allocatable memory, which the Downward API
// reports as limits.memory for a container without a memory limit.
var nodeMemory = resource.MustParse("16Gi")

// memoryQuantity is the container's memory request or limit as the
// Downward API sees it, as cpuQuantity is for CPU.
func memoryQuantity(c corev1.Container, res string) resource.Quantity {
	limit, hasLimit := c.Resources.Limits[corev1.ResourceMemory]
	switch res {
	case "limits.memory":
		if hasLimit {
			return limit
		}
		return nodeMemory
	case "requests.memory":
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			return q
		}
		if hasLimit {
			return limit
		}
	}
	return resource.Quantity{}
}

// resolveResource is the value the kubelet gives a resourceFieldRef: the
// quantity in units of the divisor, rounded up (CPU in millicores first,
// memory in bytes).
func resolveResource(c corev1.Container, name string, ref *corev1.ResourceFieldSelector, allocatable resource.Quantity) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("%s: resourceFieldRef names container %q, not %q", name, ref.ContainerName, c.Name)
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	switch ref.Resource {
	case "requests.cpu", "limits.cpu":
		q := cpuQuantity(c, ref.Resource, allocatable)
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(div.MilliValue()))), 10), nil
	case "requests.memory", "limits.memory":
		q := memoryQuantity(c, ref.Resource)
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(div.Value()))), 10), nil
	}
	return "", fmt.Errorf("%s: resource %s is not resolved here", name, ref.Resource)
}

// containerEnv is the image's ENV, then the container's env with the
// Downward API resolved as the kubelet resolves it (CPU and memory in
// units of the divisor, rounded up) and $(NAME) expanded from the
// container's variables defined before it, then what the kubelet adds to
// every container.
func containerEnv(img imageConfig, c corev1.Container, pod string, allocatable resource.Quantity) ([]string, error) {
	env := slices.Clone(img.env)
	defined := map[string]string{} // the container's own, so far
	set := func(k, v string) {
		defined[k] = v
		for i, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				env[i] = k + "=" + v
				return
			}
		}
		env = append(env, k+"="+v)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expandRefs(e.Value, defined))
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := resolveResource(c, e.Name, e.ValueFrom.ResourceFieldRef, allocatable)
			if err != nil {
				return nil, err
			}
			set(e.Name, v)
		default:
			return nil, fmt.Errorf("%s: valueFrom %+v is not resolved here", e.Name, e.ValueFrom)
		}
	}
	set("HOSTNAME", pod)
	set("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	set("KUBERNETES_SERVICE_PORT", "443")
	return env, nil
}

// expandRefs expands $(NAME) in v as the kubelet does: from the variables
// in defined, "$$" stands for "$", and a reference to a name not defined
// stays as written.
func expandRefs(v string, defined map[string]string) string {
	var b strings.Builder
	for len(v) > 0 {
		i := strings.IndexByte(v, '$')
		if i < 0 || i == len(v)-1 {
			b.WriteString(v)
			break
		}
		b.WriteString(v[:i])
		switch v[i+1] {
		case '$':
			b.WriteByte('$')
			v = v[i+2:]
			continue
		case '(':
			if j := strings.IndexByte(v[i+2:], ')'); j >= 0 {
				name := v[i+2 : i+2+j]
				if val, ok := defined[name]; ok {
					b.WriteString(val)
				} else {
					b.WriteString(v[i : i+3+j])
				}
				v = v[i+3+j:]
				continue
			}
		}
		b.WriteByte('$')
		v = v[i+1:]
	}
	return b.String()
}

// envValue returns the value of k in env.
func envValue(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// addrPort is the port of a herd address such as ":8080" or
// "tcp://0.0.0.0:8080" (the first of a list).
func addrPort(addr string) (int, error) {
	first := strings.Split(addr, ",")[0]
	i := strings.LastIndex(first, ":")
	if i < 0 {
		return 0, fmt.Errorf("%q has no port", addr)
	}
	return strconv.Atoi(first[i+1:])
}

// makePodSpec derives the process from the rendered Deployment and the
// image.
func makePodSpec(r *release, img imageConfig, pod string, allocatable resource.Quantity) (podSpec, error) {
	tmpl := r.deployment.Spec.Template.Spec
	if len(tmpl.Containers) != 1 {
		return podSpec{}, fmt.Errorf("%d containers", len(tmpl.Containers))
	}
	c := tmpl.Containers[0]
	s := podSpec{argv: containerArgv(img, c), cwd: img.workdir, probes: map[string]*corev1.Probe{
		"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe,
	}}
	if c.WorkingDir != "" {
		s.cwd = c.WorkingDir
	}
	var err error
	if s.env, err = containerEnv(img, c, pod, allocatable); err != nil {
		return s, err
	}

	// The user: the container's securityContext, then the pod's, then the
	// image's USER.
	uid, gid := -1, -1
	if u, g, ok := strings.Cut(img.user, ":"); u != "" {
		uid, _ = strconv.Atoi(u)
		if ok {
			gid, _ = strconv.Atoi(g)
		}
	}
	for _, sc := range []*corev1.PodSecurityContext{tmpl.SecurityContext} {
		if sc != nil && sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc != nil && sc.RunAsGroup != nil {
			gid = int(*sc.RunAsGroup)
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = int(*sc.RunAsGroup)
		}
		s.noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		s.readOnly = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			return s, fmt.Errorf("capabilities %+v: only drop [ALL] is run here", sc.Capabilities)
		}
	}
	if uid <= 0 || gid < 0 {
		return s, fmt.Errorf("user %d:%d: runAsNonRoot would refuse to start it", uid, gid)
	}
	s.uid, s.gid = uint32(uid), uint32(gid)

	// CPU and memory, as the kubelet writes them into the cgroup.
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		s.limitMilli = q.MilliValue()
		s.quota = max(s.limitMilli*cfsPeriod/1000, minQuota)
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		s.shares = uint64(max(q.MilliValue()*sharesPerCPU/1000, minShares))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		s.memory = q.Value()
	}

	vols := map[string]corev1.Volume{}
	for _, v := range tmpl.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.EmptyDir == nil {
			return s, fmt.Errorf("volume %s at %s: only emptyDir volumes are run here", m.Name, m.MountPath)
		}
		s.volumes = append(s.volumes, volumeMount{path: m.MountPath, readOnly: m.ReadOnly, emptyDir: true})
	}

	if tmpl.TerminationGracePeriodSeconds == nil {
		return s, fmt.Errorf("no terminationGracePeriodSeconds")
	}
	s.grace = time.Duration(*tmpl.TerminationGracePeriodSeconds) * time.Second
	if s.listen, err = addrPort(envValue(s.env, "HERD_LISTEN")); err != nil {
		return s, fmt.Errorf("HERD_LISTEN: %w", err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, p := range s.probes {
		if p == nil || p.HTTPGet == nil {
			return s, fmt.Errorf("%s probe %+v: want an HTTP GET", name, p)
		}
		port := int(resolvePort(p.HTTPGet.Port, ports))
		if s.health != 0 && port != s.health {
			return s, fmt.Errorf("probes on ports %d and %d", s.health, port)
		}
		s.health = port
	}
	return s, nil
}

// sharedLibraries lists the files the dynamic loader maps for exe, as
// ldd prints them (the vDSO has no file).
func sharedLibraries(t *testing.T, exe string) []string {
	t.Helper()
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", exe, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0]) // the loader itself
		}
	}
	return libs
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// prober runs the pod's probes as the kubelet does: the startup probe
// every period until it passes (failureThreshold failures in a row would
// restart the container), then readiness and liveness, each on its own
// period.
type prober struct {
	client *http.Client
	base   string
	mu     sync.Mutex
	events []probeEvent
	stop   chan struct{}
	wg     sync.WaitGroup
}

type probeEvent struct {
	kind string
	at   time.Time
	ok   bool
	info string
}

// probeOnce is one HTTP probe: success is a status from 200 to 399.
func (p *prober) probeOnce(pr *corev1.Probe) (bool, string) {
	req, _ := http.NewRequest(http.MethodGet, p.base+pr.HTTPGet.Path, nil)
	req.Header.Set("User-Agent", "kube-probe/"+kubeVersion)
	c := *p.client
	c.Timeout = time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

func (p *prober) record(kind string, ok bool, info string) {
	p.mu.Lock()
	p.events = append(p.events, probeEvent{kind, time.Now(), ok, info})
	p.mu.Unlock()
}

func (p *prober) run(probes map[string]*corev1.Probe, started chan<- error) {
	period := func(pr *corev1.Probe) time.Duration { return time.Duration(max(pr.PeriodSeconds, 1)) * time.Second }
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		st := probes["startup"]
		failures := int32(0)
		for {
			ok, info := p.probeOnce(st)
			p.record("startup", ok, info)
			if ok {
				break
			}
			if failures++; failures >= max(st.FailureThreshold, 1) {
				started <- fmt.Errorf("startup probe failed %d times (last: %s): the kubelet would restart the container", failures, info)
				return
			}
			select {
			case <-p.stop:
				started <- fmt.Errorf("stopped before the startup probe passed")
				return
			case <-time.After(period(st)):
			}
		}
		started <- nil
		for _, kind := range []string{"readiness", "liveness"} {
			pr := probes[kind]
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				for {
					ok, info := p.probeOnce(pr)
					p.record(kind, ok, info)
					select {
					case <-p.stop:
						return
					case <-time.After(period(pr)):
					}
				}
			}()
		}
	}()
}

func (p *prober) snapshot() []probeEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// writeBundle writes runc's bundle for the pod into a new directory: the
// root file system from the image's COPY instructions (herd's static
// binary, the example's files), binds for the host's Node and its
// libraries where the base image has them, for the termination message
// file and the emptyDirs, and config.json: runc's default spec edited as
// the runtime does for this container, with cgroup id. It returns the
// bundle and the termination message file.
func writeBundle(t *testing.T, spec podSpec, img imageConfig, context, herd, node, podName, id string) (bundle, termLog string) {
	t.Helper()
	runc := requireTool(t, "runc")
	bundle = t.TempDir()
	// The root file system, from the Dockerfile's COPY instructions.
	rootfs := filepath.Join(bundle, "rootfs")
	for _, cp := range img.copies {
		for _, src := range cp.srcs {
			dest := cp.dest
			if !path.IsAbs(dest) {
				dest = path.Join("/", cp.workdir, dest)
			}
			if strings.HasSuffix(cp.dest, "/") || cp.dest == "." || cp.dest == "./" {
				dest = path.Join(dest, path.Base(src))
			}
			switch {
			case cp.from != "" && src == "/herd":
				copyFile(t, herd, filepath.Join(rootfs, dest), 0o755)
			case cp.from == "":
				copyFile(t, filepath.Join(context, src), filepath.Join(rootfs, dest), 0o644)
			default:
				t.Fatalf("COPY --from=%s %s: not built here", cp.from, src)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(rootfs, spec.cwd), 0o755); err != nil {
		t.Fatal(err)
	}

	// Node from the host, where the base image has it, read-only, with
	// its libraries and the loader's cache.
	type bind struct {
		src, dst string
		ro       bool
	}
	binds := []bind{{node, "/usr/local/bin/node", true}, {"/etc/ld.so.cache", "/etc/ld.so.cache", true}}
	for _, lib := range sharedLibraries(t, node) {
		binds = append(binds, bind{lib, lib, true})
	}
	// What the kubelet mounts: the termination message file and emptyDirs.
	termLog = filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(termLog, 0o666); err != nil {
		t.Fatal(err)
	}
	binds = append(binds, bind{termLog, "/dev/termination-log", false})
	for _, v := range spec.volumes {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, bind{dir, v.path, v.readOnly})
	}
	for _, b := range binds {
		st, err := os.Stat(b.src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(rootfs, b.dst)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if st.IsDir() {
			err = os.MkdirAll(target, 0o755)
		} else if _, err = os.Stat(target); os.IsNotExist(err) {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}

	// config.json: runc's default spec, edited as the runtime would for
	// this container.
	if out, err := (&exec.Cmd{Path: runc, Args: []string{runc, "spec"}, Dir: bundle}).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	editJSON(t, filepath.Join(bundle, "config.json"), func(c map[string]any) {
		proc := c["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = spec.argv
		proc["env"] = spec.env
		proc["cwd"] = spec.cwd
		proc["user"] = map[string]any{"uid": spec.uid, "gid": spec.gid}
		proc["noNewPrivileges"] = spec.noNewPrivs
		// drop: [ALL]
		proc["capabilities"] = map[string]any{"bounding": []string{}, "effective": []string{}, "permitted": []string{}, "inheritable": []string{}, "ambient": []string{}}
		c["hostname"] = podName
		c["root"].(map[string]any)["readonly"] = spec.readOnly
		mounts := c["mounts"].([]any)
		for _, b := range binds {
			opts := []string{"rbind", "nosuid", "nodev"}
			if b.ro {
				opts = append(opts, "ro")
			}
			mounts = append(mounts, map[string]any{"destination": b.dst, "type": "bind", "source": b.src, "options": opts})
		}
		c["mounts"] = mounts
		linux := c["linux"].(map[string]any)
		res := map[string]any{"cpu": map[string]any{"quota": spec.quota, "period": cfsPeriod, "shares": spec.shares}}
		if spec.memory > 0 {
			res["memory"] = map[string]any{"limit": spec.memory}
		}
		linux["resources"] = res
		// The kubelet on cgroup v1 gives containers no cgroup namespace;
		// the network namespace stays: the pod's own, with lo up.
		var ns []any
		for _, n := range linux["namespaces"].([]any) {
			if n.(map[string]any)["type"] != "cgroup" {
				ns = append(ns, n)
			}
		}
		linux["namespaces"] = ns
		linux["cgroupsPath"] = "/" + id
	})

	return bundle, termLog
}

// The chart's pod, run for real: the container spec the chart renders for
// the Node example (command, args, env with the Downward API resolved as
// the kubelet resolves it, security context, emptyDir, CPU limit turned
// into a CFS quota) over a root file system built from the example's
// Dockerfile (herd's static binary, server.js, and the host's Node
// bind-mounted read-only with its libraries), under runc, probed and
// stopped as the kubelet does it.
func TestPodUnderRunc(t *testing.T) {
	requireRoot(t)
	runc := requireTool(t, "runc")
	node, err := filepath.EvalSymlinks(requireTool(t, "node"))
	if err != nil {
		t.Fatal(err)
	}
	herd := goBuild(t, ".")
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	affinity := set.Count()

	// The rendered chart and the image.
	r := renderRelease(t, "-f", filepath.Join("testdata", "values", "pod.yaml"))
	df, err := os.ReadFile(filepath.Join(repoRoot, "examples", "node", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(string(df))
	if err != nil {
		t.Fatal(err)
	}
	img := finalConfig(stages)
	if !slices.ContainsFunc(img.env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		// The base image (node:22-slim) sets PATH.
		img.env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, img.env...)
	}
	podName := fmt.Sprintf("web-herd-%d", os.Getpid())
	allocatable := *resource.NewMilliQuantity(int64(runtime.NumCPU())*1000, resource.DecimalSI)
	spec, err := makePodSpec(r, img, podName, allocatable)
	if err != nil {
		t.Fatal(err)
	}
	if spec.limitMilli == 0 {
		t.Fatal("the rendered container has no CPU limit")
	}
	if got := envValue(spec.env, "HERD_CPU_LIMIT"); got != strconv.FormatInt(spec.limitMilli, 10)+"m" {
		t.Fatalf("HERD_CPU_LIMIT=%q, want the limit in millicores, %dm", got, spec.limitMilli)
	}
	// docs/workers.md: round-nearest(min(affinity, limit)), halves up, at least 1.
	want := affinity
	if int64(affinity)*1000 > spec.limitMilli {
		want = max(int((2*spec.limitMilli+1000)/2000), 1)
	}
	t.Logf("argv %q, limit %dm, quota %d/%d, affinity %d: expecting %d workers", spec.argv, spec.limitMilli, spec.quota, cfsPeriod, affinity, want)

	id := fmt.Sprintf("herd-pod-%d-%d", os.Getpid(), time.Now().UnixNano())
	bundle, termLog := writeBundle(t, spec, img, filepath.Join(repoRoot, "examples", "node"), herd, node, podName, id)

	state := t.TempDir()
	runcCmd := func(args ...string) *exec.Cmd {
		return exec.Command(runc, append([]string{"--root", state}, args...)...)
	}
	cmd := runcCmd("run", "--bundle", bundle, id)
	logs := &logBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = runcCmd("kill", id, "KILL").Run()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		_ = runcCmd("delete", "-f", id).Run()
		if t.Failed() {
			t.Logf("container output:\n%s", logs)
		}
	})

	// The container's init (herd, PID 1 inside) and so its network
	// namespace.
	pid := 0
	for deadline := time.Now().Add(20 * time.Second); pid == 0; {
		out, err := runcCmd("state", id).Output()
		var st struct {
			Pid    int    `json:"pid"`
			Status string `json:"status"`
		}
		if err == nil && json.Unmarshal(out, &st) == nil && st.Status == "running" {
			pid = st.Pid
			break
		}
		select {
		case <-exited:
			t.Fatal("runc run ended before the container ran")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("container not running after 20 s: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := netnsClient(pid, 5*time.Second)
	app := fmt.Sprintf("http://127.0.0.1:%d/", spec.listen)

	// Startup, then readiness and liveness.
	pr := &prober{client: client, base: fmt.Sprintf("http://127.0.0.1:%d", spec.health), stop: make(chan struct{})}
	started := make(chan error, 1)
	pr.run(spec.probes, started)
	defer func() {
		close(pr.stop)
		pr.wg.Wait()
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-exited:
		t.Fatal("the container exited before the startup probe passed")
	}
	readyBy := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(pr.snapshot(), func(e probeEvent) bool { return e.kind == "readiness" && e.ok }) {
		if time.Now().After(readyBy) {
			t.Fatalf("not ready 30 s after startup: %+v", pr.snapshot())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The worker count follows the rendered CPU limit, through the quota.
	budget := logs.records("cpu budget: workers=")
	if len(budget) != 1 {
		t.Fatalf("%d cpu budget lines, want 1", len(budget))
	}
	kv := keyValues(budget[0]["msg"].(string))
	if kv["workers"] != strconv.Itoa(want) || !strings.HasPrefix(kv["source"], "cgroup-") || kv["limit"] != fmt.Sprintf("%dm", spec.limitMilli) {
		t.Errorf("cpu budget %q: want workers=%d from the container's cgroup quota, limit=%dm", budget[0]["msg"], want, spec.limitMilli)
	}
	for _, w := range logs.records("cpu budget: ") {
		if m := w["msg"].(string); strings.Contains(m, "HERD_CPU_LIMIT") {
			t.Errorf("warning %q: the Downward API limit and the quota the kubelet set disagree", m)
		}
	}
	checkMemoryBudget(t, logs, spec.memory)
	workers := logs.workerPids()
	if len(workers) != want {
		t.Errorf("herd started workers %v, want %d", workers, want)
	}

	// Traffic: every worker answers.
	seen := map[int]int{}
	for i := 0; i < 400 && len(seen) < want; i++ {
		resp, err := client.Get(app)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		p, err := answerPid(resp)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[p]++
	}
	for p := range workers {
		if seen[p] == 0 {
			t.Errorf("worker %d served nothing (answers by pid: %v)", p, seen)
		}
	}

	// The stop, as the kubelet does it, under steady traffic. The load
	// stands for the Service: it stops sending new requests a second
	// after readiness fails (the endpoints' removal), which is well
	// within herd's shutdown delay.
	var (
		loadStop            atomic.Bool
		served, failed      atomic.Int64
		servedAfterNotReady atomic.Int64
		notReadyAt          atomic.Pointer[time.Time]
		firstFailure        atomic.Pointer[string]
		loadWG              sync.WaitGroup
	)
	for range 4 {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for !loadStop.Load() {
				resp, err := client.Get(app)
				if err == nil {
					_, err = answerPid(resp)
				}
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstFailure.CompareAndSwap(nil, &msg)
					continue
				}
				served.Add(1)
				if notReadyAt.Load() != nil {
					servedAfterNotReady.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	termAt := time.Now()
	if out, err := runcCmd("kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill TERM: %v: %s", err, out)
	}
	// Readiness, watched more closely than the kubelet's period.
	var readyAfterFail bool
	for deadline := termAt.Add(spec.grace); ; {
		resp, err := client.Get(pr.base + "/readyz")
		now := time.Now()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK && notReadyAt.Load() == nil {
				notReadyAt.Store(&now)
			} else if resp.StatusCode == http.StatusOK && notReadyAt.Load() != nil {
				readyAfterFail = true
			}
		}
		if at := notReadyAt.Load(); at != nil && now.Sub(*at) > time.Second {
			break
		}
		if err != nil || now.After(deadline) {
			t.Errorf("/readyz after SIGTERM: %v; not ready since %v", err, notReadyAt.Load())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	loadStop.Store(true)
	loadWG.Wait()
	delay, _ := time.ParseDuration(envValue(spec.env, "HERD_SHUTDOWN_DELAY"))
	switch at := notReadyAt.Load(); {
	case at == nil:
		t.Errorf("readiness never failed after SIGTERM")
	case at.Sub(termAt) >= delay:
		t.Errorf("readiness failed %v after SIGTERM, not before the shutdown delay (%v) ended", at.Sub(termAt), delay)
	}
	if readyAfterFail {
		t.Errorf("/readyz passed again after it had failed")
	}
	if servedAfterNotReady.Load() == 0 {
		t.Errorf("no request served after readiness failed: herd must keep serving for HERD_SHUTDOWN_DELAY (%v)", delay)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the stop; first: %s", n, n+served.Load(), *firstFailure.Load())
	}
	t.Logf("during the stop: %d requests served, %d after readiness failed", served.Load(), servedAfterNotReady.Load())

	// The grace period, then SIGKILL, as the kubelet does.
	select {
	case <-exited:
	case <-time.After(time.Until(termAt.Add(spec.grace))):
		_ = runcCmd("kill", id, "KILL").Run()
		<-exited
		t.Fatalf("herd still running when the grace period (%v) ended: SIGKILLed", spec.grace)
	}
	took := time.Since(termAt)
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("the container ended with %v, want exit code 0", cmd.ProcessState)
	}
	t.Logf("herd exited %v after SIGTERM (grace period %v)", took.Round(time.Millisecond), spec.grace)
	msg, err := os.ReadFile(termLog)
	if err != nil || !strings.HasPrefix(string(msg), "herd exited 0") {
		t.Errorf("termination message %q (%v), want it to start with \"herd exited 0\"", msg, err)
	}
	for _, e := range pr.snapshot() {
		if e.kind == "liveness" && !e.ok && e.at.Before(termAt) {
			t.Errorf("liveness failed before the stop: %+v", e)
		}
	}
}

// editJSON rewrites a JSON file through f.
func editJSON(t *testing.T, file string, f func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	f(c)
	if b, err = json.MarshalIndent(c, "", "\t"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkMemoryBudget: herd's memory budget is the container's memory limit,
// read from the cgroup the runtime limited, and HERD_MEMORY_LIMIT, from
// the Downward API, agrees with it: no warning.
func checkMemoryBudget(t *testing.T, logs *logBuf, limit int64) {
	t.Helper()
	budget := logs.records("memory budget: limit=")
	if len(budget) != 1 {
		t.Fatalf("%d memory budget lines, want 1", len(budget))
	}
	msg := budget[0]["msg"].(string)
	kv := keyValues(msg)
	bytes := strconv.FormatInt(limit, 10)
	if !strings.HasPrefix(kv["source"], "cgroup-") || (kv["memory.max"] != bytes && kv["memory.limit_in_bytes"] != bytes) || kv["HERD_MEMORY_LIMIT"] == "" {
		t.Errorf("memory budget %q: want the container's cgroup limit, %s bytes, and HERD_MEMORY_LIMIT", msg, bytes)
	}
	for _, w := range logs.records("memory budget: ") {
		if m := w["msg"].(string); strings.Contains(m, "HERD_MEMORY_LIMIT is") {
			t.Errorf("warning %q: the Downward API limit and the cgroup limit the runtime set disagree", m)
		}
	}
}
