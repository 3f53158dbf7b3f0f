package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
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
