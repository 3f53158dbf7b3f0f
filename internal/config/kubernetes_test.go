package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// defaultKubernetes is what Validate fills in for the kubernetes keys.
func defaultKubernetes() Kubernetes {
	return Kubernetes{
		Namespace:     "default",
		WorkspaceSize: "10GiB",
		Home:          "/home/jovyan",
		UID:           1000,
		GID:           100,
		StopGrace:     "60s",
		Ingress: KubernetesIngress{ControllerSelector: IngressControllerSelector{
			Namespace: "ingress-nginx",
			PodLabels: map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
		}},
		WorkspaceBytes:    10 << 30,
		StopGraceDuration: 60 * time.Second,
	}
}

func TestKubernetesSizeAndIngress(t *testing.T) {
	hermetic(t)
	c, err := Parse([]byte(`backend: kubernetes
kubernetes:
  agent_image: registry.example.com/spinbook-agent:1.0.0
  namespace: notebooks
  storage_class: gp3
  ingress: {class: nginx, host: nb.example.com, tls_secret: nb-wildcard}
sizes:
  gpu:
    cpus: 8
    memory: 64GiB
    gpus: 1
    storage: 200GiB
    node_selector: {nvidia.com/gpu.product: NVIDIA-A10G}
    tolerations:
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
`), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Sizes["gpu"]
	if g.StorageBytes != 200<<30 || g.NodeSelector["nvidia.com/gpu.product"] != "NVIDIA-A10G" || len(g.Tolerations) != 1 || g.Tolerations[0].Operator != "Exists" {
		t.Errorf("size gpu = %+v", g)
	}
	if k := c.Kubernetes; k.Namespace != "notebooks" || k.Ingress.Host != "nb.example.com" || k.Ingress.TLSSecret != "nb-wildcard" || k.WorkspaceBytes != 10<<30 {
		t.Errorf("kubernetes = %+v", k)
	}
}

// TestKubernetesDocExample: the configuration docs/kubernetes.md shows for
// a real cluster is valid.
func TestKubernetesDocExample(t *testing.T) {
	hermetic(t)
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\nbackend: kubernetes")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/kubernetes.md has no ```yaml block starting with backend: kubernetes")
	}
	c, err := Parse([]byte("backend: kubernetes"+block), "docs/kubernetes.md")
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if g := c.Sizes["gpu"]; g.GPUCount != 1 || len(g.Tolerations) != 1 || c.Kubernetes.Ingress.TLSSecret == "" {
		t.Errorf("example parsed to %+v", c.Kubernetes)
	}
}

// TestParseStorage: workspace_size and sizes.NAME.storage take spinbook's
// units and Kubernetes' quantities alike.
func TestParseStorage(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string // a part of the message; "" for none
	}{
		{"10GiB", 10 << 30, ""},
		{"1.5TiB", 3 << 39, ""},
		{"512MiB", 512 << 20, ""},
		{"1Gi", 1 << 30, ""},
		{"500Mi", 500 << 20, ""},
		{"2Ti", 2 << 40, ""},
		{"100Ki", 100 << 10, ""},
		{"10G", 10_000_000_000, ""},
		{"500M", 500_000_000, ""},
		{"1T", 1_000_000_000_000, ""},
		{"64k", 64_000, ""},
		{"1.5Gi", 3 << 29, ""},
		{"1e9", 1_000_000_000, ""},
		{" 20Gi ", 20 << 30, ""},
		{"10", 0, "a number alone would be bytes"},
		{"10m", 0, "did you mean 10M?"},
		{"0Gi", 0, "want a size"},
		{"-1Gi", 0, "want a size"},
		{"10Q", 0, "want a size"},
		{"1.5Gb", 0, "want a size"},
		{"ten GiB", 0, "want a size"},
		{"", 0, "a number alone"},
		{"2Pi", 0, "more than a PiB"},
		{"2048TiB", 0, "more than a PiB"},
		{"0.5", 0, "a number alone"},
		{"1.5", 0, "a number alone"},
		{"1500m", 0, "m is a thousandth"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, msg := parseStorage(tt.in)
			if tt.wantErr == "" {
				if msg != "" || got != tt.want {
					t.Fatalf("parseStorage(%q) = %d, %q; want %d", tt.in, got, msg, tt.want)
				}
				return
			}
			if !strings.Contains(msg, tt.wantErr) {
				t.Fatalf("parseStorage(%q) = %d, %q; want a message with %q", tt.in, got, msg, tt.wantErr)
			}
		})
	}
}

// TestKubernetesQuantities: the config keys take Kubernetes' notation.
func TestKubernetesQuantities(t *testing.T) {
	hermetic(t)
	c, err := Parse([]byte(`backend: kubernetes
kubernetes:
  agent_image: registry.example.com/spinbook-agent:1.0.0
  workspace_size: 1Gi
sizes:
  big: {storage: 500G}
  small: {storage: 500Mi}
`), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Kubernetes.WorkspaceBytes; got != 1<<30 {
		t.Errorf("WorkspaceBytes = %d, want %d", got, 1<<30)
	}
	if got := c.Sizes["big"].StorageBytes; got != 500_000_000_000 {
		t.Errorf("sizes.big StorageBytes = %d, want 500e9", got)
	}
	if got := c.Sizes["small"].StorageBytes; got != 500<<20 {
		t.Errorf("sizes.small StorageBytes = %d, want %d", got, 500<<20)
	}
}

// TestNearestBackend: an unknown backend name suggests the one meant.
func TestNearestBackend(t *testing.T) {
	tests := map[string]string{
		"kubernets": "kubernetes", "kuberentes": "kubernetes", "Kubernetes": "kubernetes",
		"k8s": "kubernetes", "dokcer": "docker", "Docker ": "docker", "locl": "local",
		"aws": "aws", "AWS": "aws", "ecs": "aws", "awz": "aws",
		"podman": "", "lambda": "", "": "", "x": "", "gcp": "",
	}
	for in, want := range tests {
		if got := nearestBackend(in); got != want {
			t.Errorf("nearestBackend(%q) = %q, want %q", in, got, want)
		}
	}
}
