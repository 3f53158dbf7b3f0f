package aws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/backend/backendtest"
	"github.com/spinbook/spinbook/internal/config"
)

// fakeELF is the agent binary the backend uploads (and no instance runs).
func fakeELF(t *testing.T) string {
	t.Helper()
	p, err := awsstandin.AgentELF(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeAgent answers the control API's status, as the agent behind the load
// balancer would, to the holder of a control token a spec secret of site
// holds (every user's stack reports this one URL).
func fakeAgent(t *testing.T, si *awsstandin.StandIn, site string, users ...string) *httptest.Server {
	secrets := map[string]string{}
	for _, u := range users {
		secrets[u] = SecretPrefix(site, u) + secretSpec
	}
	srv := si.Agent(secrets)
	t.Cleanup(srv.Close)
	return srv
}

// standInStackRole is the StackRoleArn output the stand-in's site reports.
const standInStackRole = "arn:aws:iam::123456789012:role/spinbook-test-StackRole-AbC123"

// standInSubnet and standInVolume are the stand-in site's private subnet
// and the workspace volume its workspace stacks report.
const (
	standInSubnet = "subnet-0a1b2c3d4e5f60718"
	standInVolume = "vol-0123456789abcdef0"
)

type world struct {
	si     *awsstandin.StandIn
	be     *AWS
	cfg    *config.Config
	events *eventLog
}

type eventLog struct {
	mu  sync.Mutex
	all []string
}

func (l *eventLog) add(ev backend.Event) {
	l.mu.Lock()
	l.all = append(l.all, ev.Message)
	l.mu.Unlock()
}
func (l *eventLog) text() string { l.mu.Lock(); defer l.mu.Unlock(); return strings.Join(l.all, "\n") }

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOf(t, "created-vpc", "alice", "conf-a", "conf-b", "conf-c", "conf-d")
}

// newWorldOf is newWorld with the config testdata/config.yaml, in site
// test, whose agent answers users.
func newWorldOf(t *testing.T, config string, users ...string) *world {
	t.Helper()
	si := awsstandin.New()
	t.Cleanup(si.Close)
	cfg := loadConfig(t, config)
	cfg.AWS.Site = "test"
	agent := fakeAgent(t, si, "test", users...)
	si.Outputs[outputAgentBucket] = "spinbook-test-agentbucket-1x2y3z"
	si.Outputs[outputNatAddress] = "198.51.100.77"
	si.Outputs[outputURL] = agent.URL + "/"
	si.Outputs[outputStackRole] = standInStackRole
	// The site's private subnet, and the volume every workspace stack
	// reports (the stand-in makes no volumes from templates).
	si.Outputs[exportPrivateSubnet] = standInSubnet
	si.AddSubnet(standInSubnet, "us-east-1b")
	si.Outputs[exportWorkspaceVolume] = standInVolume
	si.AddVolume(awsstandin.Volume{ID: standInVolume, Zone: "us-east-1b"})
	sdk := awssdk.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "stand-in-secret", ""),
		BaseEndpoint: awssdk.String(si.URL),
	}
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: fakeELF(t), SDK: &sdk, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &world{si: si, be: be, cfg: cfg, events: &eventLog{}}
}

// spec is what the command line would hand Up, with canary secrets.
func (w *world) spec() backend.Spec {
	as := backend.AgentSpec{
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$CANARYSALTCANARYSALT$CANARYHASH",
		Allow:        w.cfg.Access.Allow,
		Warehouse:    &backend.Warehouse{Host: "dw.example", Port: 5439, Database: "a", User: "nb", Password: "CANARY-warehouse-password-5c1e"},
		Repo:         &backend.Repo{URL: "https://git.example.com/team/notebooks.git", Token: "CANARY-git-token-77ab"},
		Secrets:      []string{"CANARY-warehouse-password-5c1e", "CANARY-git-token-77ab"},
		ControlToken: "CANARY-control-token-" + requestToken(),
		Idle:         &backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute, Size: "gpu"},
	}
	return backend.Spec{User: "alice", Agent: as, AccessDigest: as.AccessDigest(), Size: "gpu"}
}

