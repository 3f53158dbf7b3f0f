package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
	"github.com/spinbook/spinbook/internal/config"
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
	for _, name := range []string{"spinbook-team.json", "spinbook-team-alice-Workspace.json", "spinbook-team-alice.json"} {
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

// TestAWSDownPurgeSnapshot: on aws, `down` keeps the workspace volume and
// `status` shows it with its monthly cost; `down --purge --snapshot`
// takes the snapshot, prints its id, then deletes the volume; --snapshot
// without --purge is a usage error that stops nothing.
func TestAWSDownPurgeSnapshot(t *testing.T) {
	si := awsstandin.New()
	t.Cleanup(si.Close)
	agent := si.Agent(map[string]string{"alice": aws.SecretPrefix("team", "alice") + "agent-spec"})
	t.Cleanup(agent.Close)
	const subnet, volume = "subnet-0a1b2c3d4e5f60718", "vol-0123456789abcdef0"
	for k, v := range map[string]string{"AgentBucket": "spinbook-team-agentbucket-1", "StackRoleArn": "arn:aws:iam::123456789012:role/spinbook-team-StackRole-1",
		"PrivateSubnet": subnet, "VolumeId": volume, "URL": agent.URL + "/"} {
		si.Outputs[k] = v
	}
	si.AddSubnet(subnet, "us-east-1a")
	si.AddVolume(awsstandin.Volume{ID: volume, Zone: "us-east-1a"})
	dir := t.TempDir()
	for k, v := range map[string]string{
		"SPINBOOK_CONFIG": "", "SPINBOOK_USER": "", "AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_CLOUDFORMATION": "",
		"AWS_ENDPOINT_URL": si.URL, "AWS_ACCESS_KEY_ID": "AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY": "stand-in-secret",
	} {
		t.Setenv(k, v)
	}
	cfgPath := filepath.Join(dir, "spinbook.yaml")
	os.WriteFile(cfgPath, []byte(`backend: aws
access: {allow: [203.0.113.0/24], insecure_http: true}
aws: {site: team, region: us-east-1, workspace_size: 100GiB}
`), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	agentBin, err := awsstandin.AgentELF(dir)
	if err != nil {
		t.Fatal(err)
	}
	sdk := awssdk.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "stand-in-secret", ""),
		BaseEndpoint: awssdk.String(si.URL)}
	be, err := aws.New(cfg, slog.New(slog.DiscardHandler), aws.Options{AgentPath: agentBin, SDK: &sdk, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	quiet := func(backend.Event) {}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := be.SiteUp(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	spec := backend.Spec{User: "alice", Agent: backend.AgentSpec{ControlToken: "control-token-of-the-test"}}
	if _, err := be.Up(ctx, spec, quiet); err != nil {
		t.Fatal(err)
	}
	if err := be.Down(ctx, "alice", quiet); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "status", "--config", cfgPath, "--user", "alice")
	if code != 0 || !strings.Contains(stdout, volume) || !strings.Contains(stdout, "100 GiB gp3 in us-east-1a") || !strings.Contains(stdout, "$8.00 a month") {
		t.Errorf("status with a kept workspace: exit %d, %s%s; want the volume, its size, zone and monthly cost", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "ls", "--config", cfgPath)
	if code != 0 || !strings.Contains(stdout, "alice: no server; workspace "+volume) || !strings.Contains(stdout, "down --purge --user alice") {
		t.Errorf("ls with a kept workspace: exit %d, %s%s; want a note naming it and its purge", code, stdout, stderr)
	}

	if code, _, stderr := runCLI(t, "down", "--config", cfgPath, "--user", "alice", "--snapshot"); code != exitUsage || !strings.Contains(stderr, "add --purge") {
		t.Errorf("down --snapshot without --purge: exit %d, %q", code, stderr)
	}
	if !si.HasVolume(volume) || len(si.Snapshots()) != 0 {
		t.Fatal("a refused down --snapshot touched the volume")
	}
	code, stdout, stderr = runCLI(t, "down", "--config", cfgPath, "--user", "alice", "--purge", "--snapshot")
	snaps := si.Snapshots()
	if code != 0 || len(snaps) != 1 || !strings.Contains(stdout, "snapshot "+snaps[0].ID) || !strings.Contains(stderr, snaps[0].ID) {
		t.Fatalf("down --purge --snapshot: exit %d, %s%s; snapshots %+v", code, stdout, stderr, snaps)
	}
	if snaps[0].Volume != volume || si.HasVolume(volume) {
		t.Errorf("the snapshot is of %s (want %s), and the volume is there: %v", snaps[0].Volume, volume, si.HasVolume(volume))
	}
	if status, _, _, _ := si.Stack(aws.WorkspaceStackName("team", "alice")); status != "DELETE_COMPLETE" {
		t.Errorf("the workspace stack is %s after the purge", status)
	}
}
