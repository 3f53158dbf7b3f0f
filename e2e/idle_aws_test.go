package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
	"github.com/spinbook/spinbook/internal/secret"
)

// awsAgent is an agent run as the aws task runs it (the spec in
// SPINBOOK_AGENT_SPEC_JSON, the release command the aws backend sets),
// against moto (package awstest) holding the stacks of alice (its own) and
// bob, with a real git remote and no model store.
type awsAgent struct {
	moto    *awstest.AWS
	g       *gittest.Server
	token   string
	work    string
	control string // the control API's base URL
	spec    backend.AgentSpec
	logs    *proctest.Buffer
	exited  chan error
}

func startAWSAgent(t *testing.T, idle backend.Idle) *awsAgent {
	t.Helper()
	needJupyter(t)
	m := awstest.Start(t)
	cf := cloudformation.NewFromConfig(m.Config())
	for _, name := range []string{"spinbook-e2e-alice", "spinbook-e2e-bob"} {
		if _, err := cf.CreateStack(t.Context(), &cloudformation.CreateStackInput{StackName: awssdk.String(name),
			TemplateBody: awssdk.String(`{"Resources":{"Log":{"Type":"AWS::Logs::LogGroup","Properties":{"LogGroupName":"/` + name + `"}}}}`)}); err != nil {
			t.Fatal(err)
		}
	}

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
	idle.Release = append([]string{bin}, release[1:]...)
	ports := freePorts(t, 2)
	work := filepath.Join(t.TempDir(), "work")
	spec := backend.AgentSpec{
		User: "alice", Workspace: work, StateDir: t.TempDir(),
		// As on the task: bundles on the instance disk, which the stack
		// deletion destroys.
		BundleDir: filepath.Join(work, ".git", "spinbook-bundles"),
		Listen:    "127.0.0.1", FrontPort: ports[0], HealthPort: ports[1],
		PasswordHash: hash, ControlToken: "control-" + newID(),
		Repo:    &backend.Repo{URL: g.URL(), Branch: "main", Token: token},
		Secrets: []string{token},
		Idle:    &idle,
	}
	data, _ := json.Marshal(spec)
	home := t.TempDir()
	cmd := exec.Command(bin, "agent", "--spec-env", "SPINBOOK_AGENT_SPEC_JSON")
	cmd.Env = append(append(os.Environ(), m.Env()...), "SPINBOOK_AGENT_SPEC_JSON="+string(data), "HOME="+home)
	a := &awsAgent{moto: m, g: g, token: token, work: work, spec: spec, logs: &proctest.Buffer{}, exited: make(chan error, 1),
		control: fmt.Sprintf("http://127.0.0.1:%d/spinbook/api/", ports[0])}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-a.exited
	})
	waitFor(t, "the agent's /readyz", 90*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// waitExit waits up to d for the agent to stop by itself.
func (a *awsAgent) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-a.exited:
		a.exited <- err // for the cleanup
	case <-time.After(d):
		t.Fatalf("the agent did not stop by itself within %s:\n%s", d, a.logs.String())
	}
}

// status is the stack's status in moto; "gone" when there is none.
func (a *awsAgent) status(t *testing.T, name string) string {
	t.Helper()
	out, err := cloudformation.NewFromConfig(a.moto.Config()).DescribeStacks(t.Context(), &cloudformation.DescribeStacksInput{StackName: &name})
	if err != nil || len(out.Stacks) == 0 || out.Stacks[0].StackStatus == "DELETE_COMPLETE" {
		return "gone"
	}
	return string(out.Stacks[0].StackStatus)
}

// awsIdle is the part of the agent's status this test reads.
type awsIdle struct {
	StopBlocked string `json:"stop_blocked"`
	Warning     string `json:"warning"`
}

