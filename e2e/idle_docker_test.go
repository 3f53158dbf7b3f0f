package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// TestDockerIdleStop: on docker the idle agent exits, so the container
// stops and its CPU, memory and GPUs are free; the workspace volume is
// kept and the next up starts the server again. ls --json shows the size
// and its price.
func TestDockerIdleStop(t *testing.T) {
	w, cli := newDockerWorld(t, "idle: {stop_after: 6s, warn_before: 4s}\nsizes:\n  tiny: {price_per_hour: 0.5}\n", "dk-idle")
	if r := w.run("up", "--json", "--user", "dk-idle", "--size", "tiny"); r.code != 0 {
		t.Fatalf("up --size tiny: %s", r)
	}
	var ls []idleServer
	r := w.run("ls", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, r)
	}
	found := false
	for _, s := range ls {
		if s.User == "dk-idle" {
			found = true
			if s.Size != "tiny" || s.CostPerHour == nil || *s.CostPerHour != 0.5 || s.IdleSeconds == nil || s.StopsAt == nil {
				t.Errorf("ls --json for the docker server = %+v, want size tiny at 0.5/h with idle time and stops_at", s)
			}
		}
	}
	if !found {
		t.Fatalf("ls --json does not list dk-idle:\n%s", r)
	}

	waitFor(t, "the idle stop", 90*time.Second, func() bool { return w.idleStatus("dk-idle").State != "running" })
	if st := w.idleStatus("dk-idle"); st.State != "stopped" {
		t.Errorf("after the idle stop: %+v, want stopped", st)
	}
	c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-idle")
	if err == nil && (c.State.Running || c.State.ExitCode != 0) {
		t.Errorf("container after the idle stop: running %v, exit code %d; want exited with 0", c.State.Running, c.State.ExitCode)
	}
	if _, err := cli.VolumeInspect(t.Context(), "spinbook-dk-idle-work"); err != nil {
		t.Errorf("the workspace volume after the idle stop: %v", err)
	}
	if r := w.run("logs", "--user", "dk-idle"); r.code == 0 && !strings.Contains(r.stdout+r.stderr, "idle: no activity for 6s") {
		t.Errorf("the server log does not say why it stopped:\n%s", lastLines(r.stdout+r.stderr, 20))
	}
	if s := w.up("dk-idle"); !s.Ready {
		t.Errorf("up after the idle stop = %+v, want a ready server", s)
	}
}

// TestDockerIdleStopWaitsForUnsavedWork: a docker server whose idle stop
// comes while its remote is down keeps its container running and says why
// in status; the work stays committed on the workspace volume; once the
// remote answers again the agent's next try pushes it and the container
// stops.
func TestDockerIdleStopWaitsForUnsavedWork(t *testing.T) {
	w, cli := newDockerWorld(t, "idle: {stop_after: 6s, warn_before: 3s}\n", "dk-una")
	// The remote answers through a gate the test can close.
	var down atomic.Bool
	g := dockerGitRemote(t, w, cli, func(rw http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		}
		return down.Load()
	})

	w.up("dk-una")
	containerOutput(t, cli, "spinbook-dk-una", "sh", "-c", "echo 'made in a container' > /home/jovyan/work/from-container.txt")
	down.Store(true)

	var st idleServer
	waitFor(t, "status to say the stop is blocked", 90*time.Second, func() bool {
		st = w.idleStatus("dk-una")
		return st.StopBlocked != "" || st.State != "running"
	})
	if st.State != "running" || !strings.HasPrefix(st.StopBlocked, "push failed: ") {
		t.Fatalf("with the remote down at the idle stop: state %q, stop_blocked %q, detail %q; want running, push failed", st.State, st.StopBlocked, st.Detail)
	}
	if c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-una"); err != nil || !c.State.Running {
		t.Errorf("the container with the stop blocked: %v; want it running", err)
	}
	if got := containerOutput(t, cli, "spinbook-dk-una", "git", "-c", "safe.directory=*", "-C", "/home/jovyan/work", "show", "HEAD:from-container.txt"); got != "made in a container\n" {
		t.Errorf("the workspace's HEAD holds from-container.txt = %q, want the work committed", got)
	}
	if got := g.Tree(t, "main")["from-container.txt"]; got != "" {
		t.Fatalf("the remote took the work while down: %q", got)
	}

	down.Store(false)
	waitFor(t, "the retry to save and stop the server", 120*time.Second, func() bool { return w.idleStatus("dk-una").State != "running" })
	if got := g.Tree(t, "main")["from-container.txt"]; got != "made in a container\n" {
		t.Errorf("the remote main after the retry holds from-container.txt = %q, want the kernel's file", got)
	}
	if c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-una"); err == nil && (c.State.Running || c.State.ExitCode != 0) {
		t.Errorf("container after the stop: running %v, exit code %d; want exited with 0", c.State.Running, c.State.ExitCode)
	}
}

// containerOutput runs cmd in the container name (not as a person would:
// no activity) and returns its standard output.
func containerOutput(t *testing.T, cli *client.Client, name string, cmd ...string) string {
	t.Helper()
	ex, err := cli.ContainerExecCreate(t.Context(), name, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	att, err := cli.ContainerExecAttach(t.Context(), ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	if stderr.Len() > 0 {
		t.Logf("exec %v: %s", cmd, stderr.String())
	}
	return stdout.String()
}

// TestDockerSaveOnStopOutlastsTwentySeconds: a container stopped from
// outside spinbook (the Engine's stop, as after a reboot of the host)
// saves within docker.stop_grace, not a fixed 20 s: a push that the remote
// holds up for 25 s still lands, with stop_grace 90s.
func TestDockerSaveOnStopOutlastsTwentySeconds(t *testing.T) {
	w, cli := newDockerWorld(t, "", "dk-slow")
	data, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.config, bytes.Replace(data, []byte("stop_grace: 20s"), []byte("stop_grace: 90s"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	var slow atomic.Bool
	g := dockerGitRemote(t, w, cli, func(rw http.ResponseWriter, r *http.Request) bool {
		if slow.Load() && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			// A big push over a slow link: the remote takes 25 s.
			select {
			case <-time.After(25 * time.Second):
			case <-r.Context().Done():
				return true
			}
		}
		return false
	})

	w.up("dk-slow")
	containerOutput(t, cli, "spinbook-dk-slow", "sh", "-c", "echo 'saved on a slow stop' > /home/jovyan/work/slow.txt")
	slow.Store(true)
	if err := cli.ContainerStop(t.Context(), "spinbook-dk-slow", container.StopOptions{}); err != nil {
		t.Fatalf("stop the container: %v", err)
	}
	if got := g.Tree(t, "main")["slow.txt"]; got != "saved on a slow stop\n" {
		r := w.run("logs", "--user", "dk-slow")
		t.Errorf("the remote main after the stop holds slow.txt = %q, want the work pushed\n%s", got, lastLines(r.stdout+r.stderr, 20))
	}
}
