package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// dockerSocket is where scripts/setup --for-tests starts the tests' Engine.
const dockerSocket = "/run/spinbook-docker.sock"

// newDockerWorld is a world whose servers are containers of the tests'
// Jupyter image on the tests' Engine, on a network of its own, for users
// (whatever an earlier run left of theirs is removed first). It returns an
// Engine client to look at what spinbook made.
func newDockerWorld(t *testing.T, extra string, users ...string) (*world, *client.Client) {
	t.Helper()
	return newDockerWorldOn(t, "notebook6", extra, users...)
}

// newDockerWorldOn is newDockerWorld on one of scripts/docker-test-image's
// images: notebook6 (Debian's notebook 6) or lab4 (docker-stacks-shaped,
// JupyterLab 4).
func newDockerWorldOn(t *testing.T, flavour, extra string, users ...string) (*world, *client.Client) {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat(dockerSocket); err == nil {
			t.Setenv("DOCKER_HOST", "unix://"+dockerSocket)
		}
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		_, err = cli.Ping(t.Context())
	}
	if err != nil {
		msg := "no Docker Engine (" + err.Error() + "): run scripts/setup --for-tests, which starts one at " + dockerSocket
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { cli.Close() })
	for _, u := range users {
		cli.ContainerRemove(t.Context(), "spinbook-"+u, container.RemoveOptions{Force: true})
		cli.VolumeRemove(t.Context(), "spinbook-"+u+"-work", true)
	}

	out, err := exec.Command("../scripts/docker-test-image", flavour).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("scripts/docker-test-image: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("scripts/docker-test-image: %v", err)
	}
	img := strings.TrimSpace(string(out))

	w := &world{t: t, stateDir: t.TempDir(), users: map[string]bool{}}
	w.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	cfg := fmt.Sprintf("backend: docker\nimage: %s\ndocker:\n  network: spinbook-e2e\n  stop_grace: 20s\n%s", img, extra)
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.env = append(os.Environ(), "SPINBOOK_CONFIG="+w.config, "SPINBOOK_USER=")
	t.Cleanup(func() {
		for u := range w.users {
			w.run("down", "--force", "--purge", "--user", u)
		}
	})
	return w, cli
}

// kernelSession logs in at srv and opens a kernel websocket; run executes
// code on it and returns its stdout.
func kernelSession(t *testing.T, srv server) (run func(code string) string) {
	t.Helper()
	b := newBrowser(t, srv.URL, "")
	if resp := b.login(t, srv.Password); resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %s", resp.Status)
	}
	id := startKernel(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	conn, _, err := dialKernel(ctx, b, id, b.origin())
	if err != nil {
		t.Fatalf("kernel websocket: %v", err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return func(code string) string { return execute(ctx, t, conn, code) }
}

func TestDockerUpLoginKernelDown(t *testing.T) {
	w, cli := newDockerWorld(t, "", "dk-alice")
	srv := w.up("dk-alice")
	if srv.Backend != "docker" || !srv.Ready || srv.Password == "" || !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("up = %+v, want a ready docker server on 127.0.0.1 with a generated password", srv)
	}

	// Health through the published port, answered by the agent.
	resp, err := http.Get(strings.TrimSuffix(srv.HealthURL, "/healthz") + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz: %v %v", resp, err)
	}
	resp.Body.Close()

	run := kernelSession(t, srv)
	if got := strings.TrimSpace(run("print(6*7)")); got != "42" {
		t.Errorf("print(6*7) printed %q, want 42", got)
	}
	// Jupyter, and so its kernels, run as the image's user, not root.
	if got := strings.TrimSpace(run("import os; print(os.getuid(), os.getcwd())")); got != "1000 /home/jovyan/work" {
		t.Errorf("kernel uid and cwd = %q, want 1000 /home/jovyan/work", got)
	}

	// Nothing secret in what the Engine shows of the container.
	c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-alice")
	if err != nil {
		t.Fatal(err)
	}
	shown, _ := json.Marshal(map[string]any{"env": c.Config.Env, "cmd": c.Config.Cmd, "entrypoint": c.Config.Entrypoint, "labels": c.Config.Labels, "args": c.Args, "path": c.Path})
	for _, s := range []string{srv.Password, "$argon2id$"} {
		if strings.Contains(string(shown), s) {
			t.Errorf("container config shows a secret (%.12s...): %s", s, shown)
		}
	}

	// logs shows the agent's and Jupyter's output; -f keeps following.
	if r := w.run("logs", "--user", "dk-alice"); r.code != 0 || !strings.Contains(r.stdout, "jupyter started") {
		t.Errorf("logs: %s", r)
	}
	followLogs(t, w, "dk-alice", "path=/api/kernels")

	if r := w.run("down", "--user", "dk-alice"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if s := w.status("dk-alice"); s.State != "absent" {
		t.Errorf("status after down = %+v, want absent", s)
	}
	if _, err := cli.VolumeInspect(t.Context(), "spinbook-dk-alice-work"); err != nil {
		t.Errorf("workspace volume after down: %v, want it kept", err)
	}
}

// followLogs runs `logs -f` and waits for a line containing want, proving it
// streams the container's log.
func followLogs(t *testing.T, w *world, user, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "logs", "-f", "--user", user)
	cmd.Env = w.env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return
		}
	}
	t.Errorf("logs -f ended without a line containing %q", want)
}

