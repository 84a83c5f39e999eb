// Package validate checks the Kubernetes manifests in deploy/kubernetes: every
// document decodes strictly into the Kubernetes API types (an unknown or
// misspelt field is an error), both kustomizations render, and the rendered
// objects keep the deployment's invariants (probes on the daemon's HTTP port,
// a non-root read-only container, resources, a config the daemon accepts).
//
// It is a module of its own so that the Kubernetes libraries stay out of
// spfmilter's go.mod. Run it with
//
//	cd deploy/kubernetes/validate && go test ./...
package validate

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const manifestDir = ".."

// podMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1) that the manifests use; decoding is strict, so a
// field outside it is reported.
type podMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       podMonitorSpec `json:"spec"`
}

type podMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	PodMetricsEndpoints []struct {
		Port     string `json:"port"`
		Path     string `json:"path"`
		Interval string `json:"interval"`
	} `json:"podMetricsEndpoints"`
}

// objects are the decoded documents of one manifest set.
type objects struct {
	configMaps  []*corev1.ConfigMap
	services    []*corev1.Service
	deployments []*appsv1.Deployment
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	podMonitors []*podMonitor
}

// splitDocs splits a multi-document YAML stream at "---" lines and drops
// documents that hold only comments.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, slices.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// decode strictly decodes one document into the API type its apiVersion and
// kind name, and adds it to objs.
func (objs *objects) decode(where string, doc []byte) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	var obj any
	switch meta.APIVersion + " " + meta.Kind {
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		objs.configMaps, obj = append(objs.configMaps, o), o
	case "v1 Service":
		o := &corev1.Service{}
		objs.services, obj = append(objs.services, o), o
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		objs.deployments, obj = append(objs.deployments, o), o
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		objs.hpas, obj = append(objs.hpas, o), o
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		objs.pdbs, obj = append(objs.pdbs, o), o
	case "monitoring.coreos.com/v1 PodMonitor":
		o := &podMonitor{}
		objs.podMonitors, obj = append(objs.podMonitors, o), o
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		obj = &kustypes.Kustomization{}
	default:
		return fmt.Errorf("%s: unexpected kind %q %q", where, meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s (%s): %v", where, meta.Kind, err)
	}
	return nil
}

// TestManifestsDecodeStrictly decodes every YAML file under deploy/kubernetes.
func TestManifestsDecodeStrictly(t *testing.T) {
	var files []string
	err := filepath.WalkDir(manifestDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "validate" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d manifests under %s: %q", len(files), manifestDir, files)
	}
	var objs objects
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocs(data)
		if len(docs) == 0 {
			t.Errorf("%s: no document", f)
		}
		for i, doc := range docs {
			if err := objs.decode(fmt.Sprintf("%s#%d", f, i+1), doc); err != nil {
				t.Error(err)
			}
		}
	}
	if len(objs.podMonitors) != 1 {
		t.Errorf("want one PodMonitor, found %d", len(objs.podMonitors))
	}
}

// render builds a kustomization directory and decodes its output.
func render(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs := &objects{}
	for i, doc := range splitDocs(out) {
		if err := objs.decode(fmt.Sprintf("kustomize %s#%d", dir, i+1), doc); err != nil {
			t.Error(err)
		}
	}
	return objs
}

// spfmilterBinary builds the daemon from the repository root once per run.
var builtBinary string

func spfmilterBinary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	dir, err := os.MkdirTemp("", "spfmilter-validate-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "spfmilter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(manifestDir, "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build spfmilter: %v\n%s", err, out)
	}
	builtBinary = bin
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary != "" {
		os.RemoveAll(filepath.Dir(builtBinary))
	}
	os.Exit(code)
}

func TestBase(t *testing.T) {
	objs := render(t, filepath.Join(manifestDir, "base"))
	checkSidecarPod(t, objs)
	if len(objs.hpas) != 0 || len(objs.pdbs) != 0 {
		t.Errorf("the single-pod base has an HPA or a PDB")
	}
}

