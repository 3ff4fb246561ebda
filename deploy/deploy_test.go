// Package deploy_test checks what can be checked without a Docker engine or a cluster: the Dockerfile,
// the binary it builds, the Kubernetes and compose manifests, and the alert rules and dashboard.
package deploy_test

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/optinkit/optin/internal/metrics"
)

// instruction is one Dockerfile line: the command and its words.
type instruction struct {
	cmd   string
	flags []string
	args  []string
	json  bool
}

// dockerfile parses the Dockerfile into stages of instructions.
func dockerfile(t *testing.T) [][]instruction {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToUpper(n.Value), flags: n.Flags, json: n.Attributes["json"]}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	return stages
}

func find(stage []instruction, cmd string) []instruction {
	var out []instruction
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	skipIfShort(t)
	stages := dockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want builder and final", len(stages))
	}
	build, final := stages[0], stages[1]
	if from := build[0].args; len(from) != 3 || from[0] != "golang:1.26" || !strings.EqualFold(from[1], "AS") {
		t.Errorf("builder FROM %v, want golang:1.26 AS …", from)
	}
	if from := final[0].args; len(from) != 1 || from[0] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final FROM %v, want distroless static nonroot", from)
	}
	env := strings.Join(find(build, "ENV")[0].args, " ")
	if !strings.Contains(env, "CGO_ENABLED 0") && !strings.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("builder ENV %q lacks CGO_ENABLED=0", env)
	}
	var mounts []string
	var buildCmd string
	for _, run := range find(build, "RUN") {
		mounts = append(mounts, run.flags...)
		if strings.Contains(strings.Join(run.args, " "), "go build") {
			buildCmd = strings.Join(run.args, " ")
		}
	}
	for _, want := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build"} {
		if !slices.Contains(mounts, want) {
			t.Errorf("no RUN %s (have %v)", want, mounts)
		}
	}
	for _, want := range []string{"-trimpath", "-X main.version=${VERSION}", "./cmd/server"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("go build lacks %s: %s", want, buildCmd)
		}
	}
	if u := find(final, "USER"); len(u) != 1 || u[0].args[0] != "65532:65532" {
		t.Errorf("USER %v, want 65532:65532", u)
	}
	if e := find(final, "EXPOSE"); len(e) != 1 || e[0].args[0] != "8080" {
		t.Errorf("EXPOSE %v", e)
	}
	hc := find(final, "HEALTHCHECK")
	if len(hc) != 1 || !slices.Contains(hc[0].args, "CMD") || !slices.Equal(hc[0].args[len(hc[0].args)-2:], []string{"/optin-server", "healthcheck"}) {
		t.Errorf("HEALTHCHECK %+v, want CMD [\"/optin-server\", \"healthcheck\"]", hc)
	}
	if ep := find(final, "ENTRYPOINT"); len(ep) != 1 || !ep[0].json || !slices.Equal(ep[0].args, []string{"/optin-server"}) {
		t.Errorf("ENTRYPOINT %+v, want exec form [\"/optin-server\"]", ep)
	}
	if len(find(final, "RUN")) != 0 || len(find(final, "SHELL")) != 0 {
		t.Error("the final stage runs commands: distroless has no shell")
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil || !strings.Contains(string(ignore), ".git") {
		t.Errorf(".dockerignore missing or without .git: %v", err)
	}
}

// builtBinary builds the server as the Dockerfile does and returns its path.
func builtBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "optin-server")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X main.version=v9.9.9-test", "-o", out, "./cmd/server")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func TestBinaryIsStaticAndStamped(t *testing.T) {
	skipIfShort(t)
	bin := builtBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a dynamic loader (PT_INTERP)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if f.Section(".dynamic") != nil {
		t.Error("binary has a .dynamic section")
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "optin-server v9.9.9-test") {
		t.Errorf("version: %q %v", out, err)
	}
	// healthcheck against nothing fails with exit status 1.
	err = exec.Command(bin, "healthcheck", "-url", "http://127.0.0.1:1/healthz", "-timeout", "2s").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("healthcheck against nothing: %v, want exit status 1", err)
	}
}