func TestDockerWorkspaceSurvivesDownUpAndKill(t *testing.T) {
	w, cli := newDockerWorld(t, "", "dk-bob")
	srv := w.up("dk-bob")
	run := kernelSession(t, srv)
	run("open('/home/jovyan/work/kept.txt', 'w').write('still here')")

	if r := w.run("down", "--user", "dk-bob"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	srv = w.up("dk-bob")
	run = kernelSession(t, srv)
	if got := run("print(open('/home/jovyan/work/kept.txt').read())"); strings.TrimSpace(got) != "still here" {
		t.Fatalf("after down and up the file reads %q, want %q", got, "still here")
	}

	// Killed behind spinbook's back: status says failed, up brings it back.
	if err := cli.ContainerKill(t.Context(), "spinbook-dk-bob", "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status failed after docker kill", 30*time.Second, func() bool { return w.status("dk-bob").State == "failed" })
	srv = w.up("dk-bob")
	if !srv.Ready || srv.Password == "" {
		t.Fatalf("up after kill = %+v, want a new ready server", srv)
	}
	run = kernelSession(t, srv)
	if got := strings.TrimSpace(run("print(6*7, open('/home/jovyan/work/kept.txt').read())")); got != "42 still here" {
		t.Errorf("after kill and up the kernel printed %q", got)
	}

	// down --purge deletes the workspace for good.
	if r := w.run("down", "--purge", "--user", "dk-bob"); r.code != 0 || !strings.Contains(r.stdout, "deleted") {
		t.Fatalf("down --purge: %s", r)
	}
	if _, err := cli.VolumeInspect(t.Context(), "spinbook-dk-bob-work"); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume after down --purge: %v, want not found", err)
	}
}

func TestDockerSizeAndSite(t *testing.T) {
	w, cli := newDockerWorld(t, "sizes:\n  small: {cpus: 0.5, memory: 768MiB}\n", "dk-carol")
	r := w.run("up", "--size", "huge", "--user", "dk-carol")
	if r.code != 2 || !strings.Contains(r.stderr, "valid: small") {
		t.Fatalf("up --size huge: %s\nwant exit 2 listing the valid sizes", r)
	}
	if r := w.run("site", "up"); r.code != 0 {
		t.Fatalf("site up: %s", r)
	}
	if r := w.run("up", "--size", "small", "--user", "dk-carol"); r.code != 0 {
		t.Fatalf("up --size small: %s", r)
	}
	c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-carol")
	if err != nil {
		t.Fatal(err)
	}
	if c.HostConfig.NanoCPUs != 500_000_000 || c.HostConfig.Memory != 768<<20 {
		t.Errorf("NanoCpus, Memory = %d, %d; want 5e8, 768MiB", c.HostConfig.NanoCPUs, c.HostConfig.Memory)
	}
	r = w.run("ls", "--json")
	var list []server
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) == 0 {
		t.Fatalf("ls --json: %v\n%s", err, r)
	}
	found := false
	for _, s := range list {
		found = found || (s.User == "dk-carol" && s.State == "running")
	}
	if !found {
		t.Errorf("ls = %+v, want dk-carol running", list)
	}
	if r := w.run("site", "down"); r.code == 0 || !strings.Contains(r.stderr, "dk-carol") {
		t.Errorf("site down with a server: %s\nwant a refusal naming dk-carol", r)
	}
	if r := w.run("down", "--user", "dk-carol"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if r := w.run("site", "down"); r.code != 0 {
		t.Errorf("site down with no server left: %s", r)
	}
	if _, err := cli.NetworkInspect(t.Context(), "spinbook-e2e", network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network after site down: %v, want not found", err)
	}
}

// TestDockerRepoSavedOnDown: the team repo comes into the container's
// workspace on up (git and spinbook's agent inside the container), and down
// saves a change made in a kernel back to the remote before the container
// goes.
func TestDockerRepoSavedOnDown(t *testing.T) {
	w, cli := newDockerWorld(t, "", "dk-gina")
	g := dockerGitRemote(t, w, cli, nil)

	s := w.up("dk-gina")
	run := kernelSession(t, s)
	if got := strings.TrimSpace(run("print(open('/home/jovyan/work/a.txt').read())")); got != strings.TrimSpace(gitSeed["a.txt"]) {
		t.Fatalf("a.txt in the container's workspace reads %q, want the repo's", got)
	}
	run("open('/home/jovyan/work/from-container.txt', 'w').write('made in a container\\n')")

	if r := w.run("down", "--user", "dk-gina"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if got := g.Tree(t, "main")["from-container.txt"]; got != "made in a container\n" {
		t.Errorf("remote main after down holds from-container.txt = %q, want the kernel's file", got)
	}
}
