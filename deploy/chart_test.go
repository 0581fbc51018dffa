package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// want is what a value set must render to.
type want struct {
	policy       string
	workers      string
	listenPort   int32
	healthPort   int32
	cpuLimit     bool // HERD_CPU_LIMIT passed (resources.limits.cpu set)
	memoryLimit  bool // HERD_MEMORY_LIMIT passed (resources.limits.memory set)
	replicas     *int32
	grace        int64
	pdb, hpa     bool
	monitor      bool
	config       bool
	args         []string
	servicePort  int32
	shutdownSecs [2]int // HERD_SHUTDOWN_DELAY, HERD_SHUTDOWN_TIMEOUT
}

func ptr[T any](v T) *T { return &v }

// P1: the chart renders, for the default values and for representative
// value sets, into objects that strict-decode into the Kubernetes API
// types and say what herd needs.
func TestChartValueSets(t *testing.T) {
	base := want{policy: "rr", workers: "auto", listenPort: 8080, healthPort: 9090, cpuLimit: true, memoryLimit: true,
		replicas: ptr[int32](1), grace: 30, servicePort: 80, shutdownSecs: [2]int{5, 20}}
	for _, c := range []struct {
		name string
		file string // under testdata/values; "" for the defaults
		want func(w *want)
	}{
		{"defaults", "", func(w *want) {}},
		{"requests without limits", "requests-only.yaml", func(w *want) { w.cpuLimit, w.memoryLimit = false, false }},
		{"policy none", "policy-none.yaml", func(w *want) {
			w.policy, w.listenPort, w.healthPort, w.servicePort = "none", 8000, 8081, 8000
			w.args = []string{"python3", "server.py"}
		}},
		{"PDB and HPA", "pdb-hpa.yaml", func(w *want) { w.pdb, w.hpa, w.replicas = true, true, nil }},
		{"ServiceMonitor and HERD_CONFIG", "monitoring-config.yaml", func(w *want) {
			w.monitor, w.config, w.workers, w.grace, w.shutdownSecs = true, true, "3", 55, [2]int{10, 40}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := base
			c.want(&w)
			var args []string
			if c.file != "" {
				args = []string{"-f", filepath.Join("testdata", "values", c.file)}
			}
			checkRelease(t, renderRelease(t, args...), w)
		})
	}
}

