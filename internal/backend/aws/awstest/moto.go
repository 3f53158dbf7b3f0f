// Package awstest is the AWS of the tests: moto's server (PyPI
// moto[server], pinned in scripts/moto/lock.txt, installed by
// `scripts/moto-server install`, which `scripts/setup --for-tests` runs), an
// independent implementation of the AWS APIs, started by each test on a
// free loopback port. The AWS SDK reaches it by the standard settings: the
// endpoint (AWS_ENDPOINT_URL, or aws.Config.BaseEndpoint), static
// credentials and a region.
//
//	m := awstest.Start(t)         // moto on 127.0.0.1:PORT, stopped by t.Cleanup
//	cfg := m.Config()             // an aws.Config for in-process clients
//	cmd.Env = append(os.Environ(), m.Env()...) // for a child process
//
// What moto cannot play — an EC2 instance that runs the ECS task, and the
// load balancer in front of it — is the instance stand-in (instances.go),
// which is named as such wherever it is used.
//
// Without moto installed the tests skip on a developer's machine and fail
// when CI is set (CI installs it).
package awstest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
)

//go:embed motopatch/standin_server.py
var standinServer []byte

// Version is moto's version, as pinned in scripts/moto/requirements.in.
const Version = "5.2.5"

// Install is the command that installs the pinned moto_server.
const Install = "scripts/moto-server install"

// Region and Account are where moto's resources live: moto's default
// account, and the region the tests use.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// The credentials the tests sign with while moto does not enforce IAM
// (any key is accepted then).
const (
	AccessKeyID     = "AKIDMOTOTEST"
	SecretAccessKey = "moto-test-secret"
)

// AWS is one running moto_server.
type AWS struct {
	// Endpoint is its URL, http://127.0.0.1:PORT: every service at once.
	Endpoint string
	// Region is the region the clients use.
	Region string

	cmd  *exec.Cmd
	logs *proctest.Buffer
}

// Start starts moto_server for t on a free loopback port, waits until it
// answers and stops it when t ends; its output is shown if t fails.
func Start(t testing.TB) *AWS {
	t.Helper()
	bin := Binary(t)
	// moto_server's own Python runs it, with the moto side of the instance
	// stand-in (motopatch/standin_server.py) loaded first.
	script := filepath.Join(t.TempDir(), "standin_server.py")
	if err := os.WriteFile(script, standinServer, 0o644); err != nil {
		t.Fatal(err)
	}
	python := filepath.Join(filepath.Dir(bin), "python")
	var m *AWS
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		port := ports[0]
		m = &AWS{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), Region: Region, logs: &proctest.Buffer{}}
		m.cmd = exec.Command(python, script, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
		// Nothing of the developer's AWS or moto settings reaches it.
		m.cmd.Env = cleanEnv()
		m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			t.Fatalf("start moto_server: %v", err)
		}
		exited := make(chan struct{})
		go func() { m.cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			if t.Failed() {
				t.Logf("moto_server's output:\n%s", m.logs.Tail(8000))
			}
		})
		if m.waitReady(exited, 60*time.Second) {
			return m
		}
		// Another process took the port between freePort and the bind.
		if attempt < 2 && strings.Contains(m.logs.String(), "Address already in use") {
			continue
		}
		t.Fatalf("moto_server did not answer at %s:\n%s", m.Endpoint, m.logs.Tail(4000))
	}
}

// Binary returns the installed moto_server of scripts/moto/lock.txt, or
// skips t (fails it when CI is set) naming the command that installs it.
func Binary(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err == nil {
		out, werr := exec.Command(filepath.Join(root, "scripts", "moto-server"), "which").Output()
		if p := strings.TrimSpace(string(out)); werr == nil && p != "" {
			return p
		}
		err = fmt.Errorf("not installed: %w", werr)
	}
	msg := fmt.Sprintf("moto_server %s is needed (%v): run %s (scripts/setup --for-tests does)", Version, err, Install)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// waitReady polls moto's own API until it answers or the process ends.
func (m *AWS) waitReady(exited <-chan struct{}, d time.Duration) bool {
	deadline := time.Now().Add(d)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := c.Get(m.Endpoint + "/moto-api/data.json"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Config is an aws.Config for in-process clients: moto's endpoint, the
// region, and the test credentials.
func (m *AWS) Config() awssdk.Config {
	return m.ConfigAs(AccessKeyID, SecretAccessKey, "")
}

// ConfigAs is Config signed with other credentials: an access key moto's
// IAM made (EnforceIAM), or a role's temporary ones.
func (m *AWS) ConfigAs(keyID, secret, session string) awssdk.Config {
	return awssdk.Config{
		Region:       m.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, session),
		BaseEndpoint: awssdk.String(m.Endpoint),
	}
}

// Env is the environment a child process needs to reach moto with the
// test credentials, through the AWS SDK's standard settings, with nothing
// of the developer's own AWS configuration (profiles, ~/.aws, instance
// metadata) left to find. Append it after os.Environ().
func (m *AWS) Env() []string {
	return m.EnvAs(AccessKeyID, SecretAccessKey, "")
}

// EnvAs is Env with other credentials.
func (m *AWS) EnvAs(keyID, secret, session string) []string {
	none := filepath.Join(os.TempDir(), "awstest-no-aws-config")
	return []string{
		"AWS_ENDPOINT_URL=" + m.Endpoint,
		"AWS_ACCESS_KEY_ID=" + keyID, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_SESSION_TOKEN=" + session,
		"AWS_REGION=" + m.Region, "AWS_DEFAULT_REGION=" + m.Region,
		"AWS_PROFILE=", "AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
	}
}

// Setenv sets Env in this process for the rest of t (t.Setenv: not with
// t.Parallel).
func (m *AWS) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Reset forgets every resource moto holds (POST /moto-api/reset).
func (m *AWS) Reset(ctx context.Context) error {
	return m.post(ctx, "/moto-api/reset", "")
}

// EnforceIAM makes moto check, from now on, every request's signature
// against the access keys its IAM holds and the action against their
// policies, as AWS does (POST /moto-api/reset-auth with 0 unchecked
// requests). Set up what needs more rights before: Config's test
// credentials are refused afterwards.
func (m *AWS) EnforceIAM(ctx context.Context) error {
	return m.post(ctx, "/moto-api/reset-auth", "0")
}

func (m *AWS) post(ctx context.Context, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto %s: %s", path, resp.Status)
	}
	return nil
}

// Logs is what moto_server printed so far (one line per request).
func (m *AWS) Logs() string { return m.logs.String() }

// cleanEnv is this process's environment without AWS_* and MOTO_*
// settings.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "MOTO_") && !strings.HasPrefix(kv, "INITIAL_NO_AUTH") {
			out = append(out, kv)
		}
	}
	return out
}

// repoRoot is the directory holding go.mod, from the test's directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// IsAccessDenied reports whether err is IAM's refusal as moto sends it:
// AccessDenied, or, from the services that speak JSON, a 403 whose XML
// body the SDK cannot read as their error.
func IsAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}
