package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
	"github.com/spinbook/spinbook/internal/secret"
)

// syncBuffer is an output both the test and the agent's process use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestAWSIdleStopDeletesOwnStack runs the agent as the aws task does (the
// spec in SPINBOOK_AGENT_SPEC_JSON, the release command the aws backend
// sets) with a short stop_after: it saves the workspace to the team repo,
// then runs `spinbook aws delete-own-stack`, which deletes its own stack —
// and no other — from a STAND-IN for CloudFormation, then exits.
func TestAWSIdleStopDeletesOwnStack(t *testing.T) {
	needJupyter(t)
	si := awsstandin.New()
	t.Cleanup(si.Close)
	si.AddStack("spinbook-e2e-alice")
	si.AddStack("spinbook-e2e-bob")

	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	hash, err := secret.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	// The release the aws backend sets, run by this build of the binary
	// instead of the task's /spinbook/spinbook.
	release := aws.ReleaseCommand("e2e", "alice", "us-east-1")
	if release[0] != "/spinbook/spinbook" {
		t.Fatalf("the release runs %s, not the task's entrypoint", release[0])
	}
	release = append([]string{bin}, release[1:]...)
	ports := freePorts(t, 2)
	work := filepath.Join(t.TempDir(), "work")
	spec := backend.AgentSpec{
		User: "alice", Workspace: work, StateDir: t.TempDir(),
		Listen: "127.0.0.1", FrontPort: ports[0], HealthPort: ports[1],
		PasswordHash: hash, ControlToken: "control-" + newID(),
		Repo:    &backend.Repo{URL: g.URL(), Branch: "main", Token: token},
		Secrets: []string{token},
		Idle:    &backend.Idle{StopAfter: 6 * time.Second, WarnBefore: 2 * time.Second, Release: release},
	}
	data, _ := json.Marshal(spec)
	home := t.TempDir()
	cmd := exec.Command(bin, "agent", "--spec-env", "SPINBOOK_AGENT_SPEC_JSON")
	cmd.Env = append(os.Environ(), "SPINBOOK_AGENT_SPEC_JSON="+string(data), "HOME="+home,
		"AWS_ENDPOINT_URL="+si.URL, "AWS_ACCESS_KEY_ID=AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY=stand-in-secret",
		"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "none"))
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitFor(t, "the agent's /readyz", 90*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	gittest.WriteFiles(t, work, map[string]string{"unsaved.txt": "written, never saved by hand\n"})

	select {
	case err := <-exited:
		exited <- err // for the cleanup
	case <-time.After(90 * time.Second):
		t.Fatalf("the agent did not stop by itself within 90s:\n%s", logs.String())
	}
	out := logs.String()
	if tree := g.Tree(t, "main"); tree["unsaved.txt"] != "written, never saved by hand\n" {
		t.Errorf("the remote main after the idle stop holds %v, want the unsaved file\n%s", tree, out)
	}
	saved, released := strings.Index(out, "workspace saved"), strings.Index(out, "releasing the server's resources")
	if saved < 0 || released < 0 || released < saved {
		t.Errorf("want the save (at %d) before the release (at %d) in the agent's log:\n%s", saved, released, out)
	}
	var deleted []string
	for _, req := range si.CFNRequests {
		if form, _ := url.ParseQuery(req); form.Get("Action") == "DeleteStack" {
			deleted = append(deleted, form.Get("StackName"))
		}
	}
	if len(deleted) != 1 || deleted[0] != "spinbook-e2e-alice" {
		t.Errorf("DeleteStack was called for %q, want only spinbook-e2e-alice\n%s", deleted, out)
	}
	if status, _, _, _ := si.Stack("spinbook-e2e-alice"); status != "DELETE_COMPLETE" {
		t.Errorf("alice's stack is %s after the release, want DELETE_COMPLETE", status)
	}
	if status, _, _, _ := si.Stack("spinbook-e2e-bob"); status != "CREATE_COMPLETE" {
		t.Errorf("bob's stack is %s, want it untouched", status)
	}
	if strings.Contains(out, token) {
		t.Error("the agent's output holds the repo token")
	}
}
