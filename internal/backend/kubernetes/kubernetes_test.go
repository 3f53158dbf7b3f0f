package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/backendtest"
	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
)

func TestMain(m *testing.M) {
	code := m.Run()
	k8stest.Stop()
	os.Exit(code)
}

// newBackend returns a kubernetes backend on the test cluster, for a
// configuration with extra YAML under kubernetes:.
func newBackend(t *testing.T, mutate func(c *config.Config)) (*Kubernetes, *k8stest.Cluster) {
	t.Helper()
	cl := k8stest.Get(t, backendtest.BuildAgent(t))
	c := config.Default()
	c.Backend = "kubernetes"
	c.Image = cl.JupyterImage
	c.Kubernetes.Kubeconfig = cl.Kubeconfig
	c.Kubernetes.AgentImage = cl.AgentImage
	c.Kubernetes.StopGrace = "20s"
	if mutate != nil {
		mutate(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k, err := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return k, cl
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		k, _ := newBackend(t, nil)
		return k
	})
}

func spec(t *testing.T, user, password string) backend.Spec {
	t.Helper()
	hash, err := secret.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	return backend.Spec{User: user, Agent: backend.AgentSpec{PasswordHash: hash, ControlToken: "ctl-" + user + "-0123456789", Secrets: []string{"warehouse-pw-s3cr3t-" + user}}}
}

func nop(backend.Event) {}

// TestPodSpecAndEventsHoldNoSecret: the password hash, the control token
// and resolved secrets reach the agent only through the Secret: not the
// pod's env, args or annotations, nor any event.
func TestPodSpecAndEventsHoldNoSecret(t *testing.T) {
	k, _ := newBackend(t, nil)
	s := spec(t, "k8s-nosecret", "pw-nosecret")
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	var progress []string
	srv, err := k.Up(t.Context(), s, func(e backend.Event) { progress = append(progress, e.Message) })
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if srv.ControlToken != s.Agent.ControlToken {
		t.Errorf("Up's ControlToken = %q, want the spec's", srv.ControlToken)
	}
	st, err := k.Status(t.Context(), s.User)
	if err != nil || st.ControlToken != s.Agent.ControlToken || !st.Ready {
		t.Errorf("Status = %+v, %v; want ready with the control token (for save and down)", st, err)
	}
	pod, err := k.cs.CoreV1().Pods(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podJSON, _ := json.Marshal(pod)
	evs, err := k.cs.CoreV1().Events(k.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(evs)
	for _, v := range []string{s.Agent.PasswordHash, s.Agent.ControlToken, s.Agent.Secrets[0]} {
		for name, text := range map[string]string{"pod": string(podJSON), "events": string(evJSON), "progress": strings.Join(progress, "\n")} {
			if strings.Contains(text, v) {
				t.Errorf("%s holds the secret value %.12q...", name, v)
			}
		}
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token: kernels could read the Secret from the API")
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.Name == "spec" {
				t.Errorf("container %s mounts the spec Secret; only the init container may", c.Name)
			}
		}
	}
	// The events told how it went: scheduled, pulled, started.
	joined := strings.Join(progress, "\n")
	for _, want := range []string{"Scheduled", "Started"} {
		if !strings.Contains(joined, want) {
			t.Errorf("progress has no %s event:\n%s", want, joined)
		}
	}
	// And the agent removed its copy of the spec.
	out, err := k.exec(t, s.User, "ls", "-A", runDir)
	if err != nil || strings.Contains(out, "spec.json") {
		t.Errorf("ls %s in the pod = %q, %v; want no spec.json", runDir, out, err)
	}
}

// TestMissingImageFailsFast: an image that does not exist fails in
// seconds, naming the image, and leaves no pod behind.
func TestMissingImageFailsFast(t *testing.T) {
	k, _ := newBackend(t, func(c *config.Config) { c.Image = "spinbook.invalid/no-such-image:1" })
	s := spec(t, "k8s-noimage", "pw")
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	began := time.Now()
	_, err := k.Up(t.Context(), s, nop)
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "spinbook.invalid/no-such-image:1") || !strings.Contains(err.Error(), "cannot be pulled") {
		t.Fatalf("Up = %v, want an error naming the image that cannot be pulled", err)
	}
	if took > 45*time.Second {
		t.Errorf("Up took %s to fail, want seconds", took)
	}
	if st, err := k.Status(t.Context(), s.User); err != nil || st.State != backend.Absent {
		t.Errorf("after the failure Status = %+v, %v; want Absent", st, err)
	}
}

