package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/spinbook/spinbook/internal/backend"
)

// faultPorts keeps the fault suite's local servers clear of the other
// tests' ports.
const faultPorts = "21400-21599"

// faultEnv is one backend the fault suite runs on: a world whose config
// names a faultRemote the servers reach, and the backend's own ways to
// reach into a server from outside, as a fault does.
type faultEnv struct {
	name   string
	w      *world
	remote *faultRemote
	// newWorld makes another world of this backend on the same remote,
	// with extra config (the idle row needs its own idle settings).
	newWorld func(t *testing.T, extra string, users ...string) *world
	backend  faultBackend
	// user names row i's user; nil means one user per row.
	user func(i int) string
	// omit names the rows not run on this backend, and why.
	omit map[string]string
}

// faultBackend is what differs between backends when a fault strikes.
type faultBackend interface {
	// workspace is the host path of user's workspace, readable (and
	// writable, see fixOwner) whether or not the server runs.
	workspace(t *testing.T, w *world, user string) string
	// fixOwner gives every file under dir to the workspace's owner after
	// the test wrote there as root.
	fixOwner(t *testing.T, dir string)
	// bundleDirs are where bundles of user's work survive the server.
	bundleDirs(t *testing.T, w *world, user string) []string
	// agentPID is the host pid of user's agent, as the backend records it.
	agentPID(t *testing.T, w *world, user string) int
	// reboot kills user's agent, Jupyter and kernels with SIGKILL, as a
	// machine that loses power does.
	reboot(t *testing.T, w *world, user string)
	// smallDisk makes user's (not yet existing) workspace a disk of size
	// bytes that stays mounted across down and up.
	smallDisk(t *testing.T, w *world, user string, size int64)
}

// repoConfig is the repo section naming remote; with a token only when the
// remote takes it from the client.
func repoConfig(r *faultRemote) string {
	cfg := fmt.Sprintf("repo:\n  url: %s\n  branch: main\n", r.URL())
	if r.inject == "" {
		cfg += "  token: ${env:SPINBOOK_E2E_GIT_TOKEN}\n"
	}
	return cfg
}

// newLocalFaultEnv: servers are local processes; the remote listens on
// loopback and takes the token from the agent.
func newLocalFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	needJupyter(t)
	e := &faultEnv{name: "local", backend: localFaults{}}
	e.remote = newFaultRemote(t, "127.0.0.1", false)
	e.newWorld = func(t *testing.T, extra string, _ ...string) *world {
		w := newWorldPorts(t, repoConfig(e.remote)+extra, faultPorts)
		w.env = append(w.env, "SPINBOOK_E2E_GIT_TOKEN="+e.remote.token)
		return w
	}
	e.w = e.newWorld(t, "")
	return e
}

type localFaults struct{}

func (localFaults) workspace(t *testing.T, w *world, user string) string {
	return filepath.Join(w.stateDir, "workspaces", user)
}

// fixOwner hands what the test (root) wrote back to the workspace's owner,
// the server's own OS account (see README, "Several people on one machine").
func (localFaults) fixOwner(t *testing.T, dir string) { handBack(t, dir) }

func (localFaults) bundleDirs(t *testing.T, w *world, user string) []string {
	return []string{filepath.Join(w.stateDir, "servers", user, "bundles")}
}