// manifests reads every document of the base, keyed by kind.
func manifests(t *testing.T) map[string][]byte {
	t.Helper()
	var k struct{ Resources []string }
	readKustomization(t, "kubernetes/base/kustomization.yaml", &k)
	out := map[string][]byte{}
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join("kubernetes/base", r))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		out[meta.Kind] = b
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readKustomization reads the fields a test needs of a kustomization, ignoring the others.
func readKustomization(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesBase(t *testing.T) {
	m := manifests(t)
	var dep appsv1.Deployment
	var svc corev1.Service
	var cm corev1.ConfigMap
	var hpa autoscalingv2.HorizontalPodAutoscaler
	var pdb policyv1.PodDisruptionBudget
	var np networkingv1.NetworkPolicy
	strict(t, m["Deployment"], &dep)
	strict(t, m["Service"], &svc)
	strict(t, m["ConfigMap"], &cm)
	strict(t, m["HorizontalPodAutoscaler"], &hpa)
	strict(t, m["PodDisruptionBudget"], &pdb)
	strict(t, m["NetworkPolicy"], &np)

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 || cm.Data["OPTIN_ADDR"] != ":8080" {
		t.Errorf("ports %+v with OPTIN_ADDR %q: the container port must be the binary's listen port", c.Ports, cm.Data["OPTIN_ADDR"])
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "http" {
			t.Errorf("probe %+v, want GET %s on port http", probe, want)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v", sc)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	// The Go runtime's memory limit must leave the container's room for what the collector does not count.
	goEnv := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			goEnv[e.Name] = e.Value
		}
	}
	if goLimit, err := resource.ParseQuantity(strings.TrimSuffix(goEnv["GOMEMLIMIT"], "B")); err != nil ||
		goLimit.Cmp(*c.Resources.Limits.Memory()) >= 0 || goLimit.Value() < c.Resources.Limits.Memory().Value()*3/4 {
		t.Errorf("GOMEMLIMIT %q (%v) must be a little under the memory limit %s", goEnv["GOMEMLIMIT"], err, c.Resources.Limits.Memory())
	}
	shutdown, err := time.ParseDuration(cm.Data["OPTIN_SHUTDOWN_TIMEOUT"])
	if err != nil || pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= 2*shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must exceed twice OPTIN_SHUTDOWN_TIMEOUT %s, for a safe margin", pod.TerminationGracePeriodSeconds, cm.Data["OPTIN_SHUTDOWN_TIMEOUT"])
	}
	secretRefs := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secretRefs[e.Name] = e.ValueFrom.SecretKeyRef.Name
		}
	}
	for _, name := range []string{"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "OPTIN_REDIS_URL"} {
		if secretRefs[name] != "optin-twilio" {
			t.Errorf("%s not from Secret optin-twilio (%v)", name, secretRefs)
		}
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom %+v, want ConfigMap %s", c.EnvFrom, cm.Name)
	}
	if svc.Spec.Ports[0].TargetPort.String() != "http" || !subset(svc.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("service %+v does not reach the pods", svc.Spec)
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Errorf("hpa %+v", hpa.Spec)
	}
	if !subset(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) || pdb.Spec.MinAvailable == nil {
		t.Errorf("pdb %+v", pdb.Spec)
	}
	if !subset(np.Spec.PodSelector.MatchLabels, dep.Spec.Template.Labels) || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8080 {
		t.Errorf("network policy %+v", np.Spec)
	}
}

