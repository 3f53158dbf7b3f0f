package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/secret"
)

// portalWorld is a world with `spinbook portal` running over its config
// (the local backend) with password users pc-alice and pc-bob (names of
// their own: the harness counts any Jupyter of a user of its world as its own).
type portalWorld struct {
	*world
	url       string
	passwords map[string]string
}

func newPortalWorld(t *testing.T) *portalWorld {
	t.Helper()
	needJupyter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pw := &portalWorld{passwords: map[string]string{"pc-alice": "alice-" + rand.Text(), "pc-bob": "bob-" + rand.Text()}}
	cfg := "portal:\n  listen: " + addr + "\n  users:\n"
	for _, u := range []string{"pc-alice", "pc-bob"} {
		hash, err := secret.HashPassword(pw.passwords[u])
		if err != nil {
			t.Fatal(err)
		}
		cfg += "    " + u + ": {password_hash: '" + hash + "'}\n"
	}
	pw.world = newWorldPorts(t, jupyterFlavour(t, flavourNotebook6).config+cfg, "18950-18999")
	pw.users["pc-alice"], pw.users["pc-bob"] = true, true // the world's cleanup downs their servers

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "portal", "--state-dir", filepath.Join(t.TempDir(), "portal"))
	cmd.Env = pw.env
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("the portal's log:\n%s", stderr.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "spinbook portal for the local backend: "); ok {
				ready <- u
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			t.Fatalf("spinbook portal exited: %s", stderr.String())
		}
		pw.url = u
	case <-time.After(30 * time.Second):
		t.Fatalf("spinbook portal did not say it serves within 30s: %s", stderr.String())
	}
	return pw
}

