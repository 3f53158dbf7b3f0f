// Package k8stest runs the project's test cluster (scripts/k8s-test-cluster)
// for the tests of the kubernetes backend: one per test binary, started on
// first use and stopped by Stop (from TestMain), and loads images into it —
// the tests' Jupyter image and the agent image — without a registry.
//
// The script allows one cluster per machine; packages whose tests run at
// the same time (go test ./...) take turns through a lock file.
package k8stest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// lockPath serializes test binaries that each want the one cluster.
const lockPath = "/run/spinbook-k8s-test.lock"

// Cluster is a running test cluster.
type Cluster struct {
	Dir        string // the script's DIR
	Kubeconfig string
	// JupyterImage (Debian's notebook 6), LabImage (docker-stacks-shaped,
	// JupyterLab 4) and AgentImage are loaded into the cluster's containerd.
	JupyterImage string
	LabImage     string
	AgentImage   string
}

var shared struct {
	once sync.Once
	c    *Cluster
	err  error
	lock *os.File
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Get returns the test binary's cluster, starting it on first use with the
// agent built from agentBinary; it fails the test (skips outside CI when
// this machine cannot run one: not root).
func Get(t *testing.T, agentBinary string) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "the kubernetes test cluster needs root (scripts/k8s-test-cluster)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c, err := Start(agentBinary)
	if err != nil {
		t.Fatalf("test cluster: %v", err)
	}
	return c
}

// Start is Get for a program that is not a test (bench/kube/run): it
// starts the cluster on first use, waiting its turn on the lock, and
// returns it or why it could not; Stop stops it.
func Start(agentBinary string) (*Cluster, error) {
	shared.once.Do(func() { shared.err = start(agentBinary) })
	if shared.err != nil {
		return nil, shared.err
	}
	return shared.c, nil
}

// Stop stops the cluster if this test binary started one.
func Stop() {
	if shared.c != nil {
		out, err := exec.Command(filepath.Join(Root(), "scripts", "k8s-test-cluster"), "down", shared.c.Dir).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8s-test-cluster down: %v\n%s", err, out)
		}
		os.RemoveAll(filepath.Dir(shared.c.Dir))
	}
	if shared.lock != nil {
		shared.lock.Close()
	}
}

func start(agentBinary string) error {
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	shared.lock = lock
	// A cluster someone started by hand: wait for it to go (the script
	// runs one per machine).
	for deadline := time.Now().Add(15 * time.Minute); ; {
		other, err := os.ReadFile("/run/spinbook-k8s-test-cluster")
		if err != nil {
			break
		}
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(other)), "pids")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another test cluster is up at %s (scripts/k8s-test-cluster down %s)", strings.TrimSpace(string(other)), strings.TrimSpace(string(other)))
		}
		time.Sleep(2 * time.Second)
	}
	parent, err := os.MkdirTemp("", "sbk8s-")
	if err != nil {
		return err
	}
	c := &Cluster{Dir: filepath.Join(parent, "c")}
	shared.c = c // so that Stop cleans up even a half-started cluster
	cmd := exec.Command(filepath.Join(Root(), "scripts", "k8s-test-cluster"), "up", c.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("scripts/k8s-test-cluster up: %v\n%s", err, tail(stderr.String(), 40))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "KUBECONFIG="); ok {
			c.Kubeconfig = v
		}
	}
	if c.Kubeconfig == "" {
		return fmt.Errorf("scripts/k8s-test-cluster up printed no KUBECONFIG=: %s", out)
	}
	if err := c.podCIDR(); err != nil {
		return err
	}
	if c.JupyterImage, err = c.loadJupyterImage("notebook6"); err != nil {
		return err
	}
	if c.LabImage, err = c.loadJupyterImage("lab4"); err != nil {
		return err
	}
	if c.AgentImage, err = c.loadAgentImage(agentBinary); err != nil {
		return err
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Import loads a docker-archive tarball into the cluster's containerd.
func (c *Cluster) Import(tarball string) error {
	out, err := exec.Command("ctr", "-a", filepath.Join(c.Dir, "run", "containerd.sock"), "-n", "k8s.io", "images", "import", tarball).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v\n%s", tarball, err, out)
	}
	return nil
}