func subset(sel, labels map[string]string) bool {
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

// Every variable the manifests set is one the binary knows, and no Secret is committed.
func TestManifestsUseRealVariablesAndNoSecrets(t *testing.T) {
	help, err := exec.Command(builtBinary(t), "-h").Output()
	if err != nil {
		t.Fatal(err)
	}
	known := regexp.MustCompile(`(?m)^(OPTIN_\w+|TWILIO_\w+)\s`).FindAllStringSubmatch(string(help), -1)
	var names []string
	for _, k := range known {
		names = append(names, k[1])
	}
	used := regexp.MustCompile(`\b(OPTIN_[A-Z_]+|TWILIO_[A-Z_]+)\b`)
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			var meta struct{ Kind string }
			if yaml.Unmarshal(doc, &meta) == nil && meta.Kind == "Secret" {
				t.Errorf("%s commits a Secret", path)
			}
		}
		for _, v := range used.FindAllString(string(b), -1) {
			if !slices.Contains(names, v) {
				t.Errorf("%s sets %s, which optin-server does not know", path, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOverlayAndCompose(t *testing.T) {
	var k struct {
		Namespace string
		Resources []string
		Images    []struct{ Name, NewTag string }
		Patches   []struct{ Path string }
	}
	readKustomization(t, "kubernetes/overlays/example/kustomization.yaml", &k)
	if !slices.Equal(k.Resources, []string{"../../base"}) || len(k.Images) != 1 || k.Images[0].Name != "ghcr.io/optinkit/optin-server" {
		t.Errorf("overlay %+v", k)
	}
	for _, p := range k.Patches {
		var cm corev1.ConfigMap
		var dep appsv1.Deployment
		b, err := os.ReadFile(filepath.Join("kubernetes/overlays/example", p.Path))
		if err != nil {
			t.Fatal(err)
		}
		if yaml.UnmarshalStrict(b, &cm) != nil && yaml.UnmarshalStrict(b, &dep) != nil {
			t.Errorf("patch %s is neither a ConfigMap nor a Deployment", p.Path)
		}
	}

	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Entrypoint  []string
			Environment map[string]string
			Profiles    []string
		}
	}
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	s := compose.Services
	if len(s) != 10 || !slices.Contains(s["redis"].Command, "--appendonly") || !slices.Equal(s["emulator"].Entrypoint, []string{"/emulator"}) ||
		!slices.Equal(s["jaeger"].Profiles, []string{"tracing"}) {
		t.Errorf("compose services %+v", s)
	}
	for _, name := range []string{"redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"} {
		if !slices.Equal(s[name].Profiles, []string{"sentinel"}) {
			t.Errorf("%s is not in the sentinel profile: %v", name, s[name].Profiles)
		}
	}
	if !strings.Contains(strings.Join(s["sentinel-1"].Entrypoint, " "), "sentinel monitor mymaster redis 6379 2") {
		t.Errorf("sentinel-1 entrypoint %v", s["sentinel-1"].Entrypoint)
	}
	for _, name := range []string{"optin-1", "optin-2"} {
		env := s[name].Environment
		if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" || env["OPTIN_REDIS_URL"] != "${OPTIN_REDIS_URL:-redis://redis:6379/0}" || env["OPTIN_TWILIO_API_URL"] != "http://emulator:8081" || env["TWILIO_AUTH_TOKEN"] != s["emulator"].Environment["EMULATOR_AUTH_TOKEN"] {
			t.Errorf("%s environment %v", name, env)
		}
	}
}

// The alerts and the dashboard query only metrics the service exports.
func TestAlertsAndDashboard(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, func() (int, error) { return 0, nil })
	// Touch every vector so that it is gathered.
	m.Webhook(metrics.Processed)
	m.FlowFinished("done")
	m.StepFinished("wait", "ok", time.Second)
	m.Retry("x")
	m.TwilioRequest("x", 200, time.Second)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			exported[f.GetName()+"_bucket"] = true
		}
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	readYAML(t, "prometheus/alerts.yaml", &rules)
	var alerts []string
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s lacks severity or summary", r.Alert)
			}
		}
	}
	for _, want := range []string{"OptinSignatureFailuresSpike", "OptinFlowsFailing", "OptinTwilioRateLimited", "OptinQueueBacklog", "OptinPoolExhausted"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	b, err := os.ReadFile("grafana/optin-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	names := regexp.MustCompile(`\b((?:optin|go|process)_[a-z_]+)`)
	for _, e := range exprs {
		for _, n := range names.FindAllString(e, -1) {
			if !exported[n] {
				t.Errorf("%q queries %s, which the service does not export", e, n)
			}
		}
	}
	if len(dash.Panels) < 6 {
		t.Errorf("dashboard has %d panels", len(dash.Panels))
	}
}

// kustomize builds the base and the example overlay; the overlay changes only what it says.
func TestKustomizeBuild(t *testing.T) {
	skipIfShort(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	fs := filesys.MakeFsOnDisk()
	if _, err := k.Run(fs, "kubernetes/base"); err != nil {
		t.Fatalf("base: %v", err)
	}
	res, err := k.Run(fs, "kubernetes/overlays/example")
	if err != nil {
		t.Fatalf("overlay: %v", err)
	}
	kinds := map[string]int{}
	for _, r := range res.Resources() {
		kinds[r.GetKind()]++
		if r.GetNamespace() != "optin" {
			t.Errorf("%s/%s in namespace %q", r.GetKind(), r.GetName(), r.GetNamespace())
		}
		if r.GetLabels()["app.kubernetes.io/name"] != "optin" {
			t.Errorf("%s/%s lacks the common label", r.GetKind(), r.GetName())
		}
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "Deployment":
			var dep appsv1.Deployment
			strict(t, b, &dep)
			if *dep.Spec.Replicas != 3 || dep.Spec.Template.Spec.Containers[0].Image != "ghcr.io/optinkit/optin-server:v0.1.0" ||
				dep.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "optin" || dep.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("overlay deployment: replicas %d, image %s, selector %v", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image, dep.Spec.Selector.MatchLabels)
			}
		case "ConfigMap":
			var cm corev1.ConfigMap
			strict(t, b, &cm)
			if cm.Data["OPTIN_PUBLIC_URL"] != "https://optin.delivery.example.com" || cm.Data["OPTIN_SHUTDOWN_TIMEOUT"] != "20s" {
				t.Errorf("overlay config %v", cm.Data)
			}
		}
	}
	want := map[string]int{"Deployment": 1, "Service": 1, "ConfigMap": 1, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 1}
	for kind, n := range want {
		if kinds[kind] != n {
			t.Errorf("%d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
	if kinds["Secret"] != 0 {
		t.Error("the build contains a Secret")
	}
}

// skipIfShort skips the tests that build binaries or manifests under go test -short; CI runs them.
func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: builds (go test without -short runs it, as CI does)")
	}
}

// The Sentinel overlay waits for a replica and lets the pods reach the Sentinels.
func TestKustomizeSentinelOverlay(t *testing.T) {
	skipIfShort(t)
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "kubernetes/overlays/sentinel")
	if err != nil {
		t.Fatalf("overlay: %v", err)
	}
	seen := 0
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "ConfigMap":
			var cm corev1.ConfigMap
			strict(t, b, &cm)
			if cm.Data["OPTIN_REDIS_WAIT_REPLICAS"] != "1" || cm.Data["OPTIN_WORKERS"] != "200" {
				t.Errorf("config %v", cm.Data)
			}
			seen++
		case "NetworkPolicy":
			var np networkingv1.NetworkPolicy
			strict(t, b, &np)
			var ports []int32
			for _, e := range np.Spec.Egress {
				for _, p := range e.Ports {
					ports = append(ports, p.Port.IntVal)
				}
			}
			if !slices.Contains(ports, 26379) || !slices.Contains(ports, 6379) || !slices.Contains(ports, 443) || !slices.Contains(ports, 53) {
				t.Errorf("egress ports %v", ports)
			}
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("saw %d of the ConfigMap and the NetworkPolicy", seen)
	}
}

