package e2e

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateLabScreenshot = flag.Bool("update-lab-screenshot", false, "save TestBrowserLab's screenshot as docs/screenshot-lab.png")

// TestBrowserLab is a person in Chromium on JupyterLab 4 (the venv's), and
// TestBrowserNotebook7 the same on Notebook 7: see browserOnJupyterServer2.
func TestBrowserLab(t *testing.T)       { browserOnJupyterServer2(t, flavourLab4) }
func TestBrowserNotebook7(t *testing.T) { browserOnJupyterServer2(t, flavourNotebook7) }

// browserOnJupyterServer2: through the front door, log in, open the
// notebook that the team repo holds and the workspace was cloned with,
// run its cell and read 42 in the page, open a terminal from Jupyter's
// menus and read `git status` of the workspace in it, leave the page
// alone until the server warns and see the idle banner in the reloaded
// page, then log out with Jupyter's File > Log Out and land on the front
// door's login page.
func browserOnJupyterServer2(t *testing.T, name string) {
	needBrowser(t)
	f := jupyterFlavour(t, name)
	// Warned after 30s without activity: long enough for the first steps
	// to run before it, short enough to wait for.
	g := newGitWorld(t, "main", f.config+"idle: {stop_after: 5m, warn_before: 4m30s}\n")
	// JupyterLab keeps a person's settings and layout under ~/.jupyter/lab,
	// which every local server run by this OS user shares: the test's go
	// to directories of its own (the agent passes the environment on).
	g.env = append(g.env, "JUPYTERLAB_SETTINGS_DIR="+t.TempDir(), "JUPYTERLAB_WORKSPACES_DIR="+t.TempDir())
	g.pushAs(t, "main", map[string]string{"hello.ipynb": helloNotebook}, false)
	s := g.up("uma")
	if _, err := os.Stat(filepath.Join(s.Workspace, "hello.ipynb")); err != nil {
		t.Fatalf("the workspace lacks the team repo's notebook: %v", err)
	}

	shot := filepath.Join(t.TempDir(), "lab.png")
	warned := func(line string) string {
		if !strings.Contains(line, "waiting for the idle warning") {
			return ""
		}
		waitFor(t, "status to warn", 2*time.Minute, func() bool { return g.idleStatus("uma").Warning != "" })
		return "warned"
	}
	out := runBrowserAnswering(t, s.URL, s.Password, warned,
		"SPINBOOK_EXPECT="+name, "SPINBOOK_NOTEBOOK=hello.ipynb", "SPINBOOK_BRANCH=main", "SPINBOOK_SCREENSHOT="+shot)
	for _, want := range []string{"login page", "Wrong password", "read 42", `says "On branch main"`, "banner: This server stops at", "logged out with File > Log Out", "the API refuses"} {
		if !strings.Contains(out, want) {
			t.Errorf("the browser did not report %q", want)
		}
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v", err)
	}
	if *updateLabScreenshot && name == flavourLab4 {
		if err := os.WriteFile("../docs/screenshot-lab.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(g.run("logs", "--user", "uma").stdout, s.Password) {
		t.Error("the password reached the server log")
	}
}