// Kubectl runs the cluster's kubectl.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(c.Dir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// loadJupyterImage builds one of the tests' Jupyter images (a flavour of
// scripts/docker-test-image) on the tests' Docker Engine, saves it once
// under /var/cache/spinbook/images and imports it.
func (c *Cluster) loadJupyterImage(flavour string) (string, error) {
	env := os.Environ()
	if os.Getenv("DOCKER_HOST") == "" {
		env = append(env, "DOCKER_HOST=unix:///run/spinbook-docker.sock")
	}
	cmd := exec.Command(filepath.Join(Root(), "scripts", "docker-test-image"), flavour)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("scripts/docker-test-image: %w", err)
	}
	tag := strings.TrimSpace(string(out))
	saved := savedImage(tag)
	if _, err := os.Stat(saved); err != nil {
		err := atomicfile.Replace(saved, 0o644, func(tmp string) error {
			save := exec.Command("docker", "save", "-o", tmp, tag)
			save.Env = env
			if out, err := save.CombinedOutput(); err != nil {
				return fmt.Errorf("docker save %s: %v\n%s", tag, err, out)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	// docker save names the image docker.io/...: that is what the pod asks for.
	if err := c.Import(saved); err != nil {
		return "", err
	}
	return tag, nil
}

// savedImage is where loadJupyterImage keeps `docker save` of tag.
func savedImage(tag string) string {
	return filepath.Join("/var/cache/spinbook/images", "docker-save-"+strings.NewReplacer("/", "_", ":", "_").Replace(tag)+".tar")
}

// EvictImage removes one of the loaded Jupyter images (tag as in
// JupyterImage, LabImage) from the node, as if never pulled; LoadImage
// loads it again from its saved archive.
func (c *Cluster) EvictImage(tag string) error {
	out, err := exec.Command("ctr", "-a", filepath.Join(c.Dir, "run", "containerd.sock"), "-n", "k8s.io", "images", "rm", "--sync", "docker.io/"+tag).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images rm %s: %v\n%s", tag, err, out)
	}
	return nil
}

// LoadImage loads a Jupyter image EvictImage removed.
func (c *Cluster) LoadImage(tag string) error { return c.Import(savedImage(tag)) }

// loadAgentImage writes the agent image — what deploy/agent-image/Dockerfile
// builds, the static binary at /spinbook — as a docker-archive and imports it.
func (c *Cluster) loadAgentImage(binary string) (string, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	tag := "spinbook.local/agent:" + hex.EncodeToString(sum[:6])
	tarball := filepath.Join(c.Dir, "agent-image.tar")
	if err := WriteImageTar(tarball, tag, "spinbook", data); err != nil {
		return "", err
	}
	return tag, c.Import(tarball)
}

// WriteImageTar writes a docker-archive (what `docker save` writes) of a
// one-layer image tagged tag holding file /name with data, mode 0755, as
// its entrypoint.
func WriteImageTar(path, tag, name string, data []byte) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data))}); err != nil {
		return err
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return err
	}
	diff := sha256.Sum256(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/" + name}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": []string{"layer/layer.tar"}}})

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	out := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {cfgName, cfg}, {"layer/layer.tar", layer.Bytes()}} {
		if err := out.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
			f.Close()
			return err
		}
		out.Write(e.data)
	}
	if err := out.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// podCIDR gives the node the pod CIDR its CNI bridge uses, as a cluster
// that allocates node CIDRs does (the script's controller-manager does
// not): the backend reads it to admit this machine's NodePort clients.
func (c *Cluster) podCIDR() error {
	cidr, err := c.Kubectl("get", "node", "localhost", "-o", "jsonpath={.spec.podCIDR}")
	if err != nil {
		return fmt.Errorf("kubectl get node: %v: %s", err, cidr)
	}
	if strings.TrimSpace(cidr) != "" {
		return nil
	}
	out, err := c.Kubectl("patch", "node", "localhost", "-p", `{"spec":{"podCIDR":"10.244.0.0/24","podCIDRs":["10.244.0.0/24"]}}`)
	if err != nil {
		return fmt.Errorf("kubectl patch node: %v: %s", err, out)
	}
	return nil
}