func checkRelease(t *testing.T, r *release, w want) {
	t.Helper()
	if r.deployment == nil || r.service == nil || r.serviceAccount == nil || r.testPod == nil {
		t.Fatalf("missing objects: deployment %v, service %v, service account %v, test pod %v",
			r.deployment != nil, r.service != nil, r.serviceAccount != nil, r.testPod != nil)
	}
	d := r.deployment
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := envMap(c.Env)

	// Service links would put HERD_PORT and friends into the container.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks = %v, want false", pod.EnableServiceLinks)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken = %v, want false", pod.AutomountServiceAccountToken)
	}
	checkSecurity(t, pod, c)

	// herd's settings.
	for name, value := range map[string]string{
		"HERD_SCHED_POLICY":     w.policy,
		"HERD_WORKERS":          w.workers,
		"HERD_HEALTH_ADDR":      ":" + strconv.Itoa(int(w.healthPort)),
		"HERD_SHUTDOWN_DELAY":   strconv.Itoa(w.shutdownSecs[0]) + "s",
		"HERD_SHUTDOWN_TIMEOUT": strconv.Itoa(w.shutdownSecs[1]) + "s",
	} {
		if got := env[name]; got == nil || got.Value != value || got.ValueFrom != nil {
			t.Errorf("%s = %+v, want %q", name, got, value)
		}
	}
	if l := env["HERD_LISTEN"]; l == nil || !strings.HasSuffix(strings.Split(l.Value, ",")[0], ":"+strconv.Itoa(int(w.listenPort))) {
		t.Errorf("HERD_LISTEN = %+v, want an address on port %d", l, w.listenPort)
	}
	for name := range env {
		if name == "HERD_PORT" || strings.HasPrefix(name, "HERD_PORT_") || strings.HasPrefix(name, "HERD_SERVICE_") {
			t.Errorf("%s: a name Kubernetes injects for a Service called herd", name)
		}
	}

	// The CPU request and limit through the Downward API, in millicores.
	checkResourceRef(t, env, "HERD_CPU_REQUEST", c.Name, "requests.cpu")
	if w.cpuLimit {
		checkResourceRef(t, env, "HERD_CPU_LIMIT", c.Name, "limits.cpu")
		if _, ok := c.Resources.Limits[corev1.ResourceCPU]; !ok {
			t.Errorf("HERD_CPU_LIMIT passed, but the container has no CPU limit")
		}
	} else {
		if e := env["HERD_CPU_LIMIT"]; e != nil {
			t.Errorf("HERD_CPU_LIMIT = %+v without a CPU limit: the Downward API would report the node's allocatable CPU", e)
		}
		if _, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			t.Errorf("a CPU limit rendered, want none")
		}
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("no CPU request")
	}
	checkMemoryLimit(t, env, c, w.memoryLimit)

	// Ports and probes: herd's endpoints on herd's health port.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != w.listenPort || ports["health"] != w.healthPort {
		t.Errorf("container ports %v, want http %d and health %d", ports, w.listenPort, w.healthPort)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startupProbe", c.StartupProbe, "/startupz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/livez"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: %+v, want an HTTP GET", p.name, p.probe)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		case resolvePort(p.probe.HTTPGet.Port, ports) != w.healthPort:
			t.Errorf("%s port %v is not herd's health port %d", p.name, p.probe.HTTPGet.Port.String(), w.healthPort)
		}
	}
	if len(w.args) > 0 && strings.Join(c.Args, " ") != strings.Join(w.args, " ") {
		t.Errorf("args %q, want %q", c.Args, w.args)
	}
	if len(c.Command) != 0 {
		t.Errorf("command %q: the image's ENTRYPOINT (herd) must stay", c.Command)
	}

	// The grace period covers herd's own stop.
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g != w.grace || *g <= int64(w.shutdownSecs[0]+w.shutdownSecs[1]) {
		t.Errorf("terminationGracePeriodSeconds %v, want %d (more than %d + %d)", g, w.grace, w.shutdownSecs[0], w.shutdownSecs[1])
	}

	// Replicas belong to the HPA when there is one.
	switch {
	case (d.Spec.Replicas == nil) != (w.replicas == nil):
		t.Errorf("replicas %v, want %v", d.Spec.Replicas, w.replicas)
	case d.Spec.Replicas != nil && *d.Spec.Replicas != *w.replicas:
		t.Errorf("replicas %d, want %d", *d.Spec.Replicas, *w.replicas)
	}

	// The selector picks the pods, and so do the Service, PDB and monitor.
	podLabels := d.Spec.Template.Labels
	if !selects(d.Spec.Selector.MatchLabels, podLabels) || !selects(r.service.Spec.Selector, podLabels) {
		t.Errorf("selectors %v / %v do not match the pod labels %v", d.Spec.Selector.MatchLabels, r.service.Spec.Selector, podLabels)
	}
	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range r.service.Spec.Ports {
		svcPorts[p.Name] = p
	}
	if p, ok := svcPorts["http"]; !ok || p.Port != w.servicePort || resolvePort(p.TargetPort, ports) != w.listenPort {
		t.Errorf("service port http %+v, want %d to the container's %d", p, w.servicePort, w.listenPort)
	}
	if pod.ServiceAccountName != r.serviceAccount.Name {
		t.Errorf("service account %q, the chart made %q", pod.ServiceAccountName, r.serviceAccount.Name)
	}

	if (r.pdb != nil) != w.pdb {
		t.Errorf("PodDisruptionBudget rendered %v, want %v", r.pdb != nil, w.pdb)
	} else if r.pdb != nil && !selects(r.pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selects %v, not the pods %v", r.pdb.Spec.Selector.MatchLabels, podLabels)
	}
	if (r.hpa != nil) != w.hpa {
		t.Errorf("HorizontalPodAutoscaler rendered %v, want %v", r.hpa != nil, w.hpa)
	} else if r.hpa != nil {
		ref := r.hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != d.Name {
			t.Errorf("HPA scales %+v, not the Deployment %s", ref, d.Name)
		}
		if len(r.hpa.Spec.Metrics) != 1 || r.hpa.Spec.Metrics[0].Resource == nil || r.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HPA metrics %+v, want CPU utilization", r.hpa.Spec.Metrics)
		}
	}
	if (r.serviceMonitor != nil) != w.monitor {
		t.Errorf("ServiceMonitor rendered %v, want %v", r.serviceMonitor != nil, w.monitor)
	} else if sm := r.serviceMonitor; sm != nil {
		if !selects(sm.Spec.Selector.MatchLabels, r.service.Labels) {
			t.Errorf("ServiceMonitor selects %v, not the Service's labels %v", sm.Spec.Selector.MatchLabels, r.service.Labels)
		}
		for _, e := range sm.Spec.Endpoints {
			p, ok := svcPorts[e.Port]
			if !ok || resolvePort(p.TargetPort, ports) != w.healthPort || e.Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %+v: want /metrics on a Service port to herd's health port", e)
			}
		}
	}
	checkConfigMap(t, r, c, pod, w.config)

	// helm test: a hook pod that fetches / through the Service.
	tp := r.testPod
	if tp.Annotations["helm.sh/hook"] != "test" || len(tp.Spec.Containers) != 1 {
		t.Errorf("test pod %s: hook %q, %d containers", tp.Name, tp.Annotations["helm.sh/hook"], len(tp.Spec.Containers))
	} else if cmd := strings.Join(tp.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "http://"+r.service.Name+":"+strconv.Itoa(int(w.servicePort))+"/") {
		t.Errorf("test pod runs %q, not a fetch through the Service", cmd)
	}
}

