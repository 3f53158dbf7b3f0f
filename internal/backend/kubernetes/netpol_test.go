package kubernetes

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
	"github.com/spinbook/spinbook/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the objects the code makes")

// TestNetworkPolicyObject: the NetworkPolicy each server gets, for the
// cases that decide its shape, against testdata/netpol-*.golden.
func TestNetworkPolicyObject(t *testing.T) {
	oneNode := clusterNet{
		Pods:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")},
		Nodes: []netip.Addr{netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("192.0.2.10")},
	}
	dual := clusterNet{
		Pods: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")},
		Nodes: []netip.Addr{netip.MustParseAddr("10.244.1.1"), netip.MustParseAddr("192.0.2.11"),
			netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("fd00:10:244:1::1")},
	}
	tests := []struct {
		name string
		yaml string // under kubernetes:
		cn   clusterNet
	}{
		{"nodeport", "", oneNode},
		{"nodeport-dual-stack", "", dual},
		{"nodeport-pods-unknown", "", clusterNet{}},
		{"ingress-default-controller", "ingress: {host: nb.example.com, tls_secret: nb-tls}", oneNode},
		{"ingress-custom-controller", "ingress: {host: nb.example.com, tls_secret: nb-tls, controller_selector: {namespace: traefik, pod_labels: {app.kubernetes.io/name: traefik}}}", dual},
		{"ingress-nodes-unknown", "ingress: {host: nb.example.com, tls_secret: nb-tls}\n  pod_cidrs: [10.0.0.0/16]", clusterNet{Pods: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte("backend: kubernetes\nkubernetes:\n  agent_image: agent:1\n  namespace: notebooks\n  "+tt.yaml+"\n"), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(networkPolicy(c, "notebooks", "ada", tt.cn), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "netpol-"+tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if diff := cmp.Diff(strings.TrimSpace(string(want)), string(got)); diff != "" {
				t.Errorf("network policy differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestProxyWarnings: up warns when access.trusted_proxies covers the pod
// network, and when a NodePort front door cannot be kept from pods.
func TestProxyWarnings(t *testing.T) {
	pods := clusterNet{Pods: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	twoNodes := clusterNet{Pods: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("10.244.1.0/24")}}
	tests := []struct {
		name    string
		yaml    string
		cn      clusterNet
		warning string // a part of the one warning; "" for none
	}{
		{"no trusted proxies", "", pods, ""},
		{"the pod network", "access: {trusted_proxies: [10.244.0.0/16]}", pods, "10.244.0.0/16 covers the pod network 10.244.0.0/16"},
		{"a wider range", "access: {trusted_proxies: [10.0.0.0/8]}", pods, "10.0.0.0/8 covers the pod network 10.244.0.0/16"},
		{"a controller pod", "access: {trusted_proxies: [10.244.3.17]}", pods, ""},
		{"elsewhere", "access: {trusted_proxies: [192.168.0.0/16]}", pods, ""},
		{"every node's pods", "access: {trusted_proxies: [10.244.0.0/24, 10.244.1.0/24]}", twoNodes, "10.244.0.0/24, 10.244.1.0/24 covers the pod network 10.244.0.0/24, 10.244.1.0/24"},
		{"the ingress node's pods", "access: {trusted_proxies: [10.244.1.0/24]}", twoNodes, ""},
		{"nodeport, pods unknown", "", clusterNet{}, "set kubernetes.pod_cidrs"},
		{"ingress, pods unknown", "kubernetes: {agent_image: agent:1, ingress: {host: nb.example.com, tls_secret: nb-tls}}", clusterNet{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "backend: kubernetes\n" + tt.yaml + "\n"
			if !strings.Contains(tt.yaml, "kubernetes:") {
				y += "kubernetes: {agent_image: agent:1}\n"
			}
			c, err := config.Parse([]byte(y), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			k := &Kubernetes{cfg: c}
			got := k.proxyWarnings(tt.cn)
			switch {
			case tt.warning == "" && len(got) != 0:
				t.Errorf("warnings %q, want none", got)
			case tt.warning != "" && (len(got) != 1 || !strings.Contains(got[0], tt.warning)):
				t.Errorf("warnings %q, want one saying %q", got, tt.warning)
			}
		})
	}
}

// TestNetworkPolicyAdmitsOnlyTheController: with an Ingress, a pod of the
// ingress controller (namespace ingress-nginx, its labels: the default
// controller_selector) reaches the server's front door; a pod with the
// same labels in another namespace, or with other labels in the
// controller's namespace, reaches neither port. Enforced by the test
// cluster's kube-router, so this tests the policy's effect, not its text.
func TestNetworkPolicyAdmitsOnlyTheController(t *testing.T) {
	k, cl := newBackend(t, func(c *config.Config) {
		c.Kubernetes.Ingress = config.KubernetesIngress{Host: "nb.example.test", TLSSecret: "nb-tls"}
	})
	s := spec(t, "k8s-np", "pw")
	t.Cleanup(func() { k.Down(context.Background(), s.User, nop) })
	if _, err := k.Up(t.Context(), s, nop); err != nil {
		t.Fatal(err)
	}
	pod, err := k.cs.CoreV1().Pods(k.ns).Get(t.Context(), PodName(s.User), metav1.GetOptions{})
	if err != nil || pod.Status.PodIP == "" {
		t.Fatalf("server pod: %v, IP %q", err, pod.Status.PodIP)
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ingress-nginx"}}
	if _, err := k.cs.CoreV1().Namespaces().Create(t.Context(), nsObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	controller := config.DefaultControllerLabels()
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
		port   int
		want   string
	}{
		{"the controller, front door", "ingress-nginx", controller, frontPort, "reached"},
		{"the controller's labels elsewhere", k.ns, controller, frontPort, "blocked"},
		{"another pod in the controller's namespace", "ingress-nginx", map[string]string{"app": "other"}, frontPort, "blocked"},
		{"the controller, health port", "ingress-nginx", controller, healthPort, "blocked"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := probeFromPod(t, k, cl, tt.ns, fmt.Sprintf("probe-%d", i), tt.labels, pod.Status.PodIP, tt.port, tt.want)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("a pod in %s with labels %v connecting to %s:%d: %q, want %s", tt.ns, tt.labels, pod.Status.PodIP, tt.port, got, tt.want)
			}
		})
	}
}

// probeFromPod runs a pod (the tests' Jupyter image, for its python3) in
// namespace ns with labels that connects to ip:port once a second until
// the outcome is want ("reached" or "blocked") or 30 s pass, as
// enforcement follows a policy within the enforcer's sync; it returns the
// last outcome.
func probeFromPod(t *testing.T, k *Kubernetes, cl *k8stest.Cluster, ns, name string, labels map[string]string, ip string, port int, want string) string {
	t.Helper()
	script := fmt.Sprintf(`import socket, time
deadline = time.time() + 30
while True:
    try:
        socket.create_connection((%q, %d), timeout=2).close()
        out = "reached"
    except OSError as e:
        out = "blocked: %%s" %% e
    if out.startswith(%q) or time.time() > deadline:
        print(out)
        break
    time.sleep(1)
`, ip, port, want)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr(int64(0)),
			AutomountServiceAccountToken:  ptr(false),
			Containers: []corev1.Container{{
				Name: "probe", Image: cl.JupyterImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"python3", "-c", script},
			}},
		},
	}
	pods := k.cs.CoreV1().Pods(ns)
	if _, err := pods.Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	})
	for deadline := time.Now().Add(2 * time.Minute); ; {
		got, err := pods.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe pod %s/%s still %s after 2 minutes", ns, name, got.Status.Phase)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestNetworkPolicyConcurrentUps: several `up`s of one user at once all
// get the policy made, then all bring it up to date, without an error
// from the one that lost the race.
func TestNetworkPolicyConcurrentUps(t *testing.T) {
	k, _ := newBackend(t, nil)
	const user = "k8s-np-race"
	t.Cleanup(func() {
		k.cs.NetworkingV1().NetworkPolicies(k.ns).Delete(context.Background(), PodName(user), metav1.DeleteOptions{})
	})
	for _, cn := range []clusterNet{
		{Pods: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")}},
		{Pods: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("10.244.1.0/24")}},
	} {
		errs := make(chan error, 8)
		for range 8 {
			go func() { errs <- k.ensureNetworkPolicy(t.Context(), user, cn) }()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Errorf("ensureNetworkPolicy at the same time as others: %v", err)
			}
		}
		np, err := k.cs.NetworkingV1().NetworkPolicies(k.ns).Get(t.Context(), PodName(user), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(np.Spec.Ingress[0].From[0].IPBlock.Except); got != len(cn.Pods) {
			t.Errorf("policy excepts %d pod CIDRs, want %d", got, len(cn.Pods))
		}
	}
}