func TestFlowUpDownAgainstStandIn(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatalf("SiteUp: %v\nevents:\n%s", err, w.events.text())
	}
	if status, _, tags, _ := w.si.Stack("spinbook-test"); status != "CREATE_COMPLETE" || tags[tagManaged] != managedBy {
		t.Fatalf("site stack is %s with tags %v", status, tags)
	}
	if !strings.Contains(w.events.text(), "198.51.100.77") {
		t.Errorf("site up does not report the NAT address:\n%s", w.events.text())
	}

	spec := w.spec()
	srv, err := w.be.Up(ctx, spec, w.events.add)
	if err != nil {
		t.Fatalf("Up: %v\nevents:\n%s", err, w.events.text())
	}
	if !srv.Ready || !srv.Started || srv.State != backend.Running || !strings.HasPrefix(srv.URL, "http://127.0.0.1") {
		t.Errorf("Up = %+v, want a started, ready server at the stack's URL", srv)
	}
	name := InstanceStackName("test", "alice")
	status, params, tags, _ := w.si.Stack(name)
	if status != "CREATE_COMPLETE" || tags[tagUser] != "alice" || tags[tagSize] != "gpu" || tags[tagRole] != "instance" {
		t.Errorf("instance stack is %s with tags %v", status, tags)
	}
	if !strings.HasPrefix(params[paramSpecSecretARN], "arn:aws:secretsmanager:") || params[paramSpecVersionID] == "" {
		t.Errorf("the stack does not name the spec secret: %v", params)
	}
	// CloudFormation acts on the instance stack with the site's service
	// role, so a delete from inside needs no more than the task role's
	// right to delete this one stack; the site stack has no service role.
	if got := w.si.RoleARN(name); got != standInStackRole {
		t.Errorf("the instance stack was created with RoleARN %q, want the site's StackRole %q", got, standInStackRole)
	}
	if got := w.si.RoleARN("spinbook-test"); got != "" {
		t.Errorf("the site stack was created with RoleARN %q, want none", got)
	}
	if !strings.Contains(w.events.text(), "TaskDefinition (ECS::TaskDefinition): CREATE_COMPLETE") {
		t.Errorf("no progress from stack events:\n%s", w.events.text())
	}
	// The secrets went to Secrets Manager, and nowhere else.
	stored, ok := w.si.Secret(SecretPrefix("test", "alice") + secretSpec)
	if !ok || !strings.Contains(stored, "CANARY-git-token-77ab") || !strings.Contains(stored, `"behind_tls":true`) {
		t.Errorf("spec secret = %q, %v", stored, ok)
	}
	// After an idle stop, the agent deletes its own stack with the binary
	// the task runs.
	var storedSpec backend.AgentSpec
	if err := json.Unmarshal([]byte(stored), &storedSpec); err != nil {
		t.Fatal(err)
	}
	wantRelease := []string{"/spinbook/spinbook", "aws", "delete-own-stack", "--stack", "spinbook-test-alice", "--region", "us-east-1"}
	if storedSpec.Idle == nil || !slices.Equal(storedSpec.Idle.Release, wantRelease) || storedSpec.Idle.StopAfter != 2*time.Hour {
		t.Errorf("the stored spec's idle = %+v, want the timers given and the release %q", storedSpec.Idle, wantRelease)
	}
	if spec.Agent.Idle.Release != nil {
		t.Errorf("Up changed the caller's spec: %+v", spec.Agent.Idle)
	}
	// The agent fits its save on SIGTERM into the grace ECS gives the task.
	if storedSpec.StopGrace != 120*time.Second || !strings.Contains(w.si.Template(name), `"StopTimeout":120`) {
		t.Errorf("the stored spec's stop_grace is %v; want the task's stopTimeout, 120s, in the template too", storedSpec.StopGrace)
	}
	if got := w.si.Template(name); !strings.Contains(got, `"EntryPoint":["`+wantRelease[0]+`"]`) {
		t.Errorf("the release command's binary %s is not the task's entrypoint", wantRelease[0])
	}
	for _, req := range w.si.CFNRequests {
		for _, c := range append(canaries, spec.Agent.ControlToken, "CANARY") {
			if strings.Contains(req, c) {
				t.Errorf("a CloudFormation request holds the secret %q", c)
			}
		}
	}

	// A second up of the same configuration changes nothing.
	creates, updates := w.si.CallCount("cloudformation:CreateStack"), w.si.CallCount("cloudformation:UpdateStack")
	again := w.spec() // a new control token, as every `spinbook up` makes
	srv2, err := w.be.Up(ctx, again, w.events.add)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if srv2.Started || !srv2.Ready || srv2.URL != srv.URL {
		t.Errorf("second Up = %+v, want the running server, not started again", srv2)
	}
	if w.si.CallCount("cloudformation:CreateStack") != creates || w.si.CallCount("cloudformation:UpdateStack") != updates {
		t.Errorf("the second up created or updated a stack: %v", w.si.Calls)
	}

	list, err := w.be.List(ctx)
	if err != nil || len(list) != 1 || list[0].User != "alice" {
		t.Errorf("List = %+v, %v", list, err)
	}
	st, err := w.be.Status(ctx, "alice")
	if err != nil || !st.Ready || st.ControlToken != spec.Agent.ControlToken || st.AccessDigest != spec.AccessDigest {
		t.Errorf("Status = %+v, %v", st, err)
	}

	if err := w.be.SiteDown(ctx, w.events.add); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Errorf("SiteDown with a server = %v, want a refusal naming alice", err)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if _, _, _, ok := w.si.Stack(name); ok {
		if status, _, _, _ := w.si.Stack(name); status != "DELETE_COMPLETE" {
			t.Errorf("after Down the stack is %s", status)
		}
	}
	if _, ok := w.si.Secret(SecretPrefix("test", "alice") + secretSpec); ok {
		t.Error("after Down the spec secret is still there")
	}
	if st, err := w.be.Status(ctx, "alice"); err != nil || st.State != backend.Absent {
		t.Errorf("Status after Down = %+v, %v", st, err)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Errorf("second Down: %v", err)
	}
	// The workspace outlives the server, and holds the site until purged.
	if err := w.be.SiteDown(ctx, w.events.add); err == nil || !strings.Contains(err.Error(), "down --purge --user USER") || !strings.Contains(err.Error(), "alice") {
		t.Errorf("SiteDown with a kept workspace = %v, want a refusal naming alice and the purge", err)
	}
	if err := w.be.Purge(ctx, "alice", w.events.add); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := w.be.SiteDown(ctx, w.events.add); err != nil {
		t.Fatalf("SiteDown: %v", err)
	}
	if status, _, _, _ := w.si.Stack("spinbook-test"); status != "DELETE_COMPLETE" {
		t.Errorf("after SiteDown the site stack is %s", status)
	}
}

