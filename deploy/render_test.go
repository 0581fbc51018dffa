package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the Kubernetes version helm renders for (test.sh uses the
// same); the chart's kubeVersion constraint is checked against it.
const kubeVersion = "1.33.0"

// chartDir is herd's chart.
var chartDir = filepath.Join(repoRoot, "charts", "herd")

// helmTemplate renders a chart as `helm template` does, for release
// "web" in namespace "shop", with the given extra arguments (-f FILE,
// --set ...). The error holds helm's stderr.
func helmTemplate(t testing.TB, chart string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helmPath(t), append([]string{"template", "web", chart,
		"--namespace", "shop", "--kube-version", kubeVersion}, args...)...)
	// No repositories or plugins are involved; keep helm's own files out
	// of the home directory.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// manifest is one YAML document of helm's output.
type manifest struct {
	source string // the template, from helm's "# Source:" comment
	data   []byte
}

var (
	docSep    = regexp.MustCompile(`(?m)^---[ \t]*$`)
	sourceRef = regexp.MustCompile(`(?m)^# Source: (\S+)`)
)

// splitManifests cuts helm's output into documents, dropping those that
// hold only comments and blank lines.
func splitManifests(out []byte) []manifest {
	var ms []manifest
	for _, doc := range docSep.Split(string(out), -1) {
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if empty {
			continue
		}
		m := manifest{data: []byte(doc)}
		if s := sourceRef.FindStringSubmatch(doc); s != nil {
			m.source = s[1]
		}
		ms = append(ms, m)
	}
	return ms
}

// serviceMonitor is a monitoring.coreos.com/v1 ServiceMonitor, reduced to
// the fields the chart writes (names and types as in the Prometheus
// Operator's API reference): the Operator's Go types would bring a large
// module for one object. A field outside these is an error, as a misspelt
// one would be.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// release is a rendered chart, every object decoded into its API type.
type release struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	configMap      *corev1.ConfigMap
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	serviceMonitor *serviceMonitor
	testPod        *corev1.Pod
}

// decodeRelease strict-decodes every manifest: an unknown field (a
// misspelt one), a duplicate key, a value of the wrong type, an object
// kind the chart should not make, or two objects of one kind are errors.
func decodeRelease(ms []manifest) (*release, error) {
	r := &release{}
	for _, m := range ms {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(m.data, &tm); err != nil {
			return nil, fmt.Errorf("%s: %v", m.source, err)
		}
		var obj any
		switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
		case "apps/v1 Deployment":
			obj = &r.deployment
		case "v1 Service":
			obj = &r.service
		case "v1 ServiceAccount":
			obj = &r.serviceAccount
		case "v1 ConfigMap":
			obj = &r.configMap
		case "policy/v1 PodDisruptionBudget":
			obj = &r.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &r.hpa
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = &r.serviceMonitor
		case "v1 Pod":
			obj = &r.testPod
		default:
			return nil, fmt.Errorf("%s: unexpected object %q", m.source, gvk)
		}
		if err := strictInto(m.data, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %v", m.source, tm.APIVersion, tm.Kind, err)
		}
	}
	return r, nil
}

// strictInto decodes data into the nil pointer *ptr points to, refusing a
// second object of the same kind.
func strictInto(data []byte, ptr any) error {
	switch p := ptr.(type) {
	case **appsv1.Deployment:
		return strictOnce(data, p)
	case **corev1.Service:
		return strictOnce(data, p)
	case **corev1.ServiceAccount:
		return strictOnce(data, p)
	case **corev1.ConfigMap:
		return strictOnce(data, p)
	case **policyv1.PodDisruptionBudget:
		return strictOnce(data, p)
	case **autoscalingv2.HorizontalPodAutoscaler:
		return strictOnce(data, p)
	case **serviceMonitor:
		return strictOnce(data, p)
	case **corev1.Pod:
		return strictOnce(data, p)
	}
	return fmt.Errorf("no decoder for %T", ptr)
}

// strictOnce decodes as the API server does with fieldValidation=Strict:
// YAML to JSON refusing repeated keys, then JSON into the type with
// case-sensitive field names (sigs.k8s.io/json), every unknown or
// duplicate field an error. encoding/json alone would not do: it matches
// field names case-insensitively, so readOnlyRootFileSystem would pass
// here and be dropped by the API server.
func strictOnce[T any](data []byte, p **T) error {
	if *p != nil {
		return fmt.Errorf("a second object of this kind")
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	v := new(T)
	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	*p = v
	return nil
}

// renderRelease renders and decodes, failing the test on any error.
func renderRelease(t testing.TB, args ...string) *release {
	t.Helper()
	out, err := helmTemplate(t, chartDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRelease(splitManifests(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r
}