func envMap(env []corev1.EnvVar) map[string]*corev1.EnvVar {
	m := map[string]*corev1.EnvVar{}
	for i := range env {
		m[env[i].Name] = &env[i]
	}
	return m
}

// checkResourceRef: name is "$(X)m", X defined before it from the
// Downward API with divisor 1m: herd gets millicores with their unit, never
// a bare number it could read as whole CPUs.
func checkResourceRef(t *testing.T, env map[string]*corev1.EnvVar, name, container, res string) {
	t.Helper()
	v := env[name]
	from, ok := "", false
	if v != nil && v.ValueFrom == nil {
		from, ok = strings.CutPrefix(v.Value, "$(")
		from, ok = strings.CutSuffix(from, ")m")
	}
	if !ok {
		t.Errorf("%s = %+v, want \"$(VAR)m\" with VAR from the Downward API", name, v)
		return
	}
	e := env[from]
	if e == nil || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
		t.Errorf("%s: want %s from the Downward API, got %+v", from, res, e)
		return
	}
	ref := e.ValueFrom.ResourceFieldRef
	if ref.Resource != res || ref.ContainerName != container || ref.Divisor.Cmp(resource.MustParse("1m")) != 0 {
		t.Errorf("%s: resourceFieldRef %+v (divisor %s), want %s of container %s with divisor 1m", e.Name, ref, ref.Divisor.String(), res, container)
	}
}

// checkMemoryLimit: the memory limit reaches herd as HERD_MEMORY_LIMIT
// straight from the Downward API, in bytes (divisor 1), only when the
// container has one.
func checkMemoryLimit(t *testing.T, env map[string]*corev1.EnvVar, c corev1.Container, want bool) {
	t.Helper()
	_, has := c.Resources.Limits[corev1.ResourceMemory]
	e := env["HERD_MEMORY_LIMIT"]
	if !want {
		if e != nil || has {
			t.Errorf("HERD_MEMORY_LIMIT = %+v, memory limit rendered %v; want neither: without a limit the Downward API reports the node's allocatable memory", e, has)
		}
		return
	}
	if !has {
		t.Errorf("no memory limit rendered")
	}
	if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
		t.Fatalf("HERD_MEMORY_LIMIT = %+v, want it from the Downward API", e)
	}
	ref := e.ValueFrom.ResourceFieldRef
	if ref.Resource != "limits.memory" || ref.ContainerName != c.Name || ref.Divisor.Cmp(resource.MustParse("1")) != 0 {
		t.Errorf("HERD_MEMORY_LIMIT: resourceFieldRef %+v (divisor %s), want limits.memory of container %s with divisor 1", ref, ref.Divisor.String(), c.Name)
	}
}

func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := pod.SecurityContext, c.SecurityContext
	if ps == nil || cs == nil {
		t.Fatalf("security contexts: pod %v, container %v", ps, cs)
	}
	nonRoot := (ps.RunAsNonRoot != nil && *ps.RunAsNonRoot) || (cs.RunAsNonRoot != nil && *cs.RunAsNonRoot)
	if !nonRoot || (ps.RunAsUser != nil && *ps.RunAsUser == 0) || (cs.RunAsUser != nil && *cs.RunAsUser == 0) {
		t.Errorf("not non-root: pod %+v, container %+v", ps, cs)
	}
	if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem = %v, want true", cs.ReadOnlyRootFilesystem)
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation = %v, want false", cs.AllowPrivilegeEscalation)
	}
	if cs.Capabilities == nil || len(cs.Capabilities.Drop) != 1 || cs.Capabilities.Drop[0] != "ALL" || len(cs.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL]", cs.Capabilities)
	}
	if cs.Privileged != nil && *cs.Privileged {
		t.Errorf("privileged")
	}
}

