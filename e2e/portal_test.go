package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
	"github.com/spinbook/spinbook/internal/portal/oidctest"
)

// portalPorts keeps the portal test's servers clear of the others' ports;
// the portal itself listens on portalPort.
const (
	portalPorts = "21700-21799"
	portalPort  = 21800
)

// TestPortalBrowser is the team portal in Chromium, over the local backend,
// signing people in at a real OpenID provider (alice: admin by group, bob:
// not): alice starts her server and watches its progress, opens it
// without a second password and runs a cell; bob sees only his own server
// and gets 403/404 on alice's by URL and by API; alice, as admin, sees
// both with their cost and stops bob's, whose work reaches the team repo
// first; then she stops hers. -update-screenshot keeps pictures of My
// server and Team in docs/.
func TestPortalBrowser(t *testing.T) {
	needBrowser(t)
	needJupyter(t)
	portalURL := fmt.Sprintf("http://127.0.0.1:%d", portalPort)
	clientSecret := "canary-oidc-" + newID()
	op := oidctest.Start(t, oidctest.Client{ID: "spinbook-portal", Secret: clientSecret, RedirectURIs: []string{portalURL + "/oidc/callback"}})

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
	w.users["alice"], w.users["bob"] = true, true // taken down at the end, whatever happens

	logs := startPortal(t, w, portalURL)

	shots := t.TempDir()
	mine, team := filepath.Join(shots, "mine.png"), filepath.Join(shots, "team.png")
	out := runBrowserAnswering(t, portalURL, "", func(line string) string {
		if !strings.Contains(line, "waiting for bob's work") {
			return ""
		}
		ws := w.status("bob").Workspace
		writeAsOwner(t, ws, map[string]string{"bob-notes.md": "bob's unsaved work\n"})
		return "go"
	}, "SPINBOOK_EXPECT=portal", "SPINBOOK_NOTEBOOK=hello.ipynb",
		"ALICE_PASSWORD="+op.Password(t, "alice"), "BOB_PASSWORD="+op.Password(t, "bob"),
		"SHOT_MINE="+mine, "SHOT_TEAM="+team)
	for _, want := range []string{
		"alice: signed in", "alice: progress:", "opened her server without a password", "read 42",
		"bob: /team is 403", "the API answers 404", "Team shows alice and bob with their cost",
		"stopped bob's server", "alice stopped her own server",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the browser did not report %q", want)
		}
	}

	// bob's work was saved to the team repo before his server stopped.
	found := false
	for _, b := range git.Branches(t) {
		if strings.Contains(git.Tree(t, b)["bob-notes.md"], "bob's unsaved work") {
			found = true
		}
	}
	if !found {
		t.Errorf("bob's work is on no branch of the team repo after the admin stopped his server: %v", git.Branches(t))
	}
	for _, u := range []string{"alice", "bob"} {
		if s := w.status(u); s.State == "running" {
			t.Errorf("%s's server still runs", u)
		}
	}
	for name, canary := range map[string]string{"OIDC client secret": clientSecret, "git token": token,
		"alice's password": op.Password(t, "alice"), "bob's password": op.Password(t, "bob")} {
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
func startPortal(t *testing.T, w *world, url string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "portal", "--state-dir", filepath.Join(t.TempDir(), "portal"))
	cmd.Env = w.env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
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
	return out
}