// TestFlowUpdateKeepsTheInstance: a new password (and a newer spinbook)
// updates the stack with a new spec version, so ECS starts a new task, but
// keeps the AMI and agent parameters, whose change would replace the
// instance and its workspace.
func TestFlowUpdateKeepsTheInstance(t *testing.T) {
	w := newWorldUp(t)
	ctx := t.Context()
	name := InstanceStackName("test", "alice")
	_, before, _, _ := w.si.Stack(name)
	bin, err := os.ReadFile(w.be.agentPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.be.agentPath, append(bin, "newer"...), 0o755); err != nil { // a newer spinbook
		t.Fatal(err)
	}
	spec := w.spec()
	spec.Agent.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=2$CANARYSALTCANARYSALT$ANOTHERHASH"
	spec.AccessDigest = spec.Agent.AccessDigest()
	srv, err := w.be.Up(ctx, spec, w.events.add)
	if err != nil || !srv.Started || !srv.Ready {
		t.Fatalf("Up with a new password = %+v, %v", srv, err)
	}
	status, after, tags, _ := w.si.Stack(name)
	if status != "UPDATE_COMPLETE" || w.si.CallCount("cloudformation:UpdateStack") != 1 {
		t.Fatalf("stack %s after %v", status, w.si.Calls)
	}
	if after[paramSpecVersionID] == before[paramSpecVersionID] || tags[tagAccessDigest] != spec.AccessDigest {
		t.Errorf("the update does not run the new spec: %v -> %v", before, after)
	}
	if after[paramAgentKey] != before[paramAgentKey] || after[paramAgentSHA256] != before[paramAgentSHA256] {
		t.Errorf("the update changed the agent (the instance would be replaced): %v -> %v", before, after)
	}
}

// TestUpRefusesAnOutdatedSite: a site stack made before access.allow
// changed would not admit the new office; up says to run site up.
func TestUpRefusesAnOutdatedSite(t *testing.T) {
	w := newWorld(t)
	if _, err := w.be.Up(t.Context(), w.spec(), w.events.add); err == nil || !strings.Contains(err.Error(), "does not exist: run `spinbook site up`") {
		t.Errorf("Up without a site = %v", err)
	}
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	w.cfg.Access.Allow = append(w.cfg.Access.Allow, "198.18.0.0/15")
	if _, err := w.be.Up(t.Context(), w.spec(), w.events.add); err == nil || !strings.Contains(err.Error(), "run `spinbook site up` to bring it up to date") {
		t.Errorf("Up with a new allow entry = %v, want a request to run site up", err)
	}
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	if _, err := w.be.Up(t.Context(), w.spec(), w.events.add); err != nil {
		t.Errorf("Up after site up = %v", err)
	}
}

// TestConformance runs the suite every backend runs, against the stand-in.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		w := newWorld(t)
		if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
			t.Fatal(err)
		}
		return w.be
	})
}

