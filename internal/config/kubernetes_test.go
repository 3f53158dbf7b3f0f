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
		Namespace:         "default",
		WorkspaceSize:     "10GiB",
		Home:              "/home/jovyan",
		UID:               1000,
		GID:               100,
		StopGrace:         "60s",
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
