package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/secret"
)

// TestBadUserNames: a user name becomes a directory, a container, a stack
// and a branch, so a bad one is refused up front, with the rule, exit 2.
func TestBadUserNames(t *testing.T) {
	w := newWorld(t, "")
	for _, name := range []string{"../x", "A", strings.Repeat("a", 40), "", "a b", "-x"} {
		for _, cmd := range []string{"up", "status", "down"} {
			r := w.run(cmd, "--user", name)
			if r.code != 2 || !strings.Contains(r.stderr, "lowercase letters, digits and '-'") {
				t.Errorf("spinbook %s --user %q: want exit 2 and the rule, got %s", cmd, name, r)
			}
		}
	}
	if entries, _ := os.ReadDir(w.stateDir); len(entries) > 0 {
		t.Errorf("bad user names left state behind: %v", entries)
	}
	delete(w.users, "../x")
}

// TestPasswordCommand: the printed hash verifies the password; a short one
// is refused.
func TestPasswordCommand(t *testing.T) {
	cmd := exec.Command(bin, "password")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spinbook password: %v", err)
	}
	h, err := secret.ParsePasswordHash(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("spinbook password printed %q: %v", out, err)
	}
	if !h.Verify("correct horse battery") || h.Verify("correct horse") {
		t.Fatal("the printed hash does not verify exactly the password given")
	}
	short := exec.Command(bin, "password")
	short.Stdin = strings.NewReader("abc\n")
	if err := short.Run(); err == nil || short.ProcessState.ExitCode() != 2 {
		t.Fatalf("a 3-character password: %v, want exit 2", err)
	}
}

// TestInitWritesAUsableConfig: init writes a file that loads, and never
// overwrites one without --force.
func TestInitWritesAUsableConfig(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SPINBOOK_CONFIG=")
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run("init"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "spinbook.yaml"))
	if err != nil || !strings.Contains(string(data), "# ") {
		t.Fatalf("init wrote no commented spinbook.yaml: %v", err)
	}
	if out, code := run("init"); code != 2 || !strings.Contains(out, "--force") {
		t.Fatalf("a second init must refuse with a hint at --force: exit %d: %s", code, out)
	}
	// The file it wrote is a valid config: ls reads it without complaint.
	if out, code := run("ls", "--json"); code != 0 {
		t.Fatalf("ls with the written config: exit %d: %s", code, out)
	}
}

// TestBadConfigExits2: a config error names the file, line and key, and
// exits 2 before anything starts.
func TestBadConfigExits2(t *testing.T) {
	w := newWorld(t, "access:\n  allow: [10.0.0.300/8]\nbogus: 1\n")
	r := w.run("up", "--user", "henry")
	if r.code != 2 || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "access.allow") ||
		!strings.Contains(r.stderr, "bogus") {
		t.Fatalf("want exit 2 naming line 2, access.allow and bogus: %s", r)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, "servers", "henry")); err == nil {
		t.Fatal("a bad config still created server state")
	}
}

// TestNoJupyterFailsFast: with no Jupyter to be found, up fails at once
// saying what to install, and leaves nothing running.
func TestNoJupyterFailsFast(t *testing.T) {
	w := newWorld(t, "")
	// No Jupyter on PATH, nor a venv of scripts/jupyter-venv in the cache.
	w.env = append(w.env, "PATH="+t.TempDir(), "SPINBOOK_CACHE="+t.TempDir())
	r := w.run("up", "--user", "ivan")
	if r.code != 1 || !strings.Contains(r.stderr, "apt-get install jupyter-notebook") {
		t.Fatalf("want exit 1 and what to install: %s", r)
	}
	if s := w.status("ivan"); s.State != "absent" {
		t.Fatalf("after a failed up, status = %q, want absent", s.State)
	}
}

// TestUpFindsTheJupyterVenv is scripts/quickstart on a machine without
// Jupyter: with none on PATH, up runs the JupyterLab of the venv
// scripts/jupyter-venv made (found through its symlink in the cache) and
// status says so.
func TestUpFindsTheJupyterVenv(t *testing.T) {
	lab := jupyterFlavour(t, flavourLab4)
	cache := t.TempDir()
	if err := os.Symlink(lab.venv, filepath.Join(cache, "jupyter-venv")); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "")
	w.env = append(w.env, "PATH="+t.TempDir(), "SPINBOOK_CACHE="+cache)
	if s := w.up("quinn"); !s.Ready {
		t.Fatalf("up = %+v, want a ready server", s)
	}
	if got := w.status("quinn").Jupyter; !lab.describes.MatchString(got) {
		t.Errorf("status --json jupyter = %q, want %s", got, lab.describes)
	}
}
