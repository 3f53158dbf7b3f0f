package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/backendtest"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
)

// testSocket is where scripts/setup --for-tests starts the tests' Engine.
const testSocket = "/run/spinbook-docker.sock"

// engine points DOCKER_HOST at the tests' Engine and returns a client, or
// skips (fails in CI) naming what to run.
func engine(t *testing.T) *client.Client {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat(testSocket); err == nil {
			t.Setenv("DOCKER_HOST", "unix://"+testSocket)
		}
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		_, err = cli.Ping(t.Context())
	}
	if err != nil {
		msg := "no Docker Engine (" + err.Error() + "): run scripts/setup --for-tests, which starts one at " + testSocket
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testImage returns the Jupyter image the tests run, built by
// scripts/docker-test-image (in seconds when it exists).
func testImage(t *testing.T) string {
	t.Helper()
	if img := os.Getenv("SPINBOOK_TEST_IMAGE"); img != "" {
		return img
	}
	imageOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "docker-test-image")
		out, err := exec.Command(script).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = errors.New(err.Error() + ": " + string(ee.Stderr))
			}
			imageErr = err
			return
		}
		imageTag = strings.TrimSpace(string(out))
	})
	if imageErr != nil {
		t.Fatalf("scripts/docker-test-image: %v", imageErr)
	}
	return imageTag
}

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

// testConfig is a docker config on the tests' image and network.
func testConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.Backend = "docker"
	cfg.Image = testImage(t)
	cfg.Docker.Network = "spinbook-test"
	cfg.Docker.StopGrace = "10s"
	cfg.Sizes = map[string]config.Size{"small": {CPUs: "1.5", Memory: "512MiB", Shm: "128MiB"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newDocker(t *testing.T, cfg *config.Config) *Docker {
	t.Helper()
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), backendtest.BuildAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// cleanupUser removes user's container and volume when the test ends.
func cleanupUser(t *testing.T, d *Docker, user string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d.Down(ctx, user, func(backend.Event) {})
		d.Purge(ctx, user, func(backend.Event) {})
	})
}

func TestConformance(t *testing.T) {
	engine(t)
	cfg := testConfig(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		d := newDocker(t, cfg)
		for _, u := range []string{"conf-a", "conf-b", "conf-c", "conf-d"} {
			cleanupUser(t, d, u)
		}
		return d
	})
}

func spec(t *testing.T, user string) backend.Spec {
	hash, err := secret.HashPassword("docker-test-password")
	if err != nil {
		t.Fatal(err)
	}
	return backend.Spec{User: user, Agent: backend.AgentSpec{PasswordHash: hash}}
}

func nop(backend.Event) {}

func TestSizeSetsLimits(t *testing.T) {
	cli := engine(t)
	d := newDocker(t, testConfig(t))
	cleanupUser(t, d, "size-a")
	s := spec(t, "size-a")
	s.Size = "small"
	if _, err := d.Up(t.Context(), s, nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	c, err := cli.ContainerInspect(t.Context(), ContainerName("size-a"))
	if err != nil {
		t.Fatal(err)
	}
	hc := c.HostConfig
	if hc.NanoCPUs != 1_500_000_000 || hc.Memory != 512<<20 || hc.ShmSize != 128<<20 {
		t.Errorf("NanoCpus, Memory, ShmSize = %d, %d, %d; want 1.5e9, 512MiB, 128MiB", hc.NanoCPUs, hc.Memory, hc.ShmSize)
	}
	if c.Config.Labels[backend.LabelSize] != "small" {
		t.Errorf("labels = %v, want %s=small", c.Config.Labels, backend.LabelSize)
	}

	s.Size = "huge"
	d.Down(t.Context(), "size-a", nop)
	if _, err := d.Up(t.Context(), s, nop); err == nil || !strings.Contains(err.Error(), "valid: small") {
		t.Errorf("Up with an unknown size = %v, want an error listing the valid sizes", err)
	}
}

func TestMissingImageLeavesNothing(t *testing.T) {
	cli := engine(t)
	cfg := testConfig(t)
	cfg.Image = "spinbook-test/no-such-image:missing"
	d := newDocker(t, cfg)
	cleanupUser(t, d, "noimage")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	began := time.Now()
	_, err := d.Up(ctx, spec(t, "noimage"), nop)
	if err == nil || !strings.Contains(err.Error(), "pull image spinbook-test/no-such-image:missing") {
		t.Fatalf("Up = %v, want a pull error naming the image", err)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("Up took %s to fail, want fast", took)
	}
	if _, err := cli.ContainerInspect(t.Context(), ContainerName("noimage")); !cerrdefs.IsNotFound(err) {
		t.Errorf("container inspect after the failed Up = %v, want not found", err)
	}
	vols, err := cli.VolumeList(t.Context(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("name", VolumeName("noimage")))})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) != 0 {
		t.Errorf("volumes after the failed Up = %v, want none", vols.Volumes)
	}
}