func TestScaled(t *testing.T) {
	objs := render(t, filepath.Join(manifestDir, "scaled"))
	dep := checkSidecarPod(t, objs)
	if dep == nil {
		return
	}
	if len(objs.hpas) != 1 || len(objs.pdbs) != 1 {
		t.Fatalf("scaled: want one HPA and one PDB, found %d and %d", len(objs.hpas), len(objs.pdbs))
	}
	hpa, pdb := objs.hpas[0], objs.pdbs[0]
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
		t.Errorf("HPA scales %s %s %q, want the Deployment %q", ref.APIVersion, ref.Kind, ref.Name, dep.Name)
	}
	minR := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minR = *hpa.Spec.MinReplicas
	}
	if minR < 2 || hpa.Spec.MaxReplicas < minR {
		t.Errorf("HPA replicas %d..%d, want at least 2 and min <= max", minR, hpa.Spec.MaxReplicas)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < minR {
		t.Errorf("Deployment replicas %v below the HPA's minimum %d", dep.Spec.Replicas, minR)
	}
	// A drain must be able to evict a pod: minAvailable below the minimum.
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() >= int(minR) {
		t.Errorf("PDB minAvailable %v must be set and below the HPA's minimum %d", pdb.Spec.MinAvailable, minR)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("PDB selector %v does not select the pods %v", pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	if len(dep.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Errorf("scaled pods are not spread across nodes")
	}
}

// TestPodMonitor checks that the PodMonitor selects the pods and names the
// metrics port.
func TestPodMonitor(t *testing.T) {
	objs := &objects{}
	data, err := os.ReadFile(filepath.Join(manifestDir, "podmonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range splitDocs(data) {
		if err := objs.decode(fmt.Sprintf("podmonitor.yaml#%d", i+1), doc); err != nil {
			t.Fatal(err)
		}
	}
	base := render(t, filepath.Join(manifestDir, "base"))
	if len(objs.podMonitors) != 1 || len(base.deployments) != 1 {
		t.Fatalf("want one PodMonitor and one Deployment")
	}
	pm, dep := objs.podMonitors[0], base.deployments[0]
	if !selects(pm.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("PodMonitor selector %v does not select the pods %v", pm.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	ctr := container(dep, "spfmilter")
	if ctr == nil {
		t.Fatal("no spfmilter container")
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if _, ok := portNumber(ctr, intstrName(ep.Port)); !ok || ep.Path != "/metrics" {
			t.Errorf("PodMonitor endpoint port %q path %q: want a port of the spfmilter container and /metrics", ep.Port, ep.Path)
		}
	}
}

func intstrName(s string) portRef { return portRef{name: s} }

// portRef is a container port given by name or by number.
type portRef struct {
	name string
	num  int
}

func portNumber(c *corev1.Container, ref portRef) (int, bool) {
	for _, p := range c.Ports {
		if (ref.name != "" && p.Name == ref.name) || (ref.name == "" && int(p.ContainerPort) == ref.num) {
			return int(p.ContainerPort), true
		}
	}
	return 0, false
}

func container(dep *appsv1.Deployment, name string) *corev1.Container {
	for i := range dep.Spec.Template.Spec.Containers {
		if dep.Spec.Template.Spec.Containers[i].Name == name {
			return &dep.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkSidecarPod checks the Postfix + spfmilter Deployment of a rendered
// manifest set and returns it.
func checkSidecarPod(t *testing.T, objs *objects) *appsv1.Deployment {
	t.Helper()
	if len(objs.deployments) != 1 {
		t.Fatalf("want one Deployment, found %d", len(objs.deployments))
	}
	dep := objs.deployments[0]
	pod := dep.Spec.Template.Spec
	if dep.Spec.Selector == nil || !selects(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("Deployment selector does not select its own pods")
	}
	postfix, milter := container(dep, "postfix"), container(dep, "spfmilter")
	if postfix == nil || milter == nil {
		t.Fatalf("want containers postfix and spfmilter in one pod")
	}

	// Every container has requests and limits for CPU and memory.
	for _, c := range pod.Containers {
		for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := rl[r]; !ok || q.IsZero() {
					t.Errorf("container %s: no %s request or limit", c.Name, r)
				}
			}
		}
	}

	// spfmilter's security context: non-root, read-only, no capabilities,
	// no privilege escalation, the runtime's seccomp profile.
	sc := milter.SecurityContext
	if sc == nil {
		t.Fatalf("spfmilter container has no securityContext")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("spfmilter: runAsNonRoot is not true")
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("spfmilter: runAsUser 0")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("spfmilter: readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("spfmilter: allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) != 0 {
		t.Errorf("spfmilter: capabilities must drop ALL and add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("spfmilter: seccomp profile is not RuntimeDefault")
	}
	if postfix.SecurityContext == nil || postfix.SecurityContext.Privileged != nil && *postfix.SecurityContext.Privileged {
		t.Errorf("postfix: no securityContext, or privileged")
	}

	// The config: mounted from the ConfigMap, named by --config, accepted
	// by the daemon.
	cfgPath, ok := flagValue(milter.Args, "--config")
	if !ok {
		t.Fatalf("spfmilter args %q have no --config", milter.Args)
	}
	for _, f := range []string{"--listen", "--http-listen"} {
		if _, ok := flagValue(milter.Args, f); ok {
			t.Errorf("spfmilter args set %s; keep the addresses in the ConfigMap the checks below read", f)
		}
	}
	cm, key := mountedConfigMap(t, objs, pod, milter, cfgPath)
	if cm == nil {
		t.Fatalf("--config %s is not a key of a ConfigMap mounted into the spfmilter container", cfgPath)
	}
	cfgText := cm.Data[key]
	checkConfig(t, cfgText)
	var cfg struct {
		Listen     string `json:"listen"`
		HTTPListen string `json:"http_listen"`
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatalf("ConfigMap %s key %s: %v", cm.Name, key, err)
	}

	// Probes and scraping reach the daemon's HTTP port from outside the
	// pod, so it must listen on all addresses, on a declared port.
	host, portStr, err := net.SplitHostPort(cfg.HTTPListen)
	if err != nil {
		t.Fatalf("http_listen %q: %v", cfg.HTTPListen, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("http_listen %q: the kubelet's probes and Prometheus cannot reach %s", cfg.HTTPListen, host)
	}
	httpPort, _ := strconv.Atoi(portStr)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", milter.LivenessProbe, "/-/healthy"},
		{"readiness", milter.ReadinessProbe, "/-/ready"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("spfmilter: no HTTP %s probe", p.name)
			continue
		}
		g := p.probe.HTTPGet
		ref := portRef{name: g.Port.StrVal, num: g.Port.IntValue()}
		if n, ok := portNumber(milter, ref); !ok || n != httpPort || g.Path != p.path {
			t.Errorf("spfmilter %s probe: %s on port %s, want %s on http_listen's port %d",
				p.name, g.Path, g.Port.String(), p.path, httpPort)
		}
	}
	if sp := milter.StartupProbe; sp != nil && (sp.HTTPGet == nil || sp.HTTPGet.Path != "/-/healthy") {
		t.Errorf("spfmilter startup probe: want /-/healthy")
	}
	ann := dep.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != portStr || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod scrape annotations %v, want scrape true, port %s, path /metrics", ann, portStr)
	}

	// Postfix reaches the milter over the pod's loopback, at the address
	// spfmilter listens on.
	if !strings.HasPrefix(cfg.Listen, "inet:127.0.0.1:") {
		t.Errorf("listen %q: the sidecar should listen on the pod's loopback only", cfg.Listen)
	}
	var milters string
	for _, c := range objs.configMaps {
		for _, v := range c.Data {
			for _, line := range strings.Split(v, "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "smtpd_milters" {
					milters = strings.TrimSpace(v)
				}
			}
		}
	}
	if milters != cfg.Listen {
		t.Errorf("Postfix smtpd_milters = %q, spfmilter listen = %q", milters, cfg.Listen)
	}

	// The Service selects the pods and targets a declared port.
	for _, s := range objs.services {
		if !selects(s.Spec.Selector, dep.Spec.Template.Labels) {
			t.Errorf("Service %s selects %v, not the pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			ref := portRef{name: p.TargetPort.StrVal, num: p.TargetPort.IntValue()}
			found := false
			for i := range pod.Containers {
				if _, ok := portNumber(&pod.Containers[i], ref); ok {
					found = true
				}
			}
			if !found {
				t.Errorf("Service %s port %s: target %s is no container port", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	return dep
}

// flagValue returns the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountedConfigMap finds the ConfigMap and key that appear at path inside c.
func mountedConfigMap(t *testing.T, objs *objects, pod corev1.PodSpec, c *corev1.Container, path string) (*corev1.ConfigMap, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if m.SubPath != "" {
			rel = m.SubPath
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, cm := range objs.configMaps {
				if cm.Name == v.ConfigMap.Name {
					if _, ok := cm.Data[rel]; ok {
						return cm, rel
					}
				}
			}
		}
	}
	return nil, ""
}

// checkConfig runs the daemon's own config check on a config file's text.
func checkConfig(t *testing.T, text string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "spfmilter.yaml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(spfmilterBinary(t), "serve", "--config", f, "--config.check").CombinedOutput()
	if err != nil {
		t.Errorf("spfmilter --config.check on the ConfigMap's config: %v\n%s", err, out)
	}
}

func TestSplitDocs(t *testing.T) {
	in := "# only a comment\n---\na: 1\n---\n\n---\nb: 2\nc: |\n  ---x\n"
	got := splitDocs([]byte(in))
	if len(got) != 2 || string(got[0]) != "a: 1\n" || !strings.HasPrefix(string(got[1]), "b: 2\n") {
		t.Errorf("splitDocs = %q", got)
	}
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 2\n")
	if err := (&objects{}).decode("test", doc); err == nil {
		t.Errorf("a misspelt field (replica) decoded without error")
	}
	doc = []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n")
	if err := (&objects{}).decode("test", doc); err == nil {
		t.Errorf("an unexpected kind decoded without error")
	}
}