// newCookieClient keeps cookies and does not follow redirects.
func newCookieClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs user in with a password, as a browser would, and
// returns a client holding the session and the page's CSRF token.
func (pw *portalWorld) signIn(t *testing.T, user string) (*http.Client, string) {
	t.Helper()
	hc := newCookieClient(t)
	resp := pw.post(t, hc, "/login", url.Values{"user": {user}, "password": {pw.passwords[user]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("portal sign-in as %s: %s", user, resp.Status)
	}
	body := pw.get(t, hc, "/tokens")
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the portal's Tokens page:\n%s", body)
	}
	return hc, m[1]
}

func (pw *portalWorld) get(t *testing.T, hc *http.Client, path string) string {
	t.Helper()
	resp, err := hc.Get(pw.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (pw *portalWorld) post(t *testing.T, hc *http.Client, path string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, pw.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

var newTokenInput = regexp.MustCompile(`id="newtoken"[^>]*value="(sbp_[A-Za-z0-9_-]{43})"`)
var revokeAction = regexp.MustCompile(`action="/tokens/(\d+)/revoke"`)

// makeToken makes an API token on the Tokens page and returns it with
// its id.
func (pw *portalWorld) makeToken(t *testing.T, hc *http.Client, csrf string) (string, string) {
	t.Helper()
	resp := pw.post(t, hc, "/tokens", url.Values{"csrf": {csrf}, "name": {"laptop"}})
	b, _ := io.ReadAll(resp.Body)
	tok, id := newTokenInput.FindSubmatch(b), revokeAction.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || tok == nil || id == nil {
		t.Fatalf("make a token: %s\n%s", resp.Status, b)
	}
	return string(tok[1]), string(id[1])
}

// cliAs runs spinbook with only a login of its own: no config, no
// $SPINBOOK_CONFIG, its own $XDG_CONFIG_HOME.
type cliAs struct {
	t   *testing.T
	env []string
	dir string
}

func newCLIAs(t *testing.T) *cliAs {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPINBOOK_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return &cliAs{t: t, env: append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config")), dir: t.TempDir()}
}

func (c *cliAs) run(stdin string, args ...string) result {
	c.t.Helper()
	return runBinary(c.t, c.env, c.dir, stdin, nil, args...)
}

// TestPortalCLI: people with no backend credentials and no config log in
// to the real portal with an API token and use up, status, ls, save,
// extend and down through it; bob cannot see or stop alice's server; a
// revoked token is refused with a clear error. The token never shows.
func TestPortalCLI(t *testing.T) {
	pw := newPortalWorld(t)
	aliceWeb, aliceCSRF := pw.signIn(t, "pc-alice")
	aliceTok, aliceTokID := pw.makeToken(t, aliceWeb, aliceCSRF)
	bobWeb, bobCSRF := pw.signIn(t, "pc-bob")
	bobTok, _ := pw.makeToken(t, bobWeb, bobCSRF)
	alice, bob := newCLIAs(t), newCLIAs(t)

	check := func(c *cliAs, r result, args []string, want int, inStdout, inStderr string) {
		t.Helper()
		if r.code != want || !strings.Contains(r.stdout, inStdout) || !strings.Contains(r.stderr, inStderr) {
			t.Fatalf("spinbook %v: %s\nwant exit %d, %q in stdout, %q in stderr", args, r, want, inStdout, inStderr)
		}
		for _, tok := range []string{aliceTok, bobTok} {
			if strings.Contains(r.stdout+r.stderr, tok) {
				t.Fatalf("spinbook %v printed a token", args)
			}
		}
	}
	step := func(c *cliAs, stdin string, want int, inStdout, inStderr string, args ...string) result {
		t.Helper()
		r := c.run(stdin, args...)
		check(c, r, args, want, inStdout, inStderr)
		return r
	}

	step(alice, aliceTok+"\n", 0, "logged in to "+pw.url+" as pc-alice", "", "login", pw.url)
	step(bob, bobTok+"\n", 0, "as pc-bob", "", "login", pw.url)

	r := step(alice, "", 0, "", "", "up", "--json")
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.User != "pc-alice" || s.State != "running" || !s.Ready || s.Backend != "local" {
		t.Fatalf("up --json through the portal: %+v, %v\n%s", s, err, r)
	}
	step(alice, "", 0, "portal:     "+pw.url, "", "status")
	step(alice, "", 0, "running (ready)", "", "status")
	step(alice, "", 0, "pc-alice's server has no repo configured", "", "save")
	step(alice, "", 0, "pc-alice's server", "", "extend", "--for", "2h")

	// bob sees neither alice's server nor a way to act on it.
	step(bob, "", 1, "", `no server "pc-alice" that you can see`, "status", "--user", "pc-alice")
	step(bob, "", 1, "", `no server "pc-alice" that you can see`, "down", "--user", "pc-alice")
	r = step(bob, "", 0, "", "", "ls", "--json")
	if strings.Contains(r.stdout, `"pc-alice"`) {
		t.Fatalf("bob's ls --json shows alice's server:\n%s", r.stdout)
	}
	r = step(alice, "", 0, "", "", "ls", "--json")
	if !strings.Contains(r.stdout, `"user": "pc-alice"`) {
		t.Fatalf("alice's ls --json lacks her server:\n%s", r.stdout)
	}
	if st := pw.status("pc-alice"); st.State != "running" {
		t.Fatalf("after bob's down, alice's server is %s", st.State)
	}

	step(alice, "", 0, "pc-alice's server is down", "", "down")
	if st := pw.status("pc-alice"); st.State == "running" {
		t.Fatalf("after down through the portal, the backend says alice's server is %s", st.State)
	}

	// A revoked token: a clear error, nothing else.
	if resp := pw.post(t, aliceWeb, "/tokens/"+aliceTokID+"/revoke", url.Values{"csrf": {aliceCSRF}}); resp.StatusCode >= 400 {
		t.Fatalf("revoke alice's token: %s", resp.Status)
	}
	step(alice, "", 1, "", "unknown or revoked", "status")
	step(alice, "", 1, "", "spinbook login", "up")
}