func (localFaults) agentPID(t *testing.T, w *world, user string) int {
	t.Helper()
	var rec struct{ PID int }
	data, err := os.ReadFile(filepath.Join(w.stateDir, "servers", user, "record.json"))
	if err != nil {
		t.Fatalf("the local backend's record of %s's agent: %v", user, err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.PID == 0 {
		t.Fatalf("record.json of %s: %v %s", user, err, data)
	}
	return rec.PID
}

func (l localFaults) reboot(t *testing.T, w *world, user string) {
	t.Helper()
	pids := []int{l.agentPID(t, w, user)}
	var j struct{ PID int }
	if data, err := os.ReadFile(filepath.Join(w.stateDir, "servers", user, "agent", "jupyter.json")); err == nil && json.Unmarshal(data, &j) == nil && j.PID > 0 {
		pids = append(pids, j.PID)
	} else {
		t.Fatalf("no record of %s's Jupyter: %v", user, err)
	}
	// Every process of the server: agent, Jupyter, kernels.
	for _, p := range w.processes() {
		if pid, err := strconv.Atoi(p[:strings.IndexByte(p, ':')]); err == nil {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (l localFaults) smallDisk(t *testing.T, w *world, user string, size int64) {
	t.Helper()
	dir := l.workspace(t, w, user)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %d-byte tmpfs as the workspace (the fault suite runs as root, as CI does): %v %s", size, err, out)
	}
	t.Cleanup(func() {
		w.run("down", "--force", "--user", user) // nothing of the server may hold the disk
		exec.Command("umount", "-l", dir).Run()
	})
}

// newDockerFaultEnv: servers are containers on the tests' Engine; the
// remote listens on the network's gateway, which containers reach, and
// adds the token itself (spinbook refuses to send a token over plain HTTP
// beyond loopback).
func newDockerFaultEnv(t *testing.T, users []string) *faultEnv {
	t.Helper()
	w, cli := newDockerWorld(t, "", users...)
	if r := w.run("site", "up"); r.code != 0 {
		t.Fatalf("site up: %s", r)
	}
	n, err := cli.NetworkInspect(t.Context(), "spinbook-e2e", network.InspectOptions{})
	if err != nil || len(n.IPAM.Config) == 0 {
		t.Fatalf("network spinbook-e2e: %+v, %v", n.IPAM, err)
	}
	b := &dockerFaults{cli: cli}
	e := &faultEnv{name: "docker", backend: b}
	e.remote = newFaultRemote(t, n.IPAM.Config[0].Gateway, true)
	appendConfig(t, w, repoConfig(e.remote))
	e.w = w
	e.newWorld = func(t *testing.T, extra string, users ...string) *world {
		w, _ := newDockerWorld(t, repoConfig(e.remote)+extra, users...)
		return w
	}
	return e
}

func appendConfig(t *testing.T, w *world, cfg string) {
	t.Helper()
	f, err := os.OpenFile(w.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + cfg); err != nil {
		t.Fatal(err)
	}
}

type dockerFaults struct{ cli *client.Client }

func (d *dockerFaults) workspace(t *testing.T, w *world, user string) string {
	t.Helper()
	v, err := d.cli.VolumeInspect(t.Context(), "spinbook-"+user+"-work")
	if err != nil {
		t.Fatalf("%s's workspace volume: %v", user, err)
	}
	return v.Mountpoint
}

// fixOwner gives dir's files to the owner of its .git (the server's user,
// who cloned it), else of dir.
func (d *dockerFaults) fixOwner(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, ".git"))
	if err != nil {
		st, err = os.Stat(dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", sys.Uid, sys.Gid), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown the workspace: %v %s", err, out)
	}
}

func (d *dockerFaults) bundleDirs(t *testing.T, w *world, user string) []string {
	return []string{filepath.Join(d.workspace(t, w, user), ".git", "spinbook-bundles")}
}

// agentPID finds the agent among the container's processes (docker-init
// is PID 1 and the agent its child).
func (d *dockerFaults) agentPID(t *testing.T, w *world, user string) int {
	t.Helper()
	top, err := d.cli.ContainerTop(t.Context(), "spinbook-"+user, []string{"-eo", "pid,args"})
	if err != nil {
		t.Fatalf("processes of %s's container: %v", user, err)
	}
	for _, p := range top.Processes {
		if len(p) == 2 && strings.Contains(p[1], " agent ") && !strings.Contains(p[1], "docker-init") {
			pid, err := strconv.Atoi(p[0])
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no agent among the processes of %s's container: %v", user, top.Processes)
	return 0
}

func (d *dockerFaults) reboot(t *testing.T, w *world, user string) {
	t.Helper()
	if err := d.cli.ContainerKill(t.Context(), "spinbook-"+user, "KILL"); err != nil {
		t.Fatalf("kill %s's container: %v", user, err)
	}
}

// smallDisk makes user's workspace volume a tmpfs of size bytes, and keeps
// it mounted (a tmpfs volume lives only while a container uses it) with a
// holder container, so that it outlives the server as a disk does.
func (d *dockerFaults) smallDisk(t *testing.T, w *world, user string, size int64) {
	t.Helper()
	name := "spinbook-" + user + "-work"
	if _, err := d.cli.VolumeCreate(t.Context(), volume.CreateOptions{
		Name: name, Driver: "local",
		DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": fmt.Sprintf("size=%d,uid=1000,gid=100", size)},
		Labels:     map[string]string{backend.LabelManaged: backend.ManagedBy, backend.LabelUser: user},
	}); err != nil {
		t.Fatalf("create a tmpfs volume: %v", err)
	}
	img := imageOf(t, w)
	holder := "spinbook-e2e-holder-" + user
	d.cli.ContainerRemove(t.Context(), holder, container.RemoveOptions{Force: true})
	c, err := d.cli.ContainerCreate(t.Context(), &container.Config{Image: img, Entrypoint: []string{"sleep", "infinity"}},
		&container.HostConfig{Binds: []string{name + ":/disk"}}, nil, nil, holder)
	if err != nil {
		t.Fatalf("create the disk holder: %v", err)
	}
	if err := d.cli.ContainerStart(t.Context(), c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start the disk holder: %v", err)
	}
	t.Cleanup(func() {
		w.run("down", "--force", "--user", user)
		ctx := context.Background() // t.Context() is done when cleanups run
		d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		d.cli.VolumeRemove(ctx, name, true)
	})
}

// imageOf is the image a docker world's config names.
func imageOf(t *testing.T, w *world) string {
	t.Helper()
	data, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if img, ok := strings.CutPrefix(l, "image: "); ok {
			return strings.TrimSpace(img)
		}
	}
	t.Fatalf("no image in %s", w.config)
	return ""
}
