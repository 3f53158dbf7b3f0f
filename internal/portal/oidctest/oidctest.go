// Package oidctest starts a real OpenID Connect provider for tests: npm
// oidc-provider (OpenID-certified), run by provider/run.mjs with static
// accounts, one registered client and its own login page. Login drives that
// page over HTTP for tests that have no browser.
package oidctest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Client is the one OAuth client the provider knows.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
}

// Account is one person the provider can sign in.
type Account struct {
	Password string   `json:"password"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
}

// Accounts returns the static accounts every provider has, each with a
// fresh random password: alice (groups data, data-admins), bob (data) and
// carol (other), with emails at example.com.
func Accounts() map[string]Account {
	return map[string]Account{
		"alice": {Password: rand.Text(), Email: "alice@example.com", Groups: []string{"data", "data-admins"}},
		"bob":   {Password: rand.Text(), Email: "bob@example.com", Groups: []string{"data"}},
		"carol": {Password: rand.Text(), Email: "carol@example.com", Groups: []string{"other"}},
	}
}

// Provider is a running test provider.
type Provider struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:PORT);
	// discovery is at Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Accounts are the people it signs in, with their passwords.
	Accounts map[string]Account
	// Client is the registered client.
	Client Client
}

// Password returns account's password; the test fails for an unknown one.
func (p *Provider) Password(t testing.TB, account string) string {
	t.Helper()
	a, ok := p.Accounts[account]
	if !ok {
		t.Fatalf("oidctest: no account %q", account)
	}
	return a.Password
}

// Dir is the folder with run.mjs and its node_modules. OIDCTEST_DIR
// overrides it (for a test binary built away from its source).
func Dir() string {
	if d := os.Getenv("OIDCTEST_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "provider")
}

const install = "scripts/setup --for-tests (apt nodejs npm; npm ci in internal/portal/oidctest/provider)"

// Start runs a provider with the static Accounts and client c, waits until
// its discovery document answers, and stops it when the test ends. Without
// node or the npm package it skips, naming the install command; in CI (CI
// set), which installs them, it fails instead.
func Start(t testing.TB, c Client) *Provider {
	t.Helper()
	return StartWith(t, c, Accounts())
}

// StartWith is Start with the given accounts.
func StartWith(t testing.TB, c Client, accounts map[string]Account) *Provider {
	t.Helper()
	dir := Dir()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatal(what + ": " + install)
		}
		t.Skip(what + ": " + install)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("oidctest: no node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		missing("oidctest: no oidc-provider in " + dir + "/node_modules")
	}
	if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
		t.Fatal("oidctest: the client needs an ID, a secret and at least one redirect URI")
	}

	clientJSON, err := json.Marshal(map[string]any{"id": c.ID, "secret": c.Secret, "redirect_uris": c.RedirectURIs})
	if err != nil {
		t.Fatal(err)
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = dir
	// Secrets travel in the environment, never argv.
	cmd.Env = append(os.Environ(),
		"OIDCTEST_CLIENT="+string(clientJSON),
		"OIDCTEST_ACCOUNTS="+string(accountsJSON),
		"OIDCTEST_COOKIE_KEY="+rand.Text(),
		"NODE_ENV=test",
	)
	stdin, err := cmd.StdinPipe() // closing it stops the provider
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &proctest.Buffer{}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("oidctest: start node: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cancel()
			<-exited
		}
		cancel()
		if t.Failed() {
			t.Logf("oidctest provider's output:\n%s", stderr.String())
		}
	})

	issuer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		var hello struct{ Issuer string }
		if json.Unmarshal([]byte(line), &hello) == nil {
			issuer <- hello.Issuer
		}
		close(issuer)
		io.Copy(io.Discard, stdout)
	}()
	var iss string
	select {
	case iss = <-issuer:
	case <-time.After(30 * time.Second):
	}
	if iss == "" {
		t.Fatalf("oidctest: the provider did not say its issuer within 30s; its output:\n%s", stderr.String())
	}

	p := &Provider{Issuer: iss, Accounts: accounts, Client: c}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := p.discoveryAnswers(t)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("oidctest: discovery at %s did not answer within 30s: %v; output:\n%s", iss, err, stderr.String())
		}
		select {
		case <-exited:
			t.Fatalf("oidctest: the provider exited; its output:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Provider) discoveryAnswers(t testing.TB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != p.Issuer {
		return fmt.Errorf("discovery names issuer %q, want %q", doc.Issuer, p.Issuer)
	}
	return nil
}

// ErrRejected is returned by Login when the provider turns the user name
// and password down.
var ErrRejected = errors.New("the provider rejected the user name or password")