func TestFlowRollbackShowsTheReason(t *testing.T) {
	const reason = "We currently do not have sufficient g5.2xlarge capacity in the Availability Zone you requested (us-east-1a)."
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "kept"}[keep], func(t *testing.T) {
			w := newWorld(t)
			ctx := t.Context()
			if err := w.be.SiteUp(ctx, w.events.add); err != nil {
				t.Fatal(err)
			}
			name := InstanceStackName("test", "alice")
			w.si.Fail[name] = awsstandin.Failure{Resource: "Instance", Type: "AWS::EC2::Instance", Reason: reason}
			spec := w.spec()
			spec.KeepFailed = keep
			_, err := w.be.Up(ctx, spec, w.events.add)
			var serr *StackError
			if !errors.As(err, &serr) {
				t.Fatalf("Up = %v, want a *StackError", err)
			}
			if serr.Resource != "Instance" || serr.Reason != reason || !strings.Contains(err.Error(), reason) {
				t.Errorf("the error names %q (%q), want the instance and its reason: %v", serr.Resource, serr.Reason, err)
			}
			if !strings.Contains(w.events.text(), "Instance (EC2::Instance): CREATE_FAILED: "+reason) {
				t.Errorf("progress does not show the failure:\n%s", w.events.text())
			}
			status, _, _, _ := w.si.Stack(name)
			switch {
			case keep && (status != "CREATE_FAILED" || !serr.Kept):
				t.Errorf("with --keep-failed the stack is %s (kept %v), want CREATE_FAILED", status, serr.Kept)
			case !keep && status != "DELETE_COMPLETE":
				t.Errorf("the failed stack is %s, want it deleted", status)
			}
			if !keep && w.si.CallCount("cloudformation:DeleteStack") != 1 {
				t.Errorf("calls: %v", w.si.Calls)
			}
			// The next up starts over, and succeeds.
			if srv, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil || !srv.Ready {
				t.Errorf("Up after the failure = %+v, %v", srv, err)
			}
		})
	}
}

func TestMissingRegionAndCredentials(t *testing.T) {
	// The SDK's default chain with nothing to find.
	home := t.TempDir()
	for k, v := range map[string]string{
		"HOME": home, "AWS_CONFIG_FILE": filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "none"),
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
		"AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
	} {
		t.Setenv(k, v)
	}
	cfg := loadConfig(t, "existing-vpc")
	cfg.AWS.Region = ""
	log := slog.New(slog.DiscardHandler)
	_, err := New(cfg, log, Options{AgentPath: "/nonexistent"})
	if !errors.Is(err, ErrNoRegion) || !strings.Contains(err.Error(), "aws.region") {
		t.Errorf("New without a region = %v, want ErrNoRegion naming aws.region", err)
	}

	cfg.AWS.Region = "eu-west-1"
	be, err := New(cfg, log, Options{AgentPath: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"status": func() error { _, err := be.Status(t.Context(), "alice"); return err },
		"up": func() error {
			_, err := be.Up(t.Context(), backend.Spec{User: "alice"}, func(backend.Event) {})
			return err
		},
		"site up": func() error { return be.SiteUp(t.Context(), func(backend.Event) {}) },
	} {
		if err := op(); !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "aws configure") {
			t.Errorf("%s without credentials = %v, want ErrNoCredentials with what to do", name, err)
		}
	}
}

// TestLogs: logs reads the user's streams of the site's log group, and
// with follow keeps printing new lines until cancelled.
func TestLogs(t *testing.T) {
	w := newWorld(t)
	var out strings.Builder
	if err := w.be.Logs(t.Context(), "alice", false, &out); err == nil || !strings.Contains(err.Error(), "site up") {
		t.Errorf("Logs before site up = %v, want a hint to run site up", err)
	}
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	group := logGroup("test")
	w.si.AddLog(group, "alice/notebook/task1", "agent starting")
	w.si.AddLog(group, "bob/notebook/task2", "not alice's")
	w.si.AddLog(group, "alice/notebook/task1", "jupyter: started")
	if err := w.be.Logs(t.Context(), "alice", false, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "agent starting\njupyter: started\n" {
		t.Errorf("Logs = %q", out.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- w.be.Logs(ctx, "alice", true, pw); pw.Close() }()
	lines := bufio.NewScanner(pr)
	for _, want := range []string{"agent starting", "jupyter: started", "a new line"} {
		if want == "a new line" {
			w.si.AddLog(group, "alice/notebook/task1", want)
		}
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("followed line = %q, want %q", lines.Text(), want)
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Errorf("Logs -f after cancel = %v", err)
	}
}