// The chats overlay serves the API on 8081 from the Secret optin-admin, to the platform's namespace
// only, through the ClusterIP Service optin-admin; the public Service and ingress rules keep 8080.
func TestKustomizeChatsOverlay(t *testing.T) {
	skipIfShort(t)
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "kubernetes/overlays/chats")
	if err != nil {
		t.Fatalf("overlay: %v", err)
	}
	kinds := map[string]int{}
	var config map[string]string
	for _, r := range res.Resources() {
		kinds[r.GetKind()]++
		if r.GetNamespace() != "optin" || r.GetLabels()["app.kubernetes.io/name"] != "optin" {
			t.Errorf("%s/%s: namespace %q, labels %v", r.GetKind(), r.GetName(), r.GetNamespace(), r.GetLabels())
		}
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() + "/" + r.GetName() {
		case "Deployment/optin":
			var dep appsv1.Deployment
			strict(t, b, &dep)
			c := dep.Spec.Template.Spec.Containers[0]
			var ports []string
			for _, p := range c.Ports {
				ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.ContainerPort))
			}
			slices.Sort(ports)
			if !slices.Equal(ports, []string{"admin:8081", "http:8080"}) {
				t.Errorf("container ports %v", ports)
			}
			secrets := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					secrets[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
			for name, want := range map[string]string{"OPTIN_ADMIN_TOKENS": "optin-admin/tokens", "OPTIN_CALLBACK_SECRET": "optin-admin/callback-secret",
				"TWILIO_ACCOUNT_SID": "optin-twilio/account-sid", "TWILIO_AUTH_TOKEN": "optin-twilio/auth-token", "OPTIN_REDIS_URL": "optin-twilio/redis-url"} {
				if secrets[name] != want {
					t.Errorf("%s from %q, want the Secret key %s", name, secrets[name], want)
				}
			}
			if c.Image != "ghcr.io/optinkit/optin-server:v0.1.0" || c.ReadinessProbe.HTTPGet.Path != "/readyz" || dep.Spec.Template.Annotations["prometheus.io/port"] != "8080" {
				t.Errorf("image %s, readiness %v, annotations %v", c.Image, c.ReadinessProbe.HTTPGet, dep.Spec.Template.Annotations)
			}
		case "ConfigMap/optin-config":
			var cm corev1.ConfigMap
			strict(t, b, &cm)
			for name, want := range map[string]string{"OPTIN_ADMIN_ADDR": ":8081", "OPTIN_ADDR": ":8080", "OPTIN_PUBLIC_URL": "https://optin.delivery.example.com",
				"OPTIN_INVITE_CONTENT_SID": "HX0123456789abcdef0123456789abcdef", "OPTIN_WORKERS": "200"} {
				if cm.Data[name] != want {
					t.Errorf("%s = %q, want %q", name, cm.Data[name], want)
				}
			}
			if cm.Data["OPTIN_WHATSAPP_NUMBERS"] == "" || cm.Data["OPTIN_CALLBACK_URL"] == "" || cm.Data["OPTIN_ADMIN_TOKENS"] != "" {
				t.Errorf("config %v: the numbers and the callback URL in it, the tokens not", cm.Data)
			}
			config = cm.Data
		case "Service/optin-admin":
			var svc corev1.Service
			strict(t, b, &svc)
			if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8081 ||
				svc.Spec.Ports[0].TargetPort.StrVal != "admin" || svc.Spec.Selector["app.kubernetes.io/name"] != "optin" ||
				svc.Spec.Selector["app.kubernetes.io/component"] != "server" {
				t.Errorf("admin service %+v", svc.Spec)
			}
		case "Service/optin":
			var svc corev1.Service
			strict(t, b, &svc)
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.StrVal != "http" {
					t.Errorf("the public Service reaches %v", p.TargetPort)
				}
			}
		case "NetworkPolicy/optin-admin":
			var np networkingv1.NetworkPolicy
			strict(t, b, &np)
			if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || len(np.Spec.Ingress[0].Ports) != 1 ||
				np.Spec.Ingress[0].Ports[0].Port.IntVal != 8081 ||
				np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "platform" {
				t.Errorf("admin ingress %+v", np.Spec.Ingress)
			}
			if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "optin" {
				t.Errorf("admin policy selects %v", np.Spec.PodSelector.MatchLabels)
			}
		case "NetworkPolicy/optin":
			var np networkingv1.NetworkPolicy
			strict(t, b, &np)
			for _, in := range np.Spec.Ingress {
				for _, p := range in.Ports {
					if p.Port.IntVal != 8080 {
						t.Errorf("the base policy lets in port %v", p.Port)
					}
				}
			}
		}
	}
	want := map[string]int{"Deployment": 1, "Service": 2, "ConfigMap": 1, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 2}
	if !maps.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v (no Secret)", kinds, want)
	}
	acceptedByServer(t, config)
}

// acceptedByServer runs the server with the config map's variables and Secrets of the right shapes:
// it passes its configuration checks and logs "starting", then stops at the Redis it cannot reach.
func acceptedByServer(t *testing.T, config map[string]string) {
	t.Helper()
	key := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	env := []string{"TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef", "TWILIO_AUTH_TOKEN=0123456789abcdef0123456789abcdef",
		"OPTIN_REDIS_URL=redis://127.0.0.1:1/0", "OPTIN_ADMIN_TOKENS=" + hex.EncodeToString(key(32)) + "," + hex.EncodeToString(key(32)),
		"OPTIN_CALLBACK_SECRET=whsec_" + base64.StdEncoding.EncodeToString(key(32))}
	for k, v := range config {
		switch k {
		case "OPTIN_ADDR", "OPTIN_ADMIN_ADDR":
			v = "127.0.0.1:0"
		case "OPTIN_REDIS_STARTUP_WAIT":
			v = "0s"
		}
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(builtBinary(t))
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte(`"message":"starting"`)) || !bytes.Contains(out, []byte("OPTIN_REDIS_URL: redis at 127.0.0.1:1 unreachable")) {
		t.Errorf("the server with the overlay's configuration: %v\n%s", err, out)
	}
}
