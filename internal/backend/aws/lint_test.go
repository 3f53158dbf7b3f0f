package aws_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/cli"
)

// installCFNLint is the command that installs the pinned cfn-lint the
// lint test runs (scripts/setup --for-tests runs it).
const installCFNLint = "scripts/cfn-lint install"

// lintConfigs are the configs whose templates go through cfn-lint: each
// network (a VPC of its own, an existing one) with and without TLS, with a
// model store with and without keys, a warehouse whose password is an
// ${aws-sm:...} reference, and sizes with GPUs and with a bigger root
// volume and workspace; on spot capacity (spot: true, and a GPU size with
// spot: prefer); and a load balancer shared by the site
// (aws.shared_load_balancer) in either network, with and without TLS, the
// first with the portal's service (aws.portal). Every config's site
// template and its workspace and instance templates for every size (and
// for no size) are linted.
var lintConfigs = []struct{ name, region, yaml string }{
	{"own-vpc-tls", "us-east-1", `backend: aws
access:
  allow: [203.0.113.0/24, 198.51.100.0/24]
  password_hash: $argon2id$v=19$m=65536,t=3,p=2$ihU4ZRXtPa7Lm1BvveACZg$glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pRM
warehouse: {host: dw.example.redshift.amazonaws.com, database: analytics, user: nb,
            password: "${aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:dw-AbCdEf}"}
models: {url: s3://team-models/notebooks/}
aws:
  region: us-east-1
  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789
  key_name: analytics
  site: analytics
` + lintSizes},
	{"own-vpc-http", "us-east-1", `backend: aws
access:
  insecure_http: true
  allow: [203.0.113.0/24]
aws:
  region: us-east-1
  site: test
` + lintSizes},
	{"existing-vpc-tls", "eu-west-1", `backend: aws
access:
  allow: [203.0.113.0/24, 2001:db8::/48]
  trusted_proxies: [10.20.0.0/16]
models: {url: s3://team-models/notebooks/, access_key_id: AKIDEXAMPLE, secret_access_key: "${aws-sm:models-secret-key}"}
warehouse: {host: dw.example, database: a, user: nb, password: "${aws-sm:dw-password}"}
aws:
  region: eu-west-1
  certificate_arn: arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789
  vpc_id: vpc-0123456789abcdef0
  public_subnets: [subnet-0aaaaaaaaaaaaaaa1, subnet-0aaaaaaaaaaaaaaa2]
  private_subnets: [subnet-0bbbbbbbbbbbbbbb1, subnet-0bbbbbbbbbbbbbbb2]
` + lintSizes},
	{"existing-vpc-http", "eu-west-1", `backend: aws
access:
  insecure_http: true
  allow: [203.0.113.0/24, 198.51.100.7, 2001:db8::/48]
  trusted_proxies: [10.20.0.0/16]
aws:
  region: eu-west-1
  vpc_id: vpc-0123456789abcdef0
  public_subnets: [subnet-0aaaaaaaaaaaaaaa1, subnet-0aaaaaaaaaaaaaaa2, subnet-0aaaaaaaaaaaaaaa3]
  private_subnets: [subnet-0bbbbbbbbbbbbbbb1, subnet-0bbbbbbbbbbbbbbb2]
` + lintSizes},
	{"shared-alb-own-vpc-tls", "us-east-1", `backend: aws
access:
  allow: [203.0.113.0/24, 198.51.100.0/24]
models: {url: s3://team-models/notebooks/}
aws:
  region: us-east-1
  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789
  site: analytics
  shared_load_balancer: true
  domain: notebooks.example.com
  portal: {enabled: true, image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/spinbook:1.4}
` + lintSizes},
	{"shared-alb-existing-vpc-http", "eu-west-1", `backend: aws
access:
  insecure_http: true
  allow: [203.0.113.0/24, 2001:db8::/48]
  trusted_proxies: [10.20.0.0/16]
aws:
  region: eu-west-1
  vpc_id: vpc-0123456789abcdef0
  public_subnets: [subnet-0aaaaaaaaaaaaaaa1, subnet-0aaaaaaaaaaaaaaa2]
  private_subnets: [subnet-0bbbbbbbbbbbbbbb1, subnet-0bbbbbbbbbbbbbbb2]
  shared_load_balancer: true
  domain: nb.example.org
` + lintSizes},
}

const lintSizes = `sizes:
  gpu: {cpus: 8, memory: 60GiB, gpus: 1, shm: 16GiB, instance_type: g5.2xlarge}
  bigdisk: {instance_type: m6i.2xlarge, root_volume_gib: 500, storage: 2TiB}
  spot: {instance_type: m6i.2xlarge, spot: true}
  spotgpu: {gpus: 1, instance_type: g5.xlarge, spot: prefer, spot_price: "0.35"}
`

