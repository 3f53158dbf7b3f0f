package docker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// derivedImage commits the result of script, run as root in base, as a new
// image with changes (Dockerfile lines) and removes it when the test ends.
func derivedImage(t *testing.T, cli *client.Client, base, tag, script string, changes []string) string {
	t.Helper()
	ctx := t.Context()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: base, User: "0", Entrypoint: []string{"/bin/sh", "-euc", script}, Cmd: []string{}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Fatalf("derive %s: %q exited %d", tag, script, w.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	if _, err := cli.ContainerCommit(ctx, c.ID, container.CommitOptions{Reference: tag, Changes: changes}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true}) })
	return tag
}

// The workspace belongs to the image's user whatever the image holds: an
// image without ~/work, and one whose user has no home at all, still give a
// workspace the user can write to (before, the Engine made a root-owned
// mount point and every save failed with "Permission denied").
func TestWorkspaceBelongsToImageUser(t *testing.T) {
	cli := engine(t)
	base := testImage(t)
	tests := []struct {
		name    string
		script  string
		changes []string
		home    string
		user    string // the image's USER
		owner   string // uid:gid of the workspace
	}{
		{
			name:    "no work dir",
			script:  "rm -rf /home/jovyan/work",
			changes: []string{"USER 1000"},
			home:    "/home/jovyan",
			user:    "1000",
			owner:   "1000:100",
		},
		{
			name:    "no home",
			script:  "useradd --uid 1001 --gid 100 --no-create-home --home-dir /home/ada ada",
			changes: []string{"USER ada:users", "ENV HOME=/home/ada", "WORKDIR /"},
			home:    "/home/ada",
			user:    "ada:users",
			owner:   "1001:100",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Image = derivedImage(t, cli, base, "spinbook-test/derived:owner-"+string(rune('a'+i)), tt.script, tt.changes)
			d := newDocker(t, cfg)
			user := "owner-" + string(rune('a'+i))
			cleanupUser(t, d, user)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			if _, err := d.Up(ctx, spec(t, user), nop); err != nil {
				t.Fatalf("Up: %v", err)
			}
			id := ContainerName(user)
			workspace := tt.home + "/work"
			out, _, code, err := d.execIn(ctx, id, "", []string{"stat", "-c", "%u:%g", workspace})
			if err != nil || code != 0 || strings.TrimSpace(out) != tt.owner {
				t.Errorf("owner of %s = %q (exit %d, %v), want %s", workspace, strings.TrimSpace(out), code, err, tt.owner)
			}
			// The agent, started as root to own the workspace, runs as the
			// image's user (real, effective, saved and file system uid).
			uid, _, _ := strings.Cut(tt.owner, ":")
			agentUIDs := `for d in /proc/[0-9]*; do case "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" in "` + agentPath + ` agent"*) awk '/^Uid:/ {print $2":"$3":"$4":"$5}' $d/status;; esac; done`
			out, _, code, err = d.execIn(ctx, id, "", []string{"sh", "-c", agentUIDs})
			if want := strings.Repeat(":"+uid, 4)[1:]; err != nil || code != 0 || strings.TrimSpace(out) != want {
				t.Errorf("the agent's uids = %q (exit %d, %v), want %s", strings.TrimSpace(out), code, err, want)
			}
			// As the image's user, a file can be saved.
			_, stderr, code, err := d.execIn(ctx, id, tt.user, []string{"sh", "-c", "echo kept > " + workspace + "/persist.txt"})
			if err != nil || code != 0 {
				t.Fatalf("write in the workspace as the image's user: exit %d, %v: %s", code, err, stderr)
			}
			// Down and Up again: the file is there, the owner unchanged.
			if err := d.Down(ctx, user, nop); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Up(ctx, spec(t, user), nop); err != nil {
				t.Fatalf("Up again: %v", err)
			}
			out, _, code, err = d.execIn(ctx, id, tt.user, []string{"cat", workspace + "/persist.txt"})
			if err != nil || code != 0 || strings.TrimSpace(out) != "kept" {
				t.Errorf("persist.txt after down/up = %q (exit %d, %v), want kept", out, code, err)
			}
		})
	}
}