// idleStatus asks the agent's control API, as `spinbook status` does.
func (a *awsAgent) idleStatus(t *testing.T) awsIdle {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, a.control+"status", nil)
	req.Header.Set("Authorization", "Bearer "+a.spec.ControlToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the agent's control API: %v\n%s", err, a.logs.String())
	}
	defer resp.Body.Close()
	var st struct {
		Idle *awsIdle `json:"idle"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Idle == nil {
		t.Fatalf("the agent's status: %v, %+v", err, st)
	}
	return *st.Idle
}

// TestAWSIdleStopDeletesOwnStack runs the agent as the aws task does with
// a short stop_after: it saves the workspace to the team repo, then runs
// `spinbook aws delete-own-stack`, which deletes its own stack — and no
// other — from moto, then exits.
func TestAWSIdleStopDeletesOwnStack(t *testing.T) {
	a := startAWSAgent(t, backend.Idle{StopAfter: 6 * time.Second, WarnBefore: 2 * time.Second})
	gittest.WriteFiles(t, a.work, map[string]string{"unsaved.txt": "written, never saved by hand\n"})

	a.waitExit(t, 90*time.Second)
	out := a.logs.String()
	if tree := a.g.Tree(t, "main"); tree["unsaved.txt"] != "written, never saved by hand\n" {
		t.Errorf("the remote main after the idle stop holds %v, want the unsaved file\n%s", tree, out)
	}
	saved, released := strings.Index(out, "workspace saved"), strings.Index(out, "releasing the server's resources")
	if saved < 0 || released < 0 || released < saved {
		t.Errorf("want the save (at %d) before the release (at %d) in the agent's log:\n%s", saved, released, out)
	}
	if status := a.status(t, "spinbook-e2e-alice"); status != "gone" {
		t.Errorf("alice's stack is %s after the release, want it deleted\n%s", status, out)
	}
	if status := a.status(t, "spinbook-e2e-bob"); status != "CREATE_COMPLETE" {
		t.Errorf("bob's stack is %s, want it untouched", status)
	}
	if strings.Contains(out, a.token) {
		t.Error("the agent's output holds the repo token")
	}
}

// TestAWSIdleStopKeepsTheStackWhileWorkIsUnsaved: with no model store,
// an aws server whose idle stop comes while the remote refuses its token
// must not delete its stack — the bundle it can write lies on the
// instance disk, which the deletion destroys. It stays up, its status says
// why, and once the remote takes the token again the next try pushes the
// work and the stack goes.
func TestAWSIdleStopKeepsTheStackWhileWorkIsUnsaved(t *testing.T) {
	a := startAWSAgent(t, backend.Idle{StopAfter: 5 * time.Second, WarnBefore: 2 * time.Second})
	gittest.WriteFiles(t, a.work, map[string]string{"unsaved.txt": "written, never saved by hand\n"})
	a.g.SetToken("revoked-" + newID())

	var st awsIdle
	waitFor(t, "the agent to say its stop is blocked", 60*time.Second, func() bool {
		select {
		case err := <-a.exited:
			a.exited <- err
			t.Fatalf("the agent stopped with its work unsaved:\n%s", a.logs.String())
		default:
		}
		st = a.idleStatus(t)
		return st.StopBlocked != ""
	})
	if !strings.HasPrefix(st.StopBlocked, "push failed: ") || !strings.Contains(st.StopBlocked, "spinbook-bundles") {
		t.Errorf("stop_blocked = %q, want push failed, naming the bundle left on the instance disk", st.StopBlocked)
	}
	// A second failed try, and still no delete.
	waitFor(t, "a second try of the save", 60*time.Second, func() bool {
		return strings.Count(a.logs.String(), "the server stays up: its work could not be saved") >= 2
	})
	if status := a.status(t, "spinbook-e2e-alice"); status != "CREATE_COMPLETE" {
		t.Fatalf("alice's stack is %s while her work is unsaved, want it kept\n%s", status, a.logs.String())
	}
	if got := a.g.Tree(t, "main")["unsaved.txt"]; got != "" {
		t.Fatalf("the remote took the work with the token revoked: %q", got)
	}

	a.g.SetToken(a.token)
	a.waitExit(t, 120*time.Second)
	if got := a.g.Tree(t, "main")["unsaved.txt"]; got != "written, never saved by hand\n" {
		t.Errorf("the remote main after the retry holds unsaved.txt = %q, want the work\n%s", got, a.logs.String())
	}
	if status := a.status(t, "spinbook-e2e-alice"); status != "gone" {
		t.Errorf("alice's stack is %s after the save, want it deleted", status)
	}
	if status := a.status(t, "spinbook-e2e-bob"); status != "CREATE_COMPLETE" {
		t.Errorf("bob's stack is %s, want it untouched", status)
	}
	if strings.Contains(a.logs.String(), a.token) {
		t.Error("the agent's output holds the repo token")
	}
}
