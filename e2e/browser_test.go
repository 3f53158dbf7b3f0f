package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "save the browser test's screenshot as docs/screenshot-notebook.png")

// helloNotebook is a notebook with one cell that prints 42.
const helloNotebook = `{
 "cells": [
  {"cell_type": "code", "execution_count": null, "id": "c1", "metadata": {}, "outputs": [],
   "source": ["print(6*7)"]}
 ],
 "metadata": {
  "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
  "language_info": {"name": "python"}
 },
 "nbformat": 4,
 "nbformat_minor": 5
}
`

// needBrowser skips, naming the install command, when chromium, node or
// the e2e/browser package are missing; in CI (CI set), which installs
// them, it fails instead.
func needBrowser(t *testing.T) {
	t.Helper()
	const install = "scripts/setup --for-tests (apt chromium nodejs npm; npm ci in e2e/browser)"
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatal(what + ": " + install)
		}
		t.Skip(what + ": " + install)
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		missing("no chromium")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("no node")
	}
	if _, err := os.Stat("browser/node_modules/playwright-core/package.json"); err != nil {
		missing("no playwright-core in e2e/browser/node_modules")
	}
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// runBrowser runs e2e/browser/run.mjs against url with the password and
// the other settings in its environment (never argv) and returns its
// output; the test fails if the script does.
func runBrowser(t *testing.T, url, password string, extra ...string) string {
	t.Helper()
	return runBrowserAnswering(t, url, password, nil, extra...)
}

// runBrowserAnswering is runBrowser for a script that asks: each line it
// prints goes to answer, and a non-empty reply is written to its stdin.
func runBrowserAnswering(t *testing.T, url, password string, answer func(line string) string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser/run.mjs")
	cmd.Env = append(os.Environ(),
		"SPINBOOK_URL="+url,
		"SPINBOOK_PASSWORD="+password,
		"SPINBOOK_PROFILE="+t.TempDir(),
		"CHROMIUM="+chromiumPath(),
		"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1",
	)
	cmd.Env = append(cmd.Env, extra...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("node browser/run.mjs: %v", err)
	}
	var lines strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines.WriteString(sc.Text() + "\n")
		if answer == nil {
			continue
		}
		if reply := answer(sc.Text()); reply != "" {
			if _, err := io.WriteString(stdin, reply+"\n"); err != nil {
				t.Errorf("answering the browser: %v", err)
			}
		}
	}
	err = cmd.Wait()
	all := lines.String() + out.String()
	if err != nil {
		t.Fatalf("node browser/run.mjs: %v\n%s", err, all)
	}
	t.Logf("%s", all)
	return all
}

// TestBrowser is a person in Chromium: open the URL, see the login page,
// get a wrong password refused, log in, open a notebook of the workspace,
// run its cell and read 42 in the page, log out with Jupyter's button.
func TestBrowser(t *testing.T) {
	needBrowser(t)
	w := newWorldPorts(t, "", abusePorts)
	ws := filepath.Join(w.stateDir, "workspaces", "nina")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "hello.ipynb"), []byte(helloNotebook), 0o644); err != nil {
		t.Fatal(err)
	}
	s := w.up("nina")
	if s.Workspace != ws {
		t.Fatalf("workspace %s, want %s", s.Workspace, ws)
	}
	shot := filepath.Join(t.TempDir(), "notebook.png")
	out := runBrowser(t, s.URL, s.Password, "SPINBOOK_NOTEBOOK=hello.ipynb", "SPINBOOK_SCREENSHOT="+shot)
	for _, want := range []string{"login page", "Wrong password", "read 42", "logged out"} {
		if !strings.Contains(out, want) {
			t.Errorf("the browser did not report %q", want)
		}
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v", err)
	}
	if *updateScreenshot {
		if err := os.WriteFile("../docs/screenshot-notebook.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(w.run("logs", "--user", "nina").stdout, s.Password) {
		t.Error("the password reached the server log")
	}
}

// TestBrowserTLS: the same over https with a self-signed certificate; the
// session cookie is then __Host- and Secure in a real browser.
func TestBrowserTLS(t *testing.T) {
	needBrowser(t)
	w := newWorldPorts(t, "access:\n  tls: self-signed\n", abusePorts)
	ws := filepath.Join(w.stateDir, "workspaces", "olga")
	os.MkdirAll(ws, 0o755)
	if err := os.WriteFile(filepath.Join(ws, "hello.ipynb"), []byte(helloNotebook), 0o644); err != nil {
		t.Fatal(err)
	}
	s := w.up("olga")
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("URL %s, want https", s.URL)
	}
	out := runBrowser(t, s.URL, s.Password, "SPINBOOK_NOTEBOOK=hello.ipynb")
	if !strings.Contains(out, "session cookie __Host-spinbook-olga (HttpOnly, Secure)") || !strings.Contains(out, "read 42") {
		t.Errorf("over https the browser did not log in with a __Host- Secure cookie and run the cell")
	}
}

// TestBrowserRefused: a browser from an address outside access.allow sees
// a page that says what happened and what to do.
func TestBrowserRefused(t *testing.T) {
	needBrowser(t)
	w := newWorldPorts(t, "access:\n  allow: [127.0.0.2/32]\n", abusePorts)
	s := w.up("paul")
	runBrowser(t, s.URL, "", "SPINBOOK_EXPECT=refused")
}
