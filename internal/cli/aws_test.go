package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
)

// TestAWSRender: `aws render` writes both templates, as JSON, with no
// secret of the config in them, and needs no AWS at all.
func TestAWSRender(t *testing.T) {
	t.Setenv("SPINBOOK_CONFIG", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "spinbook.yaml")
	const canary = "CANARY-render-dw-password"
	body := `backend: aws
access: {allow: [203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24]INSECURE}
warehouse: {host: dw.example, database: a, user: nb, password: ` + canary + `}
aws: {site: team}
sizes: {gpu: {gpus: 1, instance_type: g5.2xlarge}}
`
	out := filepath.Join(dir, "review")

	// Without a certificate, plain HTTP must be accepted in so many words.
	os.WriteFile(cfg, []byte(strings.Replace(body, "INSECURE", "", 1)), 0o600)
	code, _, stderr := runCLI(t, "aws", "render", "--config", cfg, "--user", "alice", "--size", "gpu", "--out", out)
	if code != 2 || !strings.Contains(stderr, "aws.certificate_arn") || !strings.Contains(stderr, "in clear") || !strings.Contains(stderr, "access.insecure_http") {
		t.Errorf("render without a certificate: exit %d, %q; want 2 saying why and how to accept it", code, stderr)
	}
	os.WriteFile(cfg, []byte(strings.Replace(body, "INSECURE", ", insecure_http: true", 1)), 0o600)
	code, stdout, stderr := runCLI(t, "aws", "render", "--config", cfg, "--user", "alice", "--size", "gpu", "--out", out)
	if code != 0 {
		t.Fatalf("aws render exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "PLAIN HTTP") {
		t.Errorf("no warning about plain HTTP without a certificate: %q", stderr)
	}
	for _, name := range []string{"spinbook-team.json", "spinbook-team-alice.json"} {
		p := filepath.Join(out, name)
		if !strings.Contains(stdout, p) {
			t.Errorf("stdout does not list %s: %q", p, stdout)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tpl struct{ Resources map[string]any }
		if err := json.Unmarshal(data, &tpl); err != nil || len(tpl.Resources) == 0 {
			t.Errorf("%s is not a template: %v", name, err)
		}
		if strings.Contains(string(data), canary) {
			t.Errorf("%s holds the warehouse password", name)
		}
	}
	if code, _, _ := runCLI(t, "aws", "render", "--config", cfg); code != exitUsage {
		t.Errorf("aws render without --out exited %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCLI(t, "aws", "render", "--config", cfg, "--size", "huge", "--out", out); code != exitUsage {
		t.Errorf("aws render --size huge exited %d, want %d", code, exitUsage)
	}
}

// TestAWSDeleteOwnStack: the hidden command an agent runs after an idle
// stop deletes exactly the stack it names in moto (package awstest), with
// the credentials of the SDK's default chain (here: variables, and moto as
// the endpoint), and is not listed in help.
func TestAWSDeleteOwnStack(t *testing.T) {
	m := awstest.Start(t)
	cf := cloudformation.NewFromConfig(m.Config())
	for _, name := range []string{"spinbook-team-alice", "spinbook-team-bob"} {
		if _, err := cf.CreateStack(t.Context(), &cloudformation.CreateStackInput{StackName: awssdk.String(name),
			TemplateBody: awssdk.String(`{"Resources":{"Log":{"Type":"AWS::Logs::LogGroup","Properties":{"LogGroupName":"/` + name + `"}}}}`)}); err != nil {
			t.Fatal(err)
		}
	}
	m.Setenv(t)
	t.Setenv("SPINBOOK_CONFIG", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	code, _, stderr := runCLI(t, "aws", "delete-own-stack", "--stack", "spinbook-team-alice", "--region", "us-east-1", "--wait", "10s")
	if code != 0 {
		t.Fatalf("aws delete-own-stack exited %d: %s", code, stderr)
	}
	status := func(name string) string {
		out, err := cf.DescribeStacks(t.Context(), &cloudformation.DescribeStacksInput{StackName: &name})
		if err != nil || len(out.Stacks) == 0 {
			return "gone"
		}
		return string(out.Stacks[0].StackStatus)
	}
	if got := status("spinbook-team-alice"); got != "gone" && got != "DELETE_COMPLETE" {
		t.Errorf("alice's stack is %s, want it deleted", got)
	}
	if got := status("spinbook-team-bob"); got != "CREATE_COMPLETE" {
		t.Errorf("bob's stack is %s, want it untouched", got)
	}
	if !strings.Contains(stderr, "spinbook-team-alice is deleted") {
		t.Errorf("stderr does not say the stack is deleted: %q", stderr)
	}

	if code, _, _ := runCLI(t, "aws", "delete-own-stack", "--region", "us-east-1"); code != exitUsage {
		t.Errorf("delete-own-stack without --stack exited %d, want %d", code, exitUsage)
	}
	if code, _, stderr := runCLI(t, "aws", "delete-own-stack", "--stack", "other", "--region", "us-east-1"); code == 0 || !strings.Contains(stderr, "not a spinbook instance stack") {
		t.Errorf("delete-own-stack --stack other exited %d: %q, want a refusal", code, stderr)
	}
	if _, stdout, _ := runCLI(t, "aws", "--help"); strings.Contains(stdout, "delete-own-stack") {
		t.Errorf("aws --help lists the hidden command:\n%s", stdout)
	}
}
