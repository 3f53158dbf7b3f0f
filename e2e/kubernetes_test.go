package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
)

// newK8sWorld is a world whose servers are pods of the tests' Jupyter
// image on the test cluster (scripts/k8s-test-cluster, started once for
// the package and stopped by TestMain), with the agent image built from
// the binary under test.
func newK8sWorld(t *testing.T, extra string) (*world, *k8stest.Cluster) {
	t.Helper()
	return newK8sWorldOn(t, func(cl *k8stest.Cluster) string { return cl.JupyterImage }, extra)
}

// newK8sWorldOn is newK8sWorld on the cluster's image that image picks.
func newK8sWorldOn(t *testing.T, image func(*k8stest.Cluster) string, extra string) (*world, *k8stest.Cluster) {
	t.Helper()
	cl := k8stest.Get(t, bin)
	w := &world{t: t, stateDir: t.TempDir(), users: map[string]bool{}}
	w.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	cfg := fmt.Sprintf("backend: kubernetes\nimage: %s\nkubernetes:\n  kubeconfig: %s\n  agent_image: %s\n  stop_grace: 20s\n%s",
		image(cl), cl.Kubeconfig, cl.AgentImage, extra)
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.env = append(os.Environ(), "SPINBOOK_CONFIG="+w.config, "SPINBOOK_USER=", "KUBECONFIG=")
	t.Cleanup(func() {
		for u := range w.users {
			w.run("down", "--force", "--purge", "--user", u)
		}
	})
	return w, cl
}