func TestImageWithoutJupyterSaysSo(t *testing.T) {
	engine(t)
	d := newDocker(t, testConfig(t))
	cleanupUser(t, d, "nojupyter")
	s := spec(t, "nojupyter")
	s.Agent.JupyterCommand = []string{"/no/such/jupyter", "lab"}
	_, err := d.Up(t.Context(), s, nop)
	if err == nil || !strings.Contains(err.Error(), "/no/such/jupyter") {
		t.Fatalf("Up = %v, want the agent's error naming the missing jupyter command", err)
	}
	if st, _ := d.Status(t.Context(), "nojupyter"); st.State != backend.Absent {
		t.Errorf("Status after the failed Up = %+v, want Absent (no container left)", st)
	}
}

func TestKilledContainerComesBack(t *testing.T) {
	cli := engine(t)
	d := newDocker(t, testConfig(t))
	cleanupUser(t, d, "killed")
	if _, err := d.Up(t.Context(), spec(t, "killed"), nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := cli.ContainerKill(t.Context(), ContainerName("killed"), "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := d.Status(t.Context(), "killed")
		if err != nil {
			t.Fatal(err)
		}
		if st.State == backend.Failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status after docker kill = %+v, want failed", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv, err := d.Up(t.Context(), spec(t, "killed"), nop)
	if err != nil || !srv.Started || !srv.Ready {
		t.Fatalf("Up after kill = %+v, %v; want a started, ready server", srv, err)
	}
}

func TestListAndSite(t *testing.T) {
	cli := engine(t)
	cfg := testConfig(t)
	cfg.Docker.Network = "spinbook-test-site"
	d := newDocker(t, cfg)
	cleanupUser(t, d, "site-a")
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), "spinbook-test-site") })
	if err := d.SiteUp(t.Context(), nop); err != nil {
		t.Fatalf("SiteUp: %v", err)
	}
	if _, err := d.Up(t.Context(), spec(t, "site-a"), nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := d.SiteDown(t.Context(), nop); err == nil || !strings.Contains(err.Error(), "site-a") {
		t.Fatalf("SiteDown with a server on the network = %v, want an error naming site-a", err)
	}
	for _, name := range []string{ContainerName("site-a")} {
		c, err := cli.ContainerInspect(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Config.Labels[backend.LabelManaged] != backend.ManagedBy || c.Config.Labels[backend.LabelUser] != "site-a" {
			t.Errorf("container labels = %v", c.Config.Labels)
		}
	}
	v, err := cli.VolumeInspect(t.Context(), VolumeName("site-a"))
	if err != nil || v.Labels[backend.LabelManaged] != backend.ManagedBy || v.Labels[backend.LabelUser] != "site-a" {
		t.Errorf("volume = %+v, %v; want it labelled", v.Labels, err)
	}
	if err := d.Down(t.Context(), "site-a", nop); err != nil {
		t.Fatal(err)
	}
	if err := d.SiteDown(t.Context(), nop); err != nil {
		t.Fatalf("SiteDown with no server: %v", err)
	}
	if _, err := cli.NetworkInspect(t.Context(), "spinbook-test-site", network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network after SiteDown: %v, want not found", err)
	}
}

func TestNoSecretInContainerConfig(t *testing.T) {
	cli := engine(t)
	d := newDocker(t, testConfig(t))
	cleanupUser(t, d, "secrets")
	s := spec(t, "secrets")
	canary := "canary-" + strings.Repeat("7", 24)
	s.Agent.Secrets = []string{canary}
	if _, err := d.Up(t.Context(), s, nop); err != nil {
		t.Fatalf("Up: %v", err)
	}
	c, err := cli.ContainerInspect(t.Context(), ContainerName("secrets"))
	if err != nil {
		t.Fatal(err)
	}
	// Env, Cmd, Entrypoint, labels, and the rest the Engine keeps.
	shown, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{s.Agent.PasswordHash, canary} {
		if strings.Contains(string(shown), secret) {
			t.Errorf("container inspect shows a secret (%.16s...)", secret)
		}
	}
	// The spec reached the agent on its stdin: no file in the container
	// holds the password hash or a secret (the workspace, home, tmpfs, the
	// agent's directory and /tmp searched).
	ex, err := cli.ContainerExecCreate(t.Context(), c.ID, container.ExecOptions{
		Cmd:          []string{"grep", "-rlF", "-e", s.Agent.PasswordHash, "-e", canary, "/run/spinbook", "/home", "/tmp", agentDir},
		AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	hj, err := cli.ContainerExecAttach(t.Context(), ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bytes.Buffer
	stdcopy.StdCopy(&found, io.Discard, hj.Reader)
	hj.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := cli.ContainerExecInspect(t.Context(), ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running {
			if st.ExitCode != 1 { // grep: 1 is "no match"
				t.Errorf("grep for the secrets exited %d; files holding them: %q", st.ExitCode, found.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exec did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentVolume: a new agent build is put into a volume of its own once,
// which servers mount read-only; a volume whose copy was never marked
// whole (an up cut short) is filled again; site down removes the agent's
// volumes no server uses and keeps one in use, with its ready volume.
func TestAgentVolume(t *testing.T) {
	cli := engine(t)
	d := newDocker(t, testConfig(t))
	// An agent of its own (bytes after an ELF's end do not change how it
	// runs), so that its volume is new to this Engine.
	own := filepath.Join(t.TempDir(), "spinbook-agent")
	data, err := os.ReadFile(d.agentPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, append(data, []byte(t.Name()+time.Now().String())...), 0o755); err != nil {
		t.Fatal(err)
	}
	d.agentPath = own
	bin, err := d.checkAgent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	vol, ready := agentVolumes(bin.sum)
	t.Cleanup(func() {
		cli.VolumeRemove(context.Background(), vol, true)
		cli.VolumeRemove(context.Background(), ready, true)
	})
	exists := func(name string) bool {
		_, err := cli.VolumeInspect(t.Context(), name)
		return err == nil
	}
	cleanupUser(t, d, "agentvol")
	var events []string
	progress := func(ev backend.Event) { events = append(events, ev.Message) }
	if _, err := d.Up(t.Context(), spec(t, "agentvol"), progress); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if !exists(vol) || !exists(ready) {
		t.Fatalf("after the first Up: volume %s %v, %s %v; want both", vol, exists(vol), ready, exists(ready))
	}
	if !slices.ContainsFunc(events, func(m string) bool { return strings.Contains(m, vol) }) {
		t.Errorf("the first Up did not say it filled %s: %q", vol, events)
	}
	c, err := cli.ContainerInspect(t.Context(), ContainerName("agentvol"))
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	for _, m := range c.Mounts {
		if m.Name == vol {
			mounted = m.Destination == agentDir && !m.RW
		}
	}
	if !mounted {
		t.Errorf("the server's mounts %+v: want %s read-only at %s", c.Mounts, vol, agentDir)
	}
	// In use: site down's sweep keeps it and its ready volume.
	if err := d.removeAgentVolumes(t.Context(), nop); err != nil {
		t.Fatal(err)
	}
	if !exists(vol) || !exists(ready) {
		t.Fatal("removeAgentVolumes removed the volume of a running server's agent")
	}
	// A copy never marked whole is made again, and the server starts.
	if err := d.Down(t.Context(), "agentvol", nop); err != nil {
		t.Fatal(err)
	}
	if err := cli.VolumeRemove(t.Context(), ready, false); err != nil {
		t.Fatal(err)
	}
	events = nil
	if _, err := d.Up(t.Context(), spec(t, "agentvol"), progress); err != nil {
		t.Fatalf("Up after the ready volume went: %v", err)
	}
	if !exists(ready) || !slices.ContainsFunc(events, func(m string) bool { return strings.Contains(m, vol) }) {
		t.Errorf("the volume was not filled again: ready %v, events %q", exists(ready), events)
	}
	// A third Up of the same agent copies nothing.
	if err := d.Down(t.Context(), "agentvol", nop); err != nil {
		t.Fatal(err)
	}
	events = nil
	if _, err := d.Up(t.Context(), spec(t, "agentvol"), progress); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if slices.ContainsFunc(events, func(m string) bool { return strings.Contains(m, vol) }) {
		t.Errorf("Up filled the volume again though it was whole: %q", events)
	}
	if err := d.Down(t.Context(), "agentvol", nop); err != nil {
		t.Fatal(err)
	}
	if err := d.removeAgentVolumes(t.Context(), nop); err != nil {
		t.Fatal(err)
	}
	if exists(vol) || exists(ready) {
		t.Errorf("after Down, removeAgentVolumes left %s (%v) or %s (%v)", vol, exists(vol), ready, exists(ready))
	}
}