// lintCanary is a template cfn-lint must fault (E3002, an unknown
// property), linted with the real ones: it shows cfn-lint ran on the
// files and that its findings are read.
const lintCanary = `{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"NoSuchProperty": "x"}}}}`

// TestTemplatesLint renders the templates of every config in lintConfigs
// with `spinbook aws render`, runs cfn-lint once on them all, in every
// region of the matrix, and fails listing every error and warning. No rule
// is ignored (docs/aws.md, "Templates are linted"): an ignore needs its
// reason there and beside an --ignore-checks here.
func TestTemplatesLint(t *testing.T) {
	lint := cfnLint(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SPINBOOK_CONFIG", "")
	out := t.TempDir()
	var files []string
	regions := map[string]bool{}
	for _, c := range lintConfigs {
		regions[c.region] = true
		cfg := filepath.Join(home, c.name+".yaml")
		if err := os.WriteFile(cfg, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, size := range []string{"", "gpu", "bigdisk", "spot", "spotgpu"} {
			dir := filepath.Join(out, c.name, "size-"+size)
			if size == "" {
				dir = filepath.Join(out, c.name, "default-size")
			}
			args := []string{"--config", cfg, "aws", "render", "--user", "alice", "--out", dir}
			if size != "" {
				args = append(args, "--size", size)
			}
			if code := cli.Main(args); code != 0 {
				t.Fatalf("spinbook %s exited %d", strings.Join(args, " "), code)
			}
			rendered, err := filepath.Glob(filepath.Join(dir, "*.json"))
			if err != nil || len(rendered) != 3 {
				t.Fatalf("spinbook %s wrote %v (%v), want the site, workspace and instance templates", strings.Join(args, " "), rendered, err)
			}
			for _, f := range rendered {
				// The site template is the same for every size: once.
				if size == "" || strings.Contains(f, "-alice") {
					files = append(files, f)
				}
			}
		}
	}
	canary := filepath.Join(out, "canary.json")
	if err := os.WriteFile(canary, []byte(lintCanary), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{"--format", "json", "--include-checks", "I", "--regions"}
	for _, r := range slices.Sorted(maps.Keys(regions)) {
		args = append(args, r)
	}
	args = append(args, "--")
	args = append(args, files...)
	args = append(args, canary)
	cmd := exec.Command(lint, args...)
	cmd.Dir = out // no .cfnlintrc of the checkout's or the user's applies
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", lint, err)
	}
	// cfn-lint's exit code is a bit mask of the levels found (2 error, 4
	// warning, 8 informational); 1 is its own failure.
	if exit != nil && exit.ExitCode()&1 != 0 {
		t.Fatalf("cfn-lint failed (exit %d): %s%s", exit.ExitCode(), stdout, stderr.String())
	}
	var findings []struct {
		Filename string
		Level    string
		Message  string
		Rule     struct{ Id string }
		Location struct {
			Start struct{ LineNumber int }
		}
	}
	if err := json.Unmarshal(stdout, &findings); err != nil {
		t.Fatalf("cfn-lint's output is not its JSON (%v): %s%s", err, stdout, stderr.String())
	}
	canaryFound := false
	for _, f := range findings {
		if f.Filename == canary || f.Filename == filepath.Base(canary) {
			canaryFound = canaryFound || f.Rule.Id == "E3002"
			continue
		}
		rel, err := filepath.Rel(out, f.Filename)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = f.Filename
		}
		if f.Level == "Informational" { // advice, not a fault: shown with -v
			t.Logf("%s:%d: %s %s: %s", rel, f.Location.Start.LineNumber, f.Level, f.Rule.Id, f.Message)
			continue
		}
		msg := f.Message
		if len(msg) > 400 { // E3628 and its kin list every allowed value
			msg = msg[:400] + "..."
		}
		t.Errorf("%s:%d: %s %s: %s", rel, f.Location.Start.LineNumber, f.Level, f.Rule.Id, msg)
	}
	if !canaryFound {
		t.Errorf("cfn-lint did not fault %s with E3002: its findings are not being read (%d findings: %s)", canary, len(findings), stdout)
	}
	t.Logf("cfn-lint: %d templates of %d configs, regions %v", len(files), len(lintConfigs), slices.Sorted(maps.Keys(regions)))
}

// cfnLint returns the path of the pinned cfn-lint (scripts/cfn-lint). It
// is missing only where scripts/setup --for-tests has not run: a failure in
// CI, a skip elsewhere, naming the command that installs it.
func cfnLint(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "scripts", "cfn-lint"))
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(script, "which")
	cmd.Stderr = &stderr
	path, err := cmd.Output()
	if err != nil {
		t.Log(strings.TrimSpace(stderr.String()))
		msg := fmt.Sprintf("no cfn-lint (scripts/cfn-lint which: %v): install it with %s (scripts/setup --for-tests does)", err, installCFNLint)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(path))
}