// TestUnschedulableSaysWhatIsShort: a size no node has room for fails
// at once, saying which resource is short.
func TestUnschedulableSaysWhatIsShort(t *testing.T) {
	k, _ := newBackend(t, func(c *config.Config) {
		c.Sizes = map[string]config.Size{"huge": {CPUs: "512", GPUs: "1"}}
	})
	s := spec(t, "k8s-huge", "pw")
	s.Size = "huge"
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	_, err := k.Up(t.Context(), s, nop)
	if err == nil || !strings.Contains(err.Error(), "no node can run it") || !strings.Contains(err.Error(), "Insufficient") {
		t.Fatalf("Up = %v, want an error saying which resource is short", err)
	}
}

// TestUnboundClaimFailsClearly: a workspace claim of a StorageClass that
// does not exist fails with what the cluster said, not a timeout.
func TestUnboundClaimFailsClearly(t *testing.T) {
	k, _ := newBackend(t, func(c *config.Config) { c.Kubernetes.StorageClass = "no-such-class" })
	s := spec(t, "k8s-nopvc", "pw")
	t.Cleanup(func() {
		k.Down(context.Background(), s.User, nop)
		k.Purge(context.Background(), s.User, nop)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, err := k.Up(ctx, s, nop)
	if err == nil || !strings.Contains(err.Error(), "does not bind") {
		t.Fatalf("Up = %v, want an error saying the workspace claim does not bind", err)
	}
}

// TestClaimNotYetSeenIsWaitedFor: a pod the scheduler finds before it has
// seen the pod's claim is unschedulable for a moment, with the real
// scheduler's `persistentvolumeclaim "NAME" not found`. Up must wait that
// out (once a CI run's Up failed on it, calling it "no node can run it"):
// stuck says nothing, and the pod is scheduled once the claim is there.
func TestClaimNotYetSeenIsWaitedFor(t *testing.T) {
	k, _ := newBackend(t, nil)
	s := spec(t, "k8s-lateclaim", "pw")
	t.Cleanup(func() {
		k.Down(context.Background(), s.User, nop)
		k.Purge(context.Background(), s.User, nop)
	})
	p := podSpec(k.cfg, s, config.Size{})
	p.Namespace = k.ns
	pods := k.cs.CoreV1().Pods(k.ns)
	if _, err := pods.Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scheduled := func(want corev1.ConditionStatus) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			pod, err := pods.Get(t.Context(), p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == want {
					return pod
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("pod %s: no PodScheduled=%s within a minute", p.Name, want)
		return nil
	}
	pod := scheduled(corev1.ConditionFalse)
	if msg := k.stuck(t.Context(), pod, 0); msg != "" {
		t.Errorf("stuck on a claim the scheduler has not seen = %q, want a wait", msg)
	}
	if err := k.ensurePVC(t.Context(), s.User, config.Size{}, nop); err != nil {
		t.Fatal(err)
	}
	scheduled(corev1.ConditionTrue)
}

// TestWorkspaceSurvivesDownUpAndPurge: a file in the workspace is there
// after down and up (the claim is kept); Purge deletes the claim.
func TestWorkspaceSurvivesDownUpAndPurge(t *testing.T) {
	k, _ := newBackend(t, nil)
	s := spec(t, "k8s-keep", "pw")
	t.Cleanup(func() {
		k.Down(context.Background(), s.User, nop)
		k.Purge(context.Background(), s.User, nop)
	})
	if _, err := k.Up(t.Context(), s, nop); err != nil {
		t.Fatal(err)
	}
	if out, err := k.exec(t, s.User, "sh", "-c", "echo kept > /home/jovyan/work/note.txt && id -u"); err != nil || strings.TrimSpace(out) != "1000" {
		t.Fatalf("write a file as the image's user: %q, %v", out, err)
	}
	if err := k.Purge(t.Context(), s.User, nop); err == nil {
		t.Error("Purge while the server runs succeeded, want an error")
	}
	if err := k.Down(t.Context(), s.User, nop); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cs.CoreV1().PersistentVolumeClaims(k.ns).Get(t.Context(), PVCName(s.User), metav1.GetOptions{}); err != nil {
		t.Fatalf("the workspace claim is gone after Down: %v", err)
	}
	if _, err := k.Up(t.Context(), s, nop); err != nil {
		t.Fatal(err)
	}
	if out, err := k.exec(t, s.User, "cat", "/home/jovyan/work/note.txt"); err != nil || strings.TrimSpace(out) != "kept" {
		t.Fatalf("after down and up, note.txt = %q, %v; want kept", out, err)
	}
	if err := k.Down(t.Context(), s.User, nop); err != nil {
		t.Fatal(err)
	}
	if err := k.Purge(t.Context(), s.User, nop); err != nil {
		t.Fatal(err)
	}
	waitGone(t, func() bool {
		_, err := k.cs.CoreV1().PersistentVolumeClaims(k.ns).Get(t.Context(), PVCName(s.User), metav1.GetOptions{})
		return err != nil
	})
}

func waitGone(t *testing.T, gone func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !gone() {
		if time.Now().After(deadline) {
			t.Fatal("still there after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exec runs cmd in user's notebook container, through kubectl.
func (k *Kubernetes) exec(t *testing.T, user string, cmd ...string) (string, error) {
	t.Helper()
	cl := k8stest.Get(t, "")
	return cl.Kubectl(append([]string{"-n", k.ns, "exec", PodName(user), "-c", mainName, "--"}, cmd...)...)
}

func TestSizeMapsToPodSpec(t *testing.T) {
	c := config.Default()
	c.Backend = "kubernetes"
	c.Kubernetes.AgentImage = "agent:1"
	c.Sizes = map[string]config.Size{"gpu": {
		CPUs: "8", Memory: "64GiB", GPUs: "2", Shm: "16GiB",
		NodeSelector: map[string]string{"nvidia.com/gpu.product": "A10G"},
		Tolerations:  []config.Toleration{{Key: "nvidia.com/gpu", Operator: "Exists", Effect: "NoSchedule"}},
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := podSpec(c, backend.Spec{User: "u", Size: "gpu"}, c.Sizes["gpu"])
	r := p.Spec.Containers[0].Resources
	if r.Limits.Cpu().String() != "8" || r.Limits.Memory().String() != "64Gi" || r.Limits.Name("nvidia.com/gpu", "").String() != "2" || r.Requests.Cpu().String() != "8" {
		t.Errorf("resources = %+v", r)
	}
	if p.Spec.NodeSelector["nvidia.com/gpu.product"] != "A10G" || len(p.Spec.Tolerations) != 1 || p.Spec.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("placement = %v %v", p.Spec.NodeSelector, p.Spec.Tolerations)
	}
	main := p.Spec.Containers[0]
	if main.ReadinessProbe.HTTPGet.Path != "/readyz" || main.LivenessProbe.HTTPGet.Path != "/healthz" || main.LivenessProbe.HTTPGet.Port.StrVal != healthName {
		t.Errorf("probes = %+v %+v, want /readyz and /healthz on the health port", main.ReadinessProbe, main.LivenessProbe)
	}
	if g := *p.Spec.TerminationGracePeriodSeconds; g < int64(c.Kubernetes.StopGraceDuration/time.Second) || g != int64(podGrace(c.Kubernetes)/time.Second) {
		t.Errorf("terminationGracePeriodSeconds = %d, want at least stop_grace, and the grace the agent is told (%v)", g, podGrace(c.Kubernetes))
	}
	for _, e := range main.Env {
		if e.Name != "SPINBOOK_AGENT_SPEC" {
			t.Errorf("env %s: only the spec's path belongs in the env", e.Name)
		}
	}
}

// TestAccessChangeRestarts: Up with other access settings (a new password)
// replaces the running pod, so that they take effect; the same settings
// again leave it running.
func TestAccessChangeRestarts(t *testing.T) {
	k, _ := newBackend(t, nil)
	s := spec(t, "k8s-digest", "pw-one")
	s.AccessDigest = "digest-one"
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	if _, err := k.Up(t.Context(), s, nop); err != nil {
		t.Fatal(err)
	}
	s2 := spec(t, "k8s-digest", "pw-two")
	s2.AccessDigest = "digest-two"
	srv, err := k.Up(t.Context(), s2, nop)
	if err != nil || !srv.Started || srv.ControlToken != s2.Agent.ControlToken {
		t.Fatalf("Up with a new password = %+v, %v; want a new server", srv, err)
	}
	srv, err = k.Up(t.Context(), s2, nop)
	if err != nil || srv.Started || srv.AccessDigest != "digest-two" || srv.ControlToken == "" {
		t.Fatalf("Up again = %+v, %v; want the running server, with its control token", srv, err)
	}
}

// TestIngress: with kubernetes.ingress the server gets an Ingress USER.HOST
// with the TLS secret in front of a ClusterIP Service, its URL is that
// host, and Down removes the Ingress. (The test cluster runs no ingress
// controller: what the controller does with it is not tested here.)
func TestIngress(t *testing.T) {
	k, _ := newBackend(t, func(c *config.Config) {
		c.Kubernetes.Ingress = config.KubernetesIngress{Class: "nginx", Host: "nb.example.test", TLSSecret: "nb-wildcard"}
	})
	s := spec(t, "k8s-ing", "pw")
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	srv, err := k.Up(t.Context(), s, nop)
	if err != nil {
		t.Fatal(err)
	}
	if srv.URL != "https://k8s-ing.nb.example.test/" || !srv.Ready {
		t.Errorf("Up = %+v, want ready at https://k8s-ing.nb.example.test/", srv)
	}
	ing, err := k.cs.NetworkingV1().Ingresses(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rule := ing.Spec.Rules[0]
	if rule.Host != "k8s-ing.nb.example.test" || *ing.Spec.IngressClassName != "nginx" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "nb-wildcard" ||
		rule.HTTP.Paths[0].Backend.Service.Name != PodName(s.User) {
		t.Errorf("ingress = %+v", ing.Spec)
	}
	svc, err := k.cs.CoreV1().Services(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{})
	if err != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("service = %+v, %v; want a ClusterIP behind the ingress", svc.Spec, err)
	}
	if err := k.Down(t.Context(), s.User, nop); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cs.NetworkingV1().Ingresses(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{}); err == nil {
		t.Error("the ingress is still there after Down")
	}
}

// TestUpReturnsWhenTheAgentIsReady: the Service publishes the pod before
// the kubelet's readiness probe passes, and Up returns once the agent
// itself says ready through it (not at a probe's period): the server it
// returns answers /readyz at once. On the way it reports the pod's
// events, each once.
func TestUpReturnsWhenTheAgentIsReady(t *testing.T) {
	k, _ := newBackend(t, nil)
	s := spec(t, "k8s-ready", "pw-ready")
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	var mu sync.Mutex
	var steps []string
	srv, err := k.Up(t.Context(), s, func(e backend.Event) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, e.Message)
	})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	// The pod's events, from the watch on them, each once.
	mu.Lock()
	got := strings.Join(steps, "\n")
	mu.Unlock()
	for _, want := range []string{"Scheduled: ", "Started: "} {
		if strings.Count(got, want) < 1 {
			t.Errorf("Up reported no %q event; its progress:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "Scheduled: "); n > 1 {
		t.Errorf("Up reported the Scheduled event %d times; its progress:\n%s", n, got)
	}
	if !srv.Ready || srv.HealthURL == "" {
		t.Fatalf("Up = %+v, want ready with a health URL", srv)
	}
	resp, err := http.Get(strings.TrimSuffix(srv.HealthURL, "/healthz") + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz right after Up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz right after Up: %s, want 200", resp.Status)
	}
	svc, err := k.cs.CoreV1().Services(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the Service waits for the kubelet's readiness probe (publishNotReadyAddresses false)")
	}
}

// TestProbeCarriedToTheNextPod: the first server of an image probes its
// Jupyter and the backend keeps the answer on this machine; the next pod
// of the image gets it in its spec and starts Jupyter without probing.
func TestProbeCarriedToTheNextPod(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // os.UserCacheDir: this test's own
	k, _ := newBackend(t, nil)
	first, second := spec(t, "k8s-probe1", "pw-1"), spec(t, "k8s-probe2", "pw-2")
	// up asks the agent's control API from this machine: its allowlist
	// must admit it, as access.allow's default does.
	first.Agent.Allow = []string{"127.0.0.0/8"}
	second.Agent.Allow = first.Agent.Allow
	t.Cleanup(func() {
		k.Down(context.Background(), first.User, nop)
		k.Down(context.Background(), second.User, nop)
	})
	if _, err := k.Up(t.Context(), first, nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	kept := backend.KeptProbe("kubernetes", k.cfg.Image)
	if len(kept) != 1 {
		t.Fatalf("after the first Up the kept probe is %v, want one answer", kept)
	}
	if strings.Contains(fmt.Sprint(kept), first.Agent.PasswordHash) || strings.Contains(fmt.Sprint(kept), first.Agent.ControlToken) {
		t.Fatal("the kept probe holds a secret")
	}
	logs := func(user string) string {
		var b strings.Builder
		if err := k.Logs(t.Context(), user, false, &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if l := logs(first.User); !strings.Contains(l, "options_cached=false") {
		t.Errorf("the first agent did not probe:\n%s", l)
	}
	if _, err := k.Up(t.Context(), second, nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if l := logs(second.User); !strings.Contains(l, "options_cached=true") {
		t.Errorf("the second agent probed again, though handed the answer:\n%s", l)
	}
}

// TestAllowWithNodes: an allowlist that admits this machine also admits
// the nodes' pod network gateways (kube-proxy masquerades a node's
// NodePort clients behind them); any other allowlist is left as it is.
func TestAllowWithNodes(t *testing.T) {
	gws := []netip.Addr{netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("10.244.1.1")}
	for _, tt := range []struct {
		name     string
		allow    []string
		gateways []netip.Addr
		want     []string
	}{
		{"loopback address", []string{"127.0.0.1"}, gws, []string{"127.0.0.1", "10.244.0.1/32", "10.244.1.1/32"}},
		{"loopback prefix", []string{"192.0.2.0/24", "127.0.0.0/8"}, gws, []string{"192.0.2.0/24", "127.0.0.0/8", "10.244.0.1/32", "10.244.1.1/32"}},
		{"everyone", []string{"0.0.0.0/0"}, gws[:1], []string{"0.0.0.0/0", "10.244.0.1/32"}},
		{"not this machine", []string{"192.0.2.0/24"}, gws, []string{"192.0.2.0/24"}},
		{"nodes unknown", []string{"127.0.0.1"}, nil, []string{"127.0.0.1"}},
		{"nothing allowed", nil, gws, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, allowWithNodes(tt.allow, tt.gateways)); diff != "" {
				t.Errorf("allowWithNodes(%q) (-want +got):\n%s", tt.allow, diff)
			}
		})
	}
}

// TestUpMakesNoPodWhenAnObjectFails: up makes the pod's claim, Service,
// Secret and Ingress at once, and the pod only when all of them are
// there. A namespace whose quota allows no Service stops up with the
// cluster's reason, and no pod is created.
func TestUpMakesNoPodWhenAnObjectFails(t *testing.T) {
	ns := "sb-no-services"
	k, cl := newBackend(t, func(c *config.Config) { c.Kubernetes.Namespace = ns })
	if out, err := cl.Kubectl("create", "namespace", ns); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { cl.Kubectl("delete", "namespace", ns, "--wait=false") })
	if out, err := cl.Kubectl("create", "quota", "no-services", "-n", ns, "--hard=services=0"); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("create quota: %v: %s", err, out)
	}
	// The quota controller fills in the quota's usage before it admits or
	// refuses anything; until then the API server refuses every Service.
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := cl.Kubectl("get", "quota", "no-services", "-n", ns, "-o", "jsonpath={.status.used.services}")
		if strings.TrimSpace(out) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quota's usage was not counted within a minute (used.services %q)", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := spec(t, "k8s-quota", "pw")
	t.Cleanup(func() {
		k.Down(context.Background(), s.User, nop)
		k.Purge(context.Background(), s.User, nop)
	})
	_, err := k.Up(t.Context(), s, nop)
	if err == nil || !strings.Contains(err.Error(), "create service "+PodName(s.User)) || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("Up = %v, want the Service's creation refused by the quota", err)
	}
	if _, err := k.cs.CoreV1().Pods(ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after the refused Service, get pod = %v; want NotFound (no pod without its Service)", err)
	}
}
