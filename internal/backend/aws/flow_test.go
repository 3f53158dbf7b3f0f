package aws

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
	"github.com/spinbook/spinbook/internal/backend/backendtest"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
)

// fakeELF writes the smallest static linux/amd64 ELF header there is: what
// the backend checks before it uploads the agent, for tests that run no
// agent.
func fakeELF(t *testing.T) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 2)  // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // ehsize
	binary.LittleEndian.PutUint16(h[54:], 56) // phentsize
	binary.LittleEndian.PutUint16(h[58:], 64) // shentsize
	p := filepath.Join(t.TempDir(), "spinbook")
	if err := os.WriteFile(p, h, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// world is the aws backend against moto (package awstest), with the real
// templates, and the instance stand-in running each service's task: the
// agent built from this tree, with Debian's notebook 6 as the image's
// Jupyter, behind the load balancers' stand-in.
type world struct {
	moto   *awstest.AWS
	in     *awstest.Instances
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

// motoConfig is the created-VPC test config as moto can serve it: plain
// HTTP (moto's ACM holds no certificate, and its ELBv2 refuses a listener
// naming one it does not hold), and this machine among the allowed
// networks, as the office the tests run from.
func motoConfig(t *testing.T) *config.Config {
	cfg := loadConfig(t, "created-vpc")
	cfg.AWS.Site = "test"
	cfg.AWS.CertificateARN = ""
	cfg.Access.Allow = append(cfg.Access.Allow, "127.0.0.1/32")
	return cfg
}

func newWorld(t *testing.T) *world {
	t.Helper()
	m := awstest.Start(t)
	agent := backendtest.BuildAgent(t)
	in := m.StartInstances(t, awstest.InstanceOptions{Agent: agent, JupyterCommand: awstest.Jupyter(t)})
	cfg := motoConfig(t)
	sdk := m.Config()
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: agent, SDK: &sdk, Poll: 100 * time.Millisecond, HTTP: in.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	return &world{moto: m, in: in, be: be, cfg: cfg, events: &eventLog{}}
}

// spec is what the command line would hand Up, with canary secrets (no
// repo: the agent would clone it).
func (w *world) spec() backend.Spec {
	as := backend.AgentSpec{
		PasswordHash: testHash,
		Allow:        w.cfg.Access.Allow,
		Warehouse:    &backend.Warehouse{Host: "dw.example", Port: 5439, Database: "a", User: "nb", Password: "CANARY-warehouse-password-5c1e"},
		Secrets:      []string{"CANARY-warehouse-password-5c1e"},
		ControlToken: "CANARY-control-token-" + requestToken(),
		Idle:         &backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute, Size: "gpu"},
	}
	return backend.Spec{User: "alice", Agent: as, AccessDigest: as.AccessDigest(), Size: "gpu"}
}

// stack describes the stack name in moto; nil when there is none.
func (w *world) stack(t *testing.T, name string) *types.Stack {
	t.Helper()
	st, err := w.be.describe(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func params(st *types.Stack) map[string]string {
	out := map[string]string{}
	for _, p := range st.Parameters {
		out[awssdk.ToString(p.ParameterKey)] = awssdk.ToString(p.ParameterValue)
	}
	return out
}

func (w *world) template(t *testing.T, name string) string {
	t.Helper()
	out, err := w.be.cf.GetTemplate(t.Context(), &cloudformation.GetTemplateInput{StackName: &name})
	if err != nil {
		t.Fatal(err)
	}
	return awssdk.ToString(out.TemplateBody)
}

// testHash is a hash of the password "correct horse".
var testHash = must(secret.HashPassword("correct horse"))

// TestFlowUpDown runs site up, up (twice), ls, status, site down (refused),
// down and site down against moto with the real templates: moto's
// CloudFormation builds the site and the instance stack, resolving the
// instance stack's ImportValues of the site's exports, and the instance
// stand-in runs the agent the task definition names, with the spec from
// moto's Secrets Manager.
func TestFlowUpDown(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatalf("SiteUp: %v\nevents:\n%s", err, w.events.text())
	}
	site := w.stack(t, "spinbook-test")
	if site == nil || site.StackStatus != types.StackStatusCreateComplete || tag(site, tagManaged) != managedBy {
		t.Fatalf("site stack is %+v", site)
	}
	if nat := output(site, outputNatAddress); nat == "" || !strings.Contains(w.events.text(), "egress address (NAT gateway): "+nat) {
		t.Errorf("site up does not report the NAT address %q:\n%s", nat, w.events.text())
	}

	spec := w.spec()
	srv, err := w.be.Up(ctx, spec, w.events.add)
	if err != nil {
		t.Fatalf("Up: %v\nevents:\n%s", err, w.events.text())
	}
	name := InstanceStackName("test", "alice")
	st := w.stack(t, name)
	if st == nil || st.StackStatus != types.StackStatusCreateComplete || tag(st, tagUser) != "alice" || tag(st, tagSize) != "gpu" || tag(st, tagRole) != "instance" {
		t.Fatalf("instance stack is %+v", st)
	}
	dns := output(st, "LoadBalancerDNS")
	if !srv.Ready || !srv.Started || srv.State != backend.Running || srv.URL != "http://"+dns+"/" || !strings.HasSuffix(dns, ".elb.amazonaws.com") {
		t.Errorf("Up = %+v, want a started, ready server at the load balancer %s", srv, dns)
	}
	if !strings.HasPrefix(output(st, outputInstanceID), "i-") {
		t.Errorf("the instance stack made no EC2 instance: %v", st.Outputs)
	}
	p := params(st)
	if !strings.HasPrefix(p[paramSpecSecretARN], "arn:aws:secretsmanager:") || p[paramSpecVersionID] == "" {
		t.Errorf("the stack does not name the spec secret: %v", p)
	}
	// The task the instance stand-in runs is the one the stack's task
	// definition names, told the load balancer's name.
	task := w.in.Task("alice")
	if task == nil || task.Host != dns || !strings.Contains(task.TaskDefinition, ":task-definition/spinbook-test-alice:") {
		t.Errorf("task = %+v, want alice's task definition behind %s", task, dns)
	}
	// CloudFormation acts on the instance stack with the site's service
	// role; the site stack has none.
	if got, want := awssdk.ToString(st.RoleARN), output(site, outputStackRole); got == "" || got != want {
		t.Errorf("the instance stack's RoleARN is %q, want the site's StackRole %q", got, want)
	}
	if got := awssdk.ToString(site.RoleARN); got != "" {
		t.Errorf("the site stack has RoleARN %q, want none", got)
	}
	// The secrets went to Secrets Manager, and nowhere else.
	stored, err := w.be.getSecret(ctx, SecretPrefix("test", "alice")+secretSpec)
	if err != nil || !strings.Contains(stored, "CANARY-warehouse-password-5c1e") || strings.Contains(stored, `"behind_tls":true`) {
		t.Errorf("spec secret = %q, %v", stored, err)
	}
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
	tmpl := w.template(t, name)
	if storedSpec.StopGrace != 120*time.Second || !strings.Contains(tmpl, `"StopTimeout":120`) {
		t.Errorf("the stored spec's stop_grace is %v; want the task's stopTimeout, 120s, in the template too", storedSpec.StopGrace)
	}
	if !strings.Contains(tmpl, `"EntryPoint":["`+wantRelease[0]+`"]`) {
		t.Errorf("the release command's binary %s is not the task's entrypoint", wantRelease[0])
	}
	// What CloudFormation holds of both stacks: no secret.
	for _, held := range []string{tmpl, w.template(t, "spinbook-test"), string(must(json.Marshal(st))), string(must(json.Marshal(site)))} {
		for _, c := range append(canaries, spec.Agent.ControlToken, "CANARY") {
			if strings.Contains(held, c) {
				t.Errorf("CloudFormation holds the secret %q", c)
			}
		}
	}

	// A second up of the same configuration changes nothing.
	srv2, err := w.be.Up(ctx, w.spec(), w.events.add) // a new control token, as every `spinbook up` makes
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if srv2.Started || !srv2.Ready || srv2.URL != srv.URL {
		t.Errorf("second Up = %+v, want the running server, not started again", srv2)
	}
	if again := w.stack(t, name); again.StackStatus != types.StackStatusCreateComplete || again.LastUpdatedTime != nil || w.in.Task("alice") != task {
		t.Errorf("the second up updated the stack (%s) or replaced the task", again.StackStatus)
	}

	list, err := w.be.List(ctx)
	if err != nil || len(list) != 1 || list[0].User != "alice" {
		t.Errorf("List = %+v, %v", list, err)
	}
	status, err := w.be.Status(ctx, "alice")
	if err != nil || !status.Ready || status.ControlToken != spec.Agent.ControlToken || status.AccessDigest != spec.AccessDigest {
		t.Errorf("Status = %+v, %v", status, err)
	}

	if err := w.be.SiteDown(ctx, w.events.add); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Errorf("SiteDown with a server = %v, want a refusal naming alice", err)
	}
	// Past our own check, moto refuses too (see siteDeleteRefused).
	siteDeleteRefused(t, w)

	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if st := w.stack(t, name); st != nil {
		t.Errorf("after Down the stack is %s", st.StackStatus)
	}
	if v, err := w.be.getSecret(ctx, SecretPrefix("test", "alice")+secretSpec); err != nil || v != "" {
		t.Errorf("after Down the spec secret is still there (%v)", err)
	}
	waitFor(t, "the task to stop with its service", 60*time.Second, task.Exited)
	if st, err := w.be.Status(ctx, "alice"); err != nil || st.State != backend.Absent {
		t.Errorf("Status after Down = %+v, %v", st, err)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Errorf("second Down: %v", err)
	}
	// The workspace volume outlives the server and holds the site up
	// until it is purged.
	if err := w.be.SiteDown(ctx, w.events.add); err == nil || !strings.Contains(err.Error(), "down --purge") {
		t.Errorf("SiteDown with alice's workspace kept = %v, want it refused", err)
	}
	if err := w.be.Purge(ctx, "alice", w.events.add); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := w.be.SiteDown(ctx, w.events.add); err != nil {
		t.Fatalf("SiteDown: %v", err)
	}
	if st := w.stack(t, "spinbook-test"); st != nil {
		t.Errorf("after SiteDown the site stack is %s", st.StackStatus)
	}
}

// siteDeleteRefused deletes the site stack behind spinbook's back while
// alice's stack imports its exports: CloudFormation refuses, and the
// delete fails naming the export in use and its importer. (moto 5.2.5 does
// not track imports; the stand-in in awstest's motopatch makes its
// DeleteStack refuse as CloudFormation does.)
func siteDeleteRefused(t *testing.T, w *world) {
	t.Helper()
	err := w.be.deleteStack(t.Context(), "spinbook-test", w.events.add)
	var serr *StackError
	if !errors.As(err, &serr) || serr.Status != "DELETE_FAILED" || !strings.Contains(serr.Reason, "is in use by spinbook-test-alice") {
		t.Errorf("deleting the site with a server in it = %v, want DELETE_FAILED: an export in use by spinbook-test-alice", err)
	}
	if st := w.stack(t, "spinbook-test"); st == nil || output(st, outputStackRole) == "" {
		t.Errorf("the site stack is gone while a server uses it: %+v", st)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFlowUpdateKeepsTheInstance: a new password (and a newer spinbook)
// updates the stack with a new spec version, so ECS starts a new task, but
// keeps the AMI and agent parameters, whose change would replace the
// instance and its workspace: a file written in the workspace (not in git)
// is still there for the new task.
func TestFlowUpdateKeepsTheInstance(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatal(err)
	}
	name := InstanceStackName("test", "alice")
	before := w.stack(t, name)
	first := w.in.Task("alice")
	if err := os.WriteFile(filepath.Join(first.Workspace, "data.csv"), []byte("1,2,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A newer spinbook: another binary to upload (same agent, one more byte
	// past its end).
	bin, err := os.ReadFile(w.be.agentPath)
	if err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "spinbook")
	if err := os.WriteFile(newer, append(bin, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	w.be.agentPath = newer
	spec := w.spec()
	spec.Agent.PasswordHash = must(secret.HashPassword("battery staple"))
	spec.AccessDigest = spec.Agent.AccessDigest()
	srv, err := w.be.Up(ctx, spec, w.events.add)
	if err != nil || !srv.Started || !srv.Ready {
		t.Fatalf("Up with a new password = %+v, %v\n%s", srv, err, w.events.text())
	}
	after := w.stack(t, name)
	if after.StackStatus != types.StackStatusUpdateComplete {
		t.Fatalf("stack %s after the update", after.StackStatus)
	}
	pb, pa := params(before), params(after)
	if pa[paramSpecVersionID] == pb[paramSpecVersionID] || tag(after, tagAccessDigest) != spec.AccessDigest {
		t.Errorf("the update does not run the new spec: %v -> %v", pb, pa)
	}
	if pa[paramAgentKey] != pb[paramAgentKey] || pa[paramAgentSHA256] != pb[paramAgentSHA256] {
		t.Errorf("the update changed the agent (the instance would be replaced): %v -> %v", pb, pa)
	}
	if output(after, outputInstanceID) != output(before, outputInstanceID) {
		t.Errorf("the update replaced the EC2 instance: %s -> %s", output(before, outputInstanceID), output(after, outputInstanceID))
	}
	second := w.in.Task("alice")
	if second == first || second.TaskDefinition == first.TaskDefinition || !first.Exited() {
		t.Fatalf("the update did not replace the task: %+v -> %+v", first, second)
	}
	if got, err := os.ReadFile(filepath.Join(second.Workspace, "data.csv")); err != nil || string(got) != "1,2,3\n" {
		t.Errorf("the new task's workspace lost data.csv: %q, %v", got, err)
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
	if srv, err := w.be.Up(t.Context(), w.spec(), w.events.add); err != nil || !srv.Ready {
		t.Errorf("Up after site up = %+v, %v", srv, err)
	}
}

// TestConformance runs the suite every backend runs, against moto.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		w := newWorld(t)
		if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
			t.Fatal(err)
		}
		return w.be
	})
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

// TestLogs: logs reads the user's streams of the site's log group in
// moto's CloudWatch Logs — the agent's own output, shipped there by the
// instance stand-in as the awslogs driver does — and with follow keeps
// printing new lines until cancelled.
func TestLogs(t *testing.T) {
	w := newWorld(t)
	var out strings.Builder
	if err := w.be.Logs(t.Context(), "alice", false, &out); err == nil || !strings.Contains(err.Error(), "site up") {
		t.Errorf("Logs before site up = %v, want a hint to run site up", err)
	}
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	if _, err := w.be.Up(t.Context(), w.spec(), w.events.add); err != nil {
		t.Fatal(err)
	}
	task := w.in.Task("alice")
	var first string
	waitFor(t, "the agent's output in CloudWatch Logs", 30*time.Second, func() bool {
		out.Reset()
		if err := w.be.Logs(t.Context(), "alice", false, &out); err != nil {
			t.Fatal(err)
		}
		first, _, _ = strings.Cut(out.String(), "\n")
		return first != "" && strings.Contains(task.Logs(), first)
	})
	if strings.Contains(out.String(), "CANARY") {
		t.Error("the logs hold a secret")
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- w.be.Logs(ctx, "alice", true, pw); pw.Close() }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || lines.Text() != first {
		t.Fatalf("followed line = %q, want %q", lines.Text(), first)
	}
	// A line that arrives later (as the awslogs driver ships it) follows.
	cw := cloudwatchlogs.NewFromConfig(w.moto.Config())
	group, stream := logGroup("test"), "alice/notebook/later"
	if _, err := cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: &group, LogStreamName: &stream}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: &group, LogStreamName: &stream,
		LogEvents: []cwtypes.InputLogEvent{{Message: awssdk.String("a new line"), Timestamp: awssdk.Int64(time.Now().Add(time.Minute).UnixMilli())}}}); err != nil {
		t.Fatal(err)
	}
	for lines.Text() != "a new line" {
		if !lines.Scan() {
			t.Fatalf("logs -f ended before the new line: %v", lines.Err())
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Logs -f after cancel = %v", err)
	}
}
