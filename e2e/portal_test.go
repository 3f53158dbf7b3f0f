package e2e

import (
	"bytes"
	"context"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
	"github.com/spinbook/spinbook/internal/portal/oidctest"
	"github.com/spinbook/spinbook/internal/secret"
)

// portalPorts keeps the portal test's servers clear of the others' ports;
// the portal itself listens on portalPort.
const (
	portalPorts = "21700-21799"
	portalPort  = 21800
)

// TestPortalBrowser is the team portal in Chromium, over the local backend,
// signing people in at a real OpenID provider. The brief's alice (an admin
// by group) and bob (not) are called alma and bodo here: user names that
// no other test uses, since the harness tells a test's processes by its
// users' names. alma starts her server and watches its progress, opens it
// without a second password and runs a cell; bodo sees only his own server
// and gets 403/404 on alma's by URL and by API; alma, as admin, sees both
// with their cost and stops bodo's, whose work reaches the team repo
// first; then she stops hers. -update-screenshot keeps pictures of My
// server and Team in docs/.
func TestPortalBrowser(t *testing.T) {
	needBrowser(t)
	needJupyter(t)
	portalURL := fmt.Sprintf("http://127.0.0.1:%d", portalPort)
	clientSecret := "canary-oidc-" + newID()
	accounts := oidctest.Accounts()
	alma, bodo := accounts["alice"], accounts["bob"]
	alma.Email, bodo.Email = "alma@example.com", "bodo@example.com"
	accounts = map[string]oidctest.Account{"alma": alma, "bodo": bodo}
	op := oidctest.StartWith(t, oidctest.Client{ID: "spinbook-portal", Secret: clientSecret, RedirectURIs: []string{portalURL + "/oidc/callback"}}, accounts)

	token := "canary-" + newID()
	git := gittest.New(t, token, "main", map[string]string{"README.md": "# team notebooks\n", "hello.ipynb": helloNotebook})
	cfg := fmt.Sprintf(`repo:
  url: %s
  branch: main
  token: ${env:SPINBOOK_E2E_GIT_TOKEN}
sizes:
  small: {price_per_hour: "0.50"}
portal:
  listen: 127.0.0.1:%d
  url: %s
  oidc:
    issuer: %s
    client_id: spinbook-portal
    client_secret: ${env:SPINBOOK_E2E_OIDC_SECRET}
    allowed_groups: [data]
    admin_groups: [data-admins]
`, git.URL(), portalPort, portalURL, op.Issuer)
	w := newWorldPorts(t, cfg, portalPorts)
	w.env = append(w.env, "SPINBOOK_E2E_GIT_TOKEN="+token, "SPINBOOK_E2E_OIDC_SECRET="+clientSecret)
	w.users["alma"], w.users["bodo"] = true, true // taken down at the end, whatever happens

	logs := startPortal(t, w, portalURL)

	shots := t.TempDir()
	mine, team := filepath.Join(shots, "mine.png"), filepath.Join(shots, "team.png")
	out := runBrowserAnswering(t, portalURL, "", func(line string) string {
		if !strings.Contains(line, "waiting for bodo's work") {
			return ""
		}
		ws := w.status("bodo").Workspace
		writeAsOwner(t, ws, map[string]string{"bodo-notes.md": "bodo's unsaved work\n"})
		return "go"
	}, "SPINBOOK_EXPECT=portal", "SPINBOOK_NOTEBOOK=hello.ipynb", "PERSON_A=alma", "PERSON_B=bodo",
		"A_PASSWORD="+op.Password(t, "alma"), "B_PASSWORD="+op.Password(t, "bodo"),
		"SHOT_MINE="+mine, "SHOT_TEAM="+team)
	for _, want := range []string{
		"alma: signed in", "alma: progress:", "alma: opened their server without a password", "read 42",
		"bodo: /team is 403", "bodo: the API answers 404", "Team shows alma and bodo with their cost",
		"stopped bodo's server", "alma stopped their own server",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the browser did not report %q", want)
		}
	}

	// bodo's work was saved to the team repo before his server stopped.
	found := false
	for _, b := range git.Branches(t) {
		if strings.Contains(git.Tree(t, b)["bodo-notes.md"], "bodo's unsaved work") {
			found = true
		}
	}
	if !found {
		t.Errorf("bodo's work is on no branch of the team repo after the admin stopped his server: %v", git.Branches(t))
	}
	for _, u := range []string{"alma", "bodo"} {
		if s := w.status(u); s.State == "running" {
			t.Errorf("%s's server still runs", u)
		}
	}
	for name, canary := range map[string]string{"OIDC client secret": clientSecret, "git token": token,
		"alma's password": op.Password(t, "alma"), "bodo's password": op.Password(t, "bodo")} {
		if strings.Contains(logs.String(), canary) {
			t.Errorf("%s in the portal's output", name)
		}
	}
	for _, shot := range []string{mine, team} {
		png, err := os.ReadFile(shot)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		if *updateScreenshot {
			if err := os.WriteFile(filepath.Join("../docs", "screenshot-portal-"+strings.TrimSuffix(filepath.Base(shot), ".png")+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// startPortal runs `spinbook portal` in w until the test ends, and waits
// until it answers. It returns the portal's output.
func startPortal(t *testing.T, w *world, url string) *proctest.Buffer {
	t.Helper()
	out := &proctest.Buffer{}
	startPortalOut(t, w, url, filepath.Join(t.TempDir(), "portal"), out)
	return out
}

// startPortalIn runs `spinbook portal --state-dir state` in w and waits
// until it answers; the function it returns stops it (as does the test's
// end).
func startPortalIn(t *testing.T, w *world, url, state string) (stop func()) {
	t.Helper()
	return startPortalOut(t, w, url, state, &proctest.Buffer{})
}

func startPortalOut(t *testing.T, w *world, url, state string, out *proctest.Buffer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "portal", "--state-dir", state)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("portal output:\n%s", out)
		}
	})
	waitFor(t, "the portal to answer", 30*time.Second, func() bool {
		select {
		case <-done:
			t.Fatalf("spinbook portal exited:\n%s", out)
		default:
		}
		resp, err := http.Get(url + "/login")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return stop
}

// TestPortalRestart: a portal over the local backend starts dora's server
// through the API, is stopped and started again, and still knows her
// session, her token and her running server; then stops it.
func TestPortalRestart(t *testing.T) {
	needJupyter(t)
	const password = "dora-portal-pw-81x"
	hash, err := secret.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	portalURL := fmt.Sprintf("http://127.0.0.1:%d", portalPort)
	w := newWorldPorts(t, fmt.Sprintf("portal:\n  listen: 127.0.0.1:%d\n  users:\n    dora: {password_hash: '%s'}\n", portalPort, hash), portalPorts)
	w.users["dora"] = true
	state := filepath.Join(t.TempDir(), "portal")

	stop := startPortalIn(t, w, portalURL, state)
	pw := &portalWorld{world: w, url: portalURL, passwords: map[string]string{"dora": password}}
	hc, csrf := pw.signIn(t, "dora")
	tok, _ := pw.makeToken(t, hc, csrf)
	api := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, portalURL+"/api/v1/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := api("POST", "servers/dora/start", `{}`); code != 200 || !strings.Contains(body, `"state":"running"`) {
		t.Fatalf("start: %d %s", code, body)
	}

	stop()
	startPortalIn(t, w, portalURL, state)
	if code, body := api("GET", "servers/dora", ""); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("after the restart, dora's server: %d %s", code, body)
	}
	if resp, err := hc.Get(portalURL + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("after the restart, dora's session: %v %v", resp.StatusCode, err)
	}
	if code, body := api("POST", "servers/dora/stop", `{}`); code != 200 || strings.Contains(body, `"state":"running"`) {
		t.Errorf("stop: %d %s", code, body)
	}
	if s := w.status("dora"); s.State == "running" {
		t.Errorf("dora's server still runs")
	}
}
