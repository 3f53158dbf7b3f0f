package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/secret"
)

// awsWorld runs the built binary with backend aws against a STAND-IN for
// AWS (package awsstandin: the real CloudFormation, Secrets Manager and S3
// wire protocols, nothing built), the AWS SDK pointed at it by
// AWS_ENDPOINT_URL with static credentials. The stack's URL output leads to
// a fake agent that answers the control API (status, save) to the holder
// of the control token stored in the user's spec secret.
type awsWorld struct {
	*world
	si    *awsstandin.StandIn
	saves atomic.Int32
}

const (
	awsCanary    = "CANARY-e2e-aws-dw-password-61f0"
	awsGitCanary = "CANARY-e2e-aws-git-token-93c2"
	awsVolume    = "vol-0e2e0e2e0e2e0e2e0"
)

func newAWSWorld(t *testing.T, cfg string) *awsWorld {
	t.Helper()
	si := awsstandin.New()
	t.Cleanup(si.Close)
	w := &awsWorld{si: si}
	agent := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		raw, _ := si.Secret("spinbook/e2e/alice/agent-spec")
		var spec backend.AgentSpec
		json.Unmarshal([]byte(raw), &spec)
		if spec.ControlToken == "" || r.Header.Get("Authorization") != "Bearer "+spec.ControlToken {
			http.Error(rw, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/spinbook/api/status":
			io.WriteString(rw, `{"user":"alice","ready":true}`)
		case "/spinbook/api/save":
			w.saves.Add(1)
			io.WriteString(rw, `{"repo":true,"result":{"committed":"abc123","head":"abc123","branch":"main","pushed_to":"origin/main","saved":true}}`)
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(agent.Close)
	si.SetOutput("AgentBucket", "spinbook-e2e-agentbucket-0a1b")
	si.SetOutput("NatAddress", "198.51.100.77")
	si.SetOutput("URL", agent.URL+"/")
	si.SetOutput("StackRoleArn", "arn:aws:iam::123456789012:role/spinbook-e2e-StackRole-0a1b")
	// The site's private subnet and the workspace volume (the stand-in
	// makes no volume from a template).
	si.SetOutput("PrivateSubnet", "subnet-0e2e0e2e0e2e0e2e0")
	si.AddSubnet("subnet-0e2e0e2e0e2e0e2e0", "us-east-1a")
	si.SetOutput("VolumeId", awsVolume)
	si.AddVolume(awsstandin.Volume{ID: awsVolume, Zone: "us-east-1a"})

	w.world = &world{t: t, stateDir: t.TempDir(), users: map[string]bool{}}
	w.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	w.env = append(os.Environ(), "SPINBOOK_CONFIG="+w.config, "SPINBOOK_USER=", "HOME="+home,
		"AWS_ENDPOINT_URL="+si.URL, "AWS_ACCESS_KEY_ID=AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY=stand-in-secret",
		"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "none"),
		"SPINBOOK_TEST_AWS_DW="+awsCanary, "SPINBOOK_TEST_AWS_GIT="+awsGitCanary)
	return w
}

const awsConfig = `backend: aws
access:
  allow: [203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, 100.64.7.0/24]
warehouse: {host: dw.example.redshift.amazonaws.com, database: analytics, user: nb, password: "${env:SPINBOOK_TEST_AWS_DW}"}
repo: {url: "https://git.example.com/team/notebooks.git", token: "${env:SPINBOOK_TEST_AWS_GIT}"}
aws:
  region: us-east-1
  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789
  site: e2e
sizes:
  gpu: {cpus: 8, memory: 60GiB, gpus: 1, shm: 16GiB, instance_type: g5.2xlarge}
`

// TestAWSMissingCredentialsAndRegion: each stops the command with a
// sentence saying what is missing and what to do.
func TestAWSMissingCredentialsAndRegion(t *testing.T) {
	w := newAWSWorld(t, strings.Replace(awsConfig, "  region: us-east-1\n", "", 1))
	if r := w.run("status", "--user", "alice"); r.code == 0 || !strings.Contains(r.stderr, "no AWS region") || !strings.Contains(r.stderr, "aws.region") {
		t.Errorf("status without a region: %s", r)
	}
	w = newAWSWorld(t, awsConfig)
	w.env = append(w.env, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	if r := w.run("site", "up"); r.code == 0 || !strings.Contains(r.stderr, "no AWS credentials") || !strings.Contains(r.stderr, "aws configure") {
		t.Errorf("site up without credentials: %s", r)
	}
	if _, calls := w.si.Requests(); len(calls) != 0 {
		t.Errorf("calls reached AWS without credentials: %v", calls)
	}
}

// TestAgentSpecFromEnvironment runs the agent as the aws task does: the
// spec in SPINBOOK_AGENT_SPEC_JSON (ECS injects it from Secrets Manager),
// TLS ended by a load balancer in front. The agent serves, Jupyter's
// environment does not hold the spec, and the session cookie is Secure.
func TestAgentSpecFromEnvironment(t *testing.T) {
	needJupyter(t)
	hash, err := secret.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	state := t.TempDir()
	spec := backend.AgentSpec{
		User: "alice", Workspace: filepath.Join(t.TempDir(), "work"), StateDir: state,
		Listen: "127.0.0.1", FrontPort: ports[0], HealthPort: ports[1],
		PasswordHash: hash, ControlToken: "CANARY-control-token-from-env", BehindTLS: true,
	}
	data, _ := json.Marshal(spec)
	// The load balancer's name comes as --host, as the task definition
	// passes it (it exists only once the stack made the load balancer).
	const albName = "spinbook-team-alice-1234567890.us-east-1.elb.amazonaws.com"
	cmd := exec.Command(bin, "agent", "--spec-env", "SPINBOOK_AGENT_SPEC_JSON", "--host", albName)
	cmd.Env = append(os.Environ(), "SPINBOOK_AGENT_SPEC_JSON="+string(data))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	health := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	waitFor(t, "the agent's /readyz", 90*time.Second, func() bool {
		resp, err := http.Get(health)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	var rec backend.ProcessRecord
	raw, err := os.ReadFile(filepath.Join(state, "jupyter.json"))
	if err != nil || json.Unmarshal(raw, &rec) != nil {
		t.Fatalf("jupyter.json: %v", err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", rec.PID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("SPINBOOK_AGENT_SPEC_JSON")) || bytes.Contains(env, []byte("CANARY-control-token")) {
		t.Error("Jupyter's environment holds the agent spec")
	}

	b := newBrowser(t, fmt.Sprintf("http://127.0.0.1:%d", ports[0]), "")
	resp := b.login(t, "correct horse")
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(cookie, "__Host-spinbook-alice=") || !strings.Contains(cookie, "Secure") {
		t.Errorf("login behind TLS: %d, Set-Cookie %q; want a __Host- Secure cookie\n%s", resp.StatusCode, cookie, logs.String())
	}

	// The front door answers the load balancer's name, and no other.
	form := url.Values{"password": {"correct horse"}, "next": {"/"}}.Encode()
	formHeader := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for host, want := range map[string]int{albName: http.StatusSeeOther, "attacker.example": http.StatusMisdirectedRequest} {
		if resp := sendAs(t, newBrowser(t, b.origin(), ""), b.origin(), http.MethodPost, "/spinbook/login", host, form, formHeader); resp.StatusCode != want {
			t.Errorf("login with Host %s: %s, want %d", host, resp.Status, want)
		}
	}
}

// freePorts returns n ports free right now on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestAWSSharedLoadBalancerAndPortal drives the built binary through the
// stand-in with aws.shared_load_balancer and aws.portal: site up names
// the load balancer to point *.DOMAIN at and stores the portal's config
// file as it is written (references, never their values) in Secrets
// Manager only; up makes a rule for alice.DOMAIN and no load balancer;
// site down removes the portal's config secret.
func TestAWSSharedLoadBalancerAndPortal(t *testing.T) {
	cfg := strings.Replace(awsConfig, "  site: e2e\n", `  site: e2e
  shared_load_balancer: true
  domain: notebooks.example.com
  portal: {enabled: true, image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/spinbook:1.4}
`, 1)
	w := newAWSWorld(t, cfg)
	w.si.SetOutput("Listener", "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/spinbook-e2e/50dc6c495c0c9188/f2f7dc8efc522ab2")
	w.si.SetOutput("LoadBalancerDNS", "spinbook-e2e-1234567890.us-east-1.elb.amazonaws.com")
	w.si.SetOutput("PortalURL", "https://notebooks.example.com/")

	r := w.run("site", "up")
	if r.code != 0 || !strings.Contains(r.stderr, "spinbook-e2e-1234567890.us-east-1.elb.amazonaws.com") ||
		!strings.Contains(r.stderr, "*.notebooks.example.com") || !strings.Contains(r.stderr, "https://notebooks.example.com/") {
		t.Fatalf("site up: %s", r)
	}
	if !strings.Contains(r.stderr, "${env:") {
		t.Errorf("site up does not warn that the portal's task cannot resolve ${env:...}:\n%s", r.stderr)
	}
	stored, ok := w.si.Secret("spinbook/e2e/_portal/config")
	if !ok || stored != cfg || strings.Contains(stored, awsCanary) {
		t.Errorf("the portal's config secret = %q, %v; want the config file's text, references unresolved", stored, ok)
	}
	r = w.run("up", "--json", "--user", "alice")
	if r.code != 0 {
		t.Fatalf("up: %s", r)
	}
	tpl := w.si.Template("spinbook-e2e-alice")
	if !strings.Contains(tpl, `"Values":["alice.notebooks.example.com"]`) || strings.Contains(tpl, "AWS::ElasticLoadBalancingV2::LoadBalancer") {
		t.Errorf("alice's stack is not a rule for alice.notebooks.example.com without a load balancer:\n%s", tpl)
	}
	cfnRequests, _ := w.si.Requests()
	for _, req := range cfnRequests {
		if strings.Contains(req, awsCanary) || strings.Contains(req, awsGitCanary) || strings.Contains(req, "${env:") {
			t.Errorf("a CloudFormation request holds the config or a secret")
		}
	}
	// --purge: the workspace volume would keep the site up.
	if r := w.run("down", "--user", "alice", "--purge"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if r := w.run("site", "down"); r.code != 0 {
		t.Fatalf("site down: %s", r)
	}
	if _, ok := w.si.Secret("spinbook/e2e/_portal/config"); ok {
		t.Error("after site down the portal's config secret remains")
	}
}