// podJSON is what the cluster shows of user's pod.
func podJSON(t *testing.T, cl *k8stest.Cluster, user string) map[string]any {
	t.Helper()
	out, err := cl.Kubectl("get", "pod", "spinbook-"+user, "-o", "json")
	if err != nil {
		t.Fatalf("kubectl get pod: %v: %s", err, out)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKubernetesUpLoginKernelDown(t *testing.T) {
	w, cl := newK8sWorld(t, "")
	srv := w.up("k8-alice")
	if srv.Backend != "kubernetes" || !srv.Ready || srv.Password == "" || !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("up = %+v, want a ready kubernetes server on a NodePort of 127.0.0.1 with a generated password", srv)
	}
	// Through the Service's NodePort: login, a kernel, 6*7.
	run := kernelSession(t, srv)
	if got := strings.TrimSpace(run("print(6*7)")); got != "42" {
		t.Errorf("print(6*7) printed %q, want 42", got)
	}
	if got := strings.TrimSpace(run("import os; print(os.getuid(), os.getcwd())")); got != "1000 /home/jovyan/work" {
		t.Errorf("kernel uid and cwd = %q, want 1000 /home/jovyan/work", got)
	}

	// Nothing secret in the pod spec or the events.
	spec, _ := cl.Kubectl("get", "pod", "spinbook-k8-alice", "-o", "json")
	events, _ := cl.Kubectl("get", "events", "-o", "json")
	for _, s := range []string{srv.Password, "$argon2id$"} {
		if strings.Contains(spec, s) || strings.Contains(events, s) {
			t.Errorf("the pod spec or events show a secret (%.12s...)", s)
		}
	}

	if r := w.run("logs", "--user", "k8-alice"); r.code != 0 || !strings.Contains(r.stdout, "jupyter started") {
		t.Errorf("logs: %s", r)
	}
	if r := w.run("ls"); r.code != 0 || !strings.Contains(r.stdout, "k8-alice") {
		t.Errorf("ls: %s", r)
	}
	if r := w.run("down", "--user", "k8-alice"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if s := w.status("k8-alice"); s.State != "absent" {
		t.Errorf("status after down = %+v, want absent", s)
	}
	if out, err := cl.Kubectl("get", "pvc", "spinbook-k8-alice-work"); err != nil {
		t.Errorf("workspace claim after down: %v %s, want it kept", err, out)
	}
}

func TestKubernetesWorkspaceSurvivesDownUp(t *testing.T) {
	w, cl := newK8sWorld(t, "")
	srv := w.up("k8-bob")
	run := kernelSession(t, srv)
	run("open('/home/jovyan/work/kept.txt', 'w').write('still here')")
	if r := w.run("down", "--user", "k8-bob"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	srv = w.up("k8-bob")
	run = kernelSession(t, srv)
	if got := run("print(open('/home/jovyan/work/kept.txt').read())"); strings.TrimSpace(got) != "still here" {
		t.Fatalf("after down and up the file reads %q, want %q", got, "still here")
	}
	if r := w.run("down", "--force", "--purge", "--user", "k8-bob"); r.code != 0 {
		t.Fatalf("down --purge: %s", r)
	}
	waitFor(t, "the workspace claim deleted", time.Minute, func() bool {
		_, err := cl.Kubectl("get", "pvc", "spinbook-k8-bob-work")
		return err != nil
	})
}

// TestKubernetesBusyKernelKeepsThePod: a kernel spinning the CPU for 60 s
// (in a pod limited to half a CPU) does not fail the probes, which ask the
// agent, never Jupyter: the pod stays Running with restartCount 0 and
// Jupyter answers afterwards.
func TestKubernetesBusyKernelKeepsThePod(t *testing.T) {
	w, cl := newK8sWorld(t, "sizes:\n  tiny: {cpus: 0.5, memory: 1GiB}\n")
	r := w.run("up", "--json", "--size", "tiny", "--user", "k8-busy")
	if r.code != 0 {
		t.Fatalf("up: %s", r)
	}
	var srv server
	if err := json.Unmarshal([]byte(r.stdout), &srv); err != nil {
		t.Fatal(err)
	}
	run := kernelSession(t, srv)
	began := time.Now()
	run("import time\nt = time.time()\nwhile time.time() - t < 60: pass")
	if took := time.Since(began); took < 55*time.Second {
		t.Fatalf("the busy loop took %s, want a minute", took)
	}
	p := podJSON(t, cl, "k8-busy")
	status := p["status"].(map[string]any)
	cs := status["containerStatuses"].([]any)[0].(map[string]any)
	if status["phase"] != "Running" || cs["restartCount"].(float64) != 0 || cs["ready"] != true {
		t.Fatalf("after a busy minute: phase %v, restartCount %v, ready %v; want Running, 0, true", status["phase"], cs["restartCount"], cs["ready"])
	}
	if got := strings.TrimSpace(run("print(6*7)")); got != "42" {
		t.Errorf("after the busy minute print(6*7) printed %q", got)
	}
}

// TestKubernetesMissingImageFailsFast: up with an image that does not
// exist fails within seconds, naming the image.
func TestKubernetesMissingImageFailsFast(t *testing.T) {
	w, _ := newK8sWorld(t, "")
	cfg, _ := os.ReadFile(w.config)
	os.WriteFile(w.config, []byte(strings.Replace(string(cfg), "image: ", "image: spinbook.invalid/nope:1\n#", 1)), 0o644)
	began := time.Now()
	r := w.run("up", "--user", "k8-noimage")
	if r.code == 0 || !strings.Contains(r.stderr, "spinbook.invalid/nope:1") || !strings.Contains(r.stderr, "cannot be pulled") {
		t.Fatalf("up with a missing image: %s; want a failure naming the image", r)
	}
	if took := time.Since(began); took > 45*time.Second {
		t.Errorf("up took %s to fail, want seconds", took)
	}
}

// TestKubernetesOtherPodsCannotReachTheFrontDoor (issue 14, finding 2):
// with access.trusted_proxies set to the pod network, as the docs once
// said, a pod of the cluster — here another user's kernel — could connect
// to a server's pod directly, forge X-Forwarded-For: 127.0.0.1 and pass
// the allowlist. Each server now has a NetworkPolicy (enforced in the test
// cluster by kube-router) that keeps every pod off its ports, while the
// NodePort still serves; and up warns about the trusted pod network.
func TestKubernetesOtherPodsCannotReachTheFrontDoor(t *testing.T) {
	w, cl := newK8sWorld(t, "access:\n  allow: [127.0.0.0/8]\n  trusted_proxies: [10.244.0.0/16]\n")
	r := w.run("up", "--json", "--user", "k8-ada")
	if r.code != 0 {
		t.Fatalf("up: %s", r)
	}
	if !strings.Contains(r.stderr, "Warning: access.trusted_proxies 10.244.0.0/16 covers the pod network") {
		t.Errorf("up with the pod network in trusted_proxies gave no warning: %s", r)
	}
	var ada server
	if err := json.Unmarshal([]byte(r.stdout), &ada); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.Kubectl("get", "networkpolicy", "spinbook-k8-ada"); err != nil {
		t.Errorf("no network policy for k8-ada: %v %s", err, out)
	}
	// The front door still serves on the NodePort, from this machine.
	if got := strings.TrimSpace(kernelSession(t, ada)("print(6*7)")); got != "42" {
		t.Fatalf("ada's kernel printed %q, want 42", got)
	}
	status := podJSON(t, cl, "k8-ada")["status"].(map[string]any)
	ip, _ := status["podIP"].(string)
	if ip == "" {
		t.Fatalf("ada's pod has no IP: %v", status)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(ada.URL, "http://"), "/")

	// Another user's kernel, in another pod on the same cluster.
	eve := kernelSession(t, w.up("k8-eve"))
	for _, port := range []int{8888, 8889} {
		code := fmt.Sprintf(`import socket
try:
    s = socket.create_connection((%q, %d), timeout=3)
    s.sendall(b"GET /spinbook/login HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n")
    print("reached:", s.recv(200).split(b"\r\n")[0].decode())
except OSError as e:
    print("blocked:", type(e).__name__, e)
`, ip, port, host)
		// Enforcement follows the policy within the CNI's sync: poll (eve's
		// kernel session lasts 90 s in all).
		for deadline := time.Now().Add(30 * time.Second); ; {
			out := strings.TrimSpace(eve(code))
			if strings.HasPrefix(out, "blocked:") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("eve's kernel still reaches ada's pod at %s:%d with a forged X-Forwarded-For: %s", ip, port, out)
			}
			time.Sleep(time.Second)
		}
	}
	if r := w.run("down", "--user", "k8-ada"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if out, err := cl.Kubectl("get", "networkpolicy", "spinbook-k8-ada"); err == nil {
		t.Errorf("the network policy outlived down: %s", out)
	}
}
