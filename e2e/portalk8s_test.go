package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
)

// portalPod is the portal as deploy/kubernetes/portal.yaml runs it (the
// same image as the agent, `portal` as its arguments, the ServiceAccount of
// portal-rbac.yaml, non-root with a read-only root file system), but as a
// bare Pod on the host network: on the single-node test cluster servers are
// NodePorts, whose NetworkPolicy admits the node and not the pod network
// (docs/portal-kubernetes.md, "Reaching the servers").
const portalPod = `apiVersion: v1
kind: ConfigMap
metadata: {name: spinbook-portal, namespace: %[1]s}
data:
  config.yaml: |
%[2]s
---
apiVersion: v1
kind: Pod
metadata: {name: spinbook-portal, namespace: %[1]s}
spec:
  serviceAccountName: spinbook-portal
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: portal
    image: %[3]s
    args: [portal, --config, /etc/spinbook/config.yaml, --state-dir, /state/portal]
    env:
    - {name: HOME, value: /state}
    # The test cluster's kubernetes Service is not reachable from the host
    # network; its API server is, at the address its kubeconfig names.
    - {name: KUBERNETES_SERVICE_HOST, value: "%[4]s"}
    - {name: KUBERNETES_SERVICE_PORT, value: "%[5]s"}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    volumeMounts:
    - {name: config, mountPath: /etc/spinbook, readOnly: true}
    - {name: state, mountPath: /state}
  volumes:
  - {name: config, configMap: {name: spinbook-portal}}
  - {name: state, emptyDir: {}}
`

// TestPortalOnKubernetes: `spinbook portal` in a pod of the test cluster,
// with only the ServiceAccount and Role of deploy/kubernetes/portal-rbac.yaml
// and the in-cluster configuration, starts alice's server for the CLI
// (`spinbook login`, up, status, down) and stops it.
func TestPortalOnKubernetes(t *testing.T) {
	cl := k8stest.Get(t, bin)
	ns := "sb-portal-pod"
	if out, err := cl.Kubectl("create", "namespace", ns); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { cl.Kubectl("delete", "namespace", ns, "--wait=false") })
	rbac, err := os.ReadFile("../deploy/kubernetes/portal-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kubectlApply(t, cl, bytes.ReplaceAll(rbac, []byte("namespace: notebooks"), []byte("namespace: "+ns)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	password := rand.Text()
	hash, err := secret.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`backend: kubernetes
image: %s
kubernetes:
  namespace: %s
  agent_image: %s
  node_address: 127.0.0.1
  stop_grace: 20s
portal:
  listen: %s
  users:
    alice: {password_hash: '%s'}
`, cl.JupyterImage, ns, cl.AgentImage, addr, hash)
	var indented strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(cfg), "\n") {
		indented.WriteString("    " + line + "\n")
	}
	apiAddr, err := cl.Kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		t.Fatalf("the API server's address: %v: %s", err, apiAddr)
	}
	api, err := url.Parse(strings.TrimSpace(apiAddr))
	if err != nil || api.Port() == "" {
		t.Fatalf("the API server's address %q: %v", apiAddr, err)
	}
	kubectlApply(t, cl, fmt.Appendf(nil, portalPod, ns, strings.TrimRight(indented.String(), "\n"), cl.AgentImage, api.Hostname(), api.Port()))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := cl.Kubectl("logs", "-n", ns, "spinbook-portal")
			t.Logf("the portal pod's log:\n%s", out)
		}
	})

	// The Deployment, Service, Ingress and the rest of portal.yaml are
	// objects this Kubernetes accepts.
	deploy, err := os.ReadFile("../deploy/kubernetes/portal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dry := filepath.Join(t.TempDir(), "portal.yaml")
	if err := os.WriteFile(dry, bytes.ReplaceAll(deploy, []byte("namespace: notebooks"), []byte("namespace: "+ns)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.Kubectl("apply", "--dry-run=server", "-f", dry); err != nil {
		t.Fatalf("kubectl apply --dry-run=server deploy/kubernetes/portal.yaml: %v: %s", err, out)
	}

	pw := &portalWorld{url: "http://" + addr, passwords: map[string]string{"alice": password}}
	waitFor(t, "the portal in its pod to answer", 3*time.Minute, func() bool {
		resp, err := http.Get(pw.url + "/login")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	web, csrf := pw.signIn(t, "alice")
	tok, _ := pw.makeToken(t, web, csrf)

	alice := newCLIAs(t)
	if r := alice.run(tok+"\n", "login", pw.url); r.code != 0 {
		t.Fatalf("login: %s", r)
	}
	r := alice.run("", "up", "--json")
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); r.code != 0 || err != nil || s.State != "running" || !s.Ready || s.Backend != "kubernetes" {
		t.Fatalf("up through the portal in its pod: %+v, %v\n%s", s, err, r)
	}
	if out, err := cl.Kubectl("get", "pod", "-n", ns, "spinbook-alice", "-o", "jsonpath={.status.phase}"); err != nil || out != "Running" {
		t.Fatalf("alice's server pod: %q, %v", out, err)
	}
	if r := alice.run("", "status"); r.code != 0 || !strings.Contains(r.stdout, "running (ready)") || !strings.Contains(r.stdout, "kubernetes") {
		t.Fatalf("status through the portal: %s", r)
	}
	if r := alice.run("", "down"); r.code != 0 || !strings.Contains(r.stdout, "alice's server is down") {
		t.Fatalf("down through the portal: %s", r)
	}
	waitFor(t, "alice's pod to go", time.Minute, func() bool {
		out, _ := cl.Kubectl("get", "pod", "-n", ns, "spinbook-alice", "--ignore-not-found", "-o", "name")
		return strings.TrimSpace(out) == ""
	})
}

// kubectlApply applies manifest to the test cluster.
func kubectlApply(t *testing.T, cl *k8stest.Cluster, manifest []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.Kubectl("apply", "-f", path); err != nil {
		t.Fatalf("kubectl apply: %v: %s\n%s", err, out, manifest)
	}
}

// TestPortalManifestConfig: the config that deploy/kubernetes/portal.yaml
// gives the portal is one spinbook accepts.
func TestPortalManifestConfig(t *testing.T) {
	raw, err := os.ReadFile("../deploy/kubernetes/portal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("no ConfigMap with config.yaml in portal.yaml: %v", err)
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		cfg, err := config.Parse([]byte(doc.Data["config.yaml"]), "portal.yaml ConfigMap config.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Backend != "kubernetes" || cfg.Portal.Listen != "0.0.0.0:8700" {
			t.Fatalf("the manifest's config: backend %q, portal.listen %q", cfg.Backend, cfg.Portal.Listen)
		}
		return
	}
}
