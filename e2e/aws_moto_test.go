package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestAWSSiteUpDown drives site up, up (twice), ls, status, down and site down
// of the built binary against moto (package awstest) with the real
// templates; the instance stand-in runs the agent this build makes, with
// the spec moto's Secrets Manager holds, and is the load balancer the
// command reaches through HTTP_PROXY. down saves the workspace to a real
// git remote through the agent first. The secrets went to Secrets Manager
// only: no template, parameter or output CloudFormation holds has one.
func TestAWSSiteUpDown(t *testing.T) {
	needJupyter(t)
	m := awstest.Start(t)
	in := m.StartInstances(t, awstest.InstanceOptions{Agent: bin, JupyterCommand: awstest.Jupyter(t)})
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)

	w := &world{t: t, stateDir: t.TempDir(), users: map[string]bool{}}
	w.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	cfg := `backend: aws
access:
  insecure_http: true
  allow: [203.0.113.0/24, 127.0.0.1/32]
warehouse: {host: dw.example.redshift.amazonaws.com, database: analytics, user: nb, password: "${env:SPINBOOK_TEST_AWS_DW}"}
repo: {url: "` + g.URL() + `", token: "${env:SPINBOOK_TEST_AWS_GIT}"}
aws:
  region: us-east-1
  site: e2e
`
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.env = append(append(append(os.Environ(), m.Env()...), in.ProxyEnv()...),
		"SPINBOOK_CONFIG="+w.config, "SPINBOOK_USER=", "HOME="+t.TempDir(), "SPINBOOK_TEST_AWS_GIT="+token, "SPINBOOK_TEST_AWS_DW="+awsCanary)

	if r := w.run("site", "up"); r.code != 0 || !strings.Contains(r.stderr, "egress address (NAT gateway)") || !strings.Contains(r.stdout, "site up: done") {
		t.Fatalf("site up: %s", r)
	}
	r := w.run("up", "--json", "--user", "alice")
	if r.code != 0 {
		t.Fatalf("up: %s", r)
	}
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || !s.Ready || s.Backend != "aws" || s.Password == "" ||
		!strings.HasSuffix(strings.TrimSuffix(s.URL, "/"), ".elb.amazonaws.com") {
		t.Fatalf("up printed %+v (%v)\n%s", s, err, r)
	}
	task := in.Task("alice")
	if task == nil || !strings.Contains(s.URL, task.Host) {
		t.Fatalf("no task of alice behind %s", s.URL)
	}
	if strings.Contains(r.stdout+r.stderr, token) || strings.Contains(r.stdout+r.stderr, awsCanary) {
		t.Error("up printed a secret")
	}
	cf := cloudformation.NewFromConfig(m.Config())
	for _, name := range []string{"spinbook-e2e", "spinbook-e2e-alice"} {
		tmpl, err := cf.GetTemplate(t.Context(), &cloudformation.GetTemplateInput{StackName: &name})
		if err != nil {
			t.Fatal(err)
		}
		st, err := cf.DescribeStacks(t.Context(), &cloudformation.DescribeStacksInput{StackName: &name})
		if err != nil {
			t.Fatal(err)
		}
		held, _ := json.Marshal(st.Stacks)
		for _, secret := range []string{token, awsCanary, s.Password, "argon2id"} {
			if strings.Contains(*tmpl.TemplateBody+string(held), secret) {
				t.Errorf("CloudFormation holds a secret of the stack %s", name)
			}
		}
	}
	spec, err := secretsmanager.NewFromConfig(m.Config()).GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("spinbook/e2e/alice/agent-spec")})
	if err != nil || !strings.Contains(*spec.SecretString, awsCanary) || !strings.Contains(*spec.SecretString, token) {
		t.Errorf("the spec secret does not hold the warehouse password and the git token (%v)", err)
	}
	if r := w.run("up", "--user", "alice"); r.code != 0 || !strings.Contains(r.stdout, "already running") {
		t.Errorf("second up: %s", r)
	}
	if r := w.run("ls", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"user": "alice"`) {
		t.Errorf("ls: %s", r)
	}
	if r := w.run("site", "down"); r.code == 0 || !strings.Contains(r.stderr, "alice") {
		t.Errorf("site down with a server: %s", r)
	}
	// Work in the workspace, not saved by hand: down saves it first.
	gittest.WriteFiles(t, task.Workspace, map[string]string{"notes.txt": "written on aws\n",
		".gitignore": "scratch/\n", "scratch/cache.bin": "not in git\n"})
	if r := w.run("down", "--user", "alice"); r.code != 0 {
		t.Fatalf("down: %s\nagent:\n%s", r, task.Logs())
	}
	if got := g.Tree(t, "main")["notes.txt"]; got != "written on aws\n" {
		t.Errorf("after down the remote holds notes.txt = %q, want the work saved", got)
	}
	if r := w.run("status", "--json", "--user", "alice"); r.code != 0 || !strings.Contains(r.stdout, `"absent"`) || !strings.Contains(r.stdout, `"workspace_volume"`) {
		t.Errorf("status after down does not show the kept workspace: %s", r)
	}
	// The workspace volume outlives the instance: a file that is in no
	// commit (ignored by git) is there again after the next up.
	if r := w.run("site", "down"); r.code == 0 || !strings.Contains(r.stderr, "down --purge --user USER") {
		t.Errorf("site down with a kept workspace: %s", r)
	}
	if r := w.run("up", "--user", "alice"); r.code != 0 {
		t.Fatalf("up on the kept workspace: %s", r)
	}
	again := in.WaitTask(t, "alice", 2*time.Minute)
	if got, err := os.ReadFile(filepath.Join(again.Workspace, "scratch", "cache.bin")); err != nil || string(got) != "not in git\n" {
		t.Errorf("after down and up the workspace's untracked file = %q, %v; want it kept on the volume", got, err)
	}
	if r := w.run("down", "--user", "alice", "--purge"); r.code != 0 {
		t.Fatalf("down --purge: %s\nagent:\n%s", r, again.Logs())
	}
	if r := w.run("site", "down"); r.code != 0 {
		t.Errorf("site down: %s", r)
	}
}