// checkConfigMap: HERD_CONFIG names the file the ConfigMap is mounted as,
// and herd itself accepts that file.
func checkConfigMap(t *testing.T, r *release, c corev1.Container, pod corev1.PodSpec, want bool) {
	t.Helper()
	env := envMap(c.Env)
	if (r.configMap != nil) != want || (env["HERD_CONFIG"] != nil) != want {
		t.Fatalf("ConfigMap rendered %v, HERD_CONFIG %+v; want both: %v", r.configMap != nil, env["HERD_CONFIG"], want)
	}
	if !want {
		return
	}
	path := env["HERD_CONFIG"].Value
	var mounted bool
	for _, m := range c.VolumeMounts {
		if filepath.Dir(path) != filepath.Clean(m.MountPath) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == r.configMap.Name {
				mounted = true
			}
		}
	}
	data, ok := r.configMap.Data[filepath.Base(path)]
	if !mounted || !ok {
		t.Fatalf("HERD_CONFIG=%s is not the ConfigMap %s (keys %v) mounted", path, r.configMap.Name, r.configMap.Data)
	}
	if r.deployment.Spec.Template.Annotations["checksum/herd-config"] == "" {
		t.Errorf("no checksum annotation: a changed file would not roll the pods")
	}
	// herd reads the file strictly: run `herd config` on it.
	file := filepath.Join(t.TempDir(), "herd.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBuild(t, "."), "config")
	cmd.Env = []string{"HERD_CONFIG=" + file}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "# configuration file: "+file) {
		t.Errorf("herd config with the rendered file: %v\n%s", err, out)
	}
}

func resolvePort(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.String {
		return named[p.StrVal]
	}
	return p.IntVal
}

// selects says whether every key of sel is in labels with the same value.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// A misspelt or wrong value fails rendering (the values schema or the
// chart's own checks), and one the schema cannot see, inside an object
// passed to Kubernetes as it is, fails the strict decoding.
func TestChartRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		file   string
		render bool   // helm template succeeds and decoding must fail
		want   string // in the error
	}{
		{"misspelt-herd-key.yaml", false, "additional properties 'shedPolicy' not allowed"},
		{"misspelt-top-key.yaml", false, "additional properties 'autoscalling' not allowed"},
		{"misspelt-probe-field.yaml", false, "additional properties 'periodSecond' not allowed"},
		{"unknown-policy.yaml", false, "/herd/schedPolicy"},
		{"grace-too-short.yaml", false, "terminationGracePeriodSeconds=25 must be more than"},
		{"autoscaling-without-request.yaml", false, "set resources.requests.cpu"},
		{"unix-listen.yaml", false, "must end in :PORT"},
		{"pdb-both.yaml", false, "not both"},
		{"misspelt-security-context.yaml", true, `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
	} {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			out, err := helmTemplate(t, chartDir, "-f", filepath.Join("testdata", "bad", c.file))
			if c.render {
				if err != nil {
					t.Fatalf("helm template: %v", err)
				}
				_, err = decodeRelease(splitManifests(out))
			}
			if err == nil {
				t.Fatalf("%s accepted, want an error with %q", c.file, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
}

// A misspelt field in a template renders fine and passes helm lint; the
// strict decoding catches it.
func TestChartRefusesMisspeltTemplateField(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "herd")
	if err := os.CopyFS(chart, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(chart, "templates", "deployment.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "livenessProbe:", "livenesProbe:", 1)
	if bad == string(b) {
		t.Fatal("deployment.yaml has no livenessProbe to misspell")
	}
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := helmTemplate(t, chart)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	_, err = decodeRelease(splitManifests(out))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.template.spec.containers[0].livenesProbe"`) {
		t.Errorf("decoding a Deployment with livenesProbe: %v", err)
	}
}

// The chart states the oldest Kubernetes it renders for.
func TestChartKubeVersion(t *testing.T) {
	cmd := exec.Command(helmPath(t), "template", "web", chartDir, "--kube-version", "1.24.0")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kubeVersion") {
		t.Errorf("rendering for Kubernetes 1.24 (no autoscaling/v2 before 1.23, policy/v1 PDB before 1.21...): %v\n%s", err, out)
	}
}

// The splitter and decoder themselves: a document of comments only is
// dropped, and an object kind the chart never makes is refused.
func TestDecodeRelease(t *testing.T) {
	ms := splitManifests([]byte("---\n# Source: x/a.yaml\n# only a comment\n---\n# Source: x/b.yaml\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"))
	if len(ms) != 1 || ms[0].source != "x/b.yaml" {
		t.Fatalf("split: %+v", ms)
	}
	if _, err := decodeRelease(ms); err == nil || !strings.Contains(err.Error(), `unexpected object "v1 Secret"`) {
		t.Errorf("a Secret: %v", err)
	}
	dup := "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n"
	if _, err := decodeRelease(splitManifests([]byte(dup))); err == nil || !strings.Contains(err.Error(), "a second object") {
		t.Errorf("two Services: %v", err)
	}
	dupKey := "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: ClusterIP, type: NodePort}\n"
	if _, err := decodeRelease(splitManifests([]byte(dupKey))); err == nil {
		t.Errorf("a repeated key was accepted")
	}
}

// TestCPUUnitsReachHerd: a small request and limit come out of the
// Downward API as bare millicore counts ("5", "800"); the chart must hand
// them to herd with their unit, since herd reads a bare 1 to 9 as whole
// CPUs. Resolved as the kubelet does, then read by herd itself.
func TestCPUUnitsReachHerd(t *testing.T) {
	for _, tc := range []struct {
		request, limit string
		want           string // herd cpus --json: request and limit in millicores
	}{
		{"5m", "", `"request_millicores":5`},
		{"5m", "800m", `"limit_millicores":800`},
		{"1500m", "2", `"limit_millicores":2000`},
	} {
		args := []string{"--set", "resources.requests.cpu=" + tc.request}
		if tc.limit != "" {
			args = append(args, "--set", "resources.limits.cpu="+tc.limit)
		} else {
			args = append(args, "--set", "resources.limits=null")
		}
		r := renderRelease(t, args...)
		c := r.deployment.Spec.Template.Spec.Containers[0]
		env, err := containerEnv(imageConfig{}, c, "pod-0", resource.MustParse("16"))
		if err != nil {
			t.Fatal(err)
		}
		req := envValue(env, "HERD_CPU_REQUEST")
		if want := strings.TrimSuffix(tc.request, "m") + "m"; req != want {
			t.Errorf("request %s: HERD_CPU_REQUEST=%q, want %q", tc.request, req, want)
		}
		cmd := exec.Command(goBuild(t, "."), "cpus", "--json")
		cmd.Env = []string{"HERD_CPU_REQUEST=" + req}
		if l := envValue(env, "HERD_CPU_LIMIT"); l != "" {
			cmd.Env = append(cmd.Env, "HERD_CPU_LIMIT="+l)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("herd cpus --json with %v: %v\n%s", cmd.Env, err, out)
		}
		if !strings.Contains(strings.Join(strings.Fields(string(out)), ""), tc.want) {
			t.Errorf("request %s limit %s: herd cpus --json with %v does not say %s:\n%s", tc.request, tc.limit, cmd.Env, tc.want, out)
		}
	}
}

// TestMemoryLimitReachesHerd: the memory limit comes out of the Downward
// API as a bare number of bytes, which herd reads as bytes, exactly;
// without a limit nothing is passed. Resolved as the kubelet does, then
// read by herd itself.
func TestMemoryLimitReachesHerd(t *testing.T) {
	for _, tc := range []struct {
		limit string // resources.limits.memory; "" for none
		env   string // HERD_MEMORY_LIMIT as the kubelet resolves it
	}{
		{"256Mi", "268435456"},
		{"300M", "300000000"},
		{"1.5Gi", "1610612736"},
		{"", ""},
	} {
		args := []string{"--set", "resources.limits.memory=" + tc.limit}
		if tc.limit == "" {
			args = []string{"--set", "resources.limits.memory=null"}
		}
		r := renderRelease(t, args...)
		c := r.deployment.Spec.Template.Spec.Containers[0]
		env, err := containerEnv(imageConfig{}, c, "pod-0", resource.MustParse("16"))
		if err != nil {
			t.Fatal(err)
		}
		got, set := "", false
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "HERD_MEMORY_LIMIT="); ok {
				got, set = v, true
			}
		}
		if got != tc.env || set != (tc.limit != "") {
			t.Errorf("limit %q: HERD_MEMORY_LIMIT=%q (set %v), want %q", tc.limit, got, set, tc.env)
		}
		if !set {
			continue
		}
		cmd := exec.Command(goBuild(t, "."), "memory", "--json")
		cmd.Env = []string{"HERD_MEMORY_LIMIT=" + got}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("herd memory --json with %v: %v\n%s", cmd.Env, err, out)
		}
		if want := `"limit_setting":` + tc.env + ","; !strings.Contains(strings.Join(strings.Fields(string(out)), ""), want) {
			t.Errorf("limit %s: herd memory --json with %v does not say %s:\n%s", tc.limit, cmd.Env, want, out)
		}
	}
}
