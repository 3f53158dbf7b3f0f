package agent

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/secret"
)

func TestJupyterEnvCarriesTokenOutsideArgv(t *testing.T) {
	env := jupyterEnv([]string{"PATH=/usr/bin", "JUPYTER_TOKEN=old", "SPINBOOK_AGENT_SPEC=/x", "HOME=/h"}, "tok", "/rt")
	want := map[string]bool{"PATH=/usr/bin": true, "HOME=/h": true, "JUPYTER_TOKEN=tok": true, "JUPYTER_RUNTIME_DIR=/rt/runtime": true}
	if len(env) != len(want) {
		t.Fatalf("env = %q, want exactly %v", env, want)
	}
	for _, kv := range env {
		if !want[kv] {
			t.Errorf("unexpected %q in Jupyter's environment", kv)
		}
	}
}

func TestLineWriterRedactsWholeLines(t *testing.T) {
	var r secret.Redactor
	r.Add("s3cr3t-token")
	var buf bytes.Buffer
	w := &lineWriter{w: &buf, prefix: "jupyter: ", redact: &r}
	w.Write([]byte("url ?token=s3cr"))
	w.Write([]byte("3t-token ok\nsecond"))
	w.Write([]byte(" line\n"))
	want := "jupyter: url ?token=[redacted] ok\njupyter: second line\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
}

// fakeVenv makes a directory shaped like a virtualenv (pyvenv.cfg, bin/)
// with an executable file for each name in bin/.
func fakeVenv(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644)
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, "bin", n), []byte("#!/bin/sh\n"), 0o755)
	}
	return dir
}

func TestFindJupyter(t *testing.T) {
	lab := fakeVenv(t, "jupyter-lab", "jupyter-notebook", "jupyter")
	serverOnly := fakeVenv(t, "jupyter-server")
	empty := fakeVenv(t)
	link := filepath.Join(t.TempDir(), "jupyter-venv")
	os.Symlink(lab, link)
	onPath := fakeVenv(t, "jupyter-notebook")
	plain := t.TempDir() // not a venv
	os.WriteFile(filepath.Join(plain, "jupyter-lab"), []byte("#!/bin/sh\n"), 0o755)

	tests := []struct {
		name       string
		path       string // PATH
		command    []string
		venv       string
		fallbacks  []string
		wantCmd    []string
		wantVenv   string
		wantErr    string // "" = no error
		wantNoJupy bool
	}{
		{name: "configured command missing", command: []string{"/nonexistent/jupyter", "lab"}, wantErr: "jupyter.command"},
		{name: "nothing anywhere", path: t.TempDir(), fallbacks: []string{empty, filepath.Join(t.TempDir(), "none")}, wantNoJupy: true},
		{name: "venv: first candidate", venv: lab, wantCmd: []string{lab + "/bin/jupyter-lab"}, wantVenv: lab},
		{name: "venv: bare command looked up in bin", venv: lab, command: []string{"jupyter", "notebook"},
			wantCmd: []string{lab + "/bin/jupyter", "notebook"}, wantVenv: lab},
		{name: "venv: through a symlink, resolved", venv: link, wantCmd: []string{lab + "/bin/jupyter-lab"}, wantVenv: lab},
		{name: "venv: jupyter-server only", venv: serverOnly, wantCmd: []string{serverOnly + "/bin/jupyter-server"}, wantVenv: serverOnly},
		{name: "venv: none of the candidates", venv: empty, wantErr: "jupyter.venv " + empty + " has none of"},
		{name: "venv: not a venv", venv: plain, wantErr: "is not a virtualenv"},
		{name: "venv: command not in it", venv: lab, command: []string{"jupyter-server"}, wantErr: "is not an executable file"},
		{name: "command in a venv activates it", command: []string{link + "/bin/jupyter-lab"}, wantCmd: []string{lab + "/bin/jupyter-lab"}, wantVenv: lab},
		{name: "command outside a venv", command: []string{plain + "/jupyter-lab"}, wantCmd: []string{plain + "/jupyter-lab"}},
		{name: "PATH before the fallbacks", path: onPath + "/bin", fallbacks: []string{link},
			wantCmd: []string{onPath + "/bin/jupyter-notebook"}, wantVenv: onPath},
		{name: "fallback venv when PATH has none", path: t.TempDir(), fallbacks: []string{filepath.Join(t.TempDir(), "none"), link},
			wantCmd: []string{lab + "/bin/jupyter-lab"}, wantVenv: lab},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			cmd, venv, err := findJupyter(tt.command, tt.venv, tt.fallbacks)
			switch {
			case tt.wantNoJupy:
				if !errors.Is(err, ErrNoJupyter) {
					t.Fatalf("err = %v, want ErrNoJupyter", err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantCmd, cmd); diff != "" || venv != tt.wantVenv {
				t.Errorf("command (-want +got):\n%s\nvenv = %q, want %q", diff, venv, tt.wantVenv)
			}
		})
	}
}

func TestVenvEnv(t *testing.T) {
	path, env := venvEnv("/v", "/usr/bin:/bin")
	if path != "/v/bin:/usr/bin:/bin" || len(env) != 1 || env[0] != "VIRTUAL_ENV=/v" {
		t.Errorf("venvEnv(/v) = %q, %q", path, env)
	}
	if path, env := venvEnv("", "/usr/bin"); path != "/usr/bin" || env != nil {
		t.Errorf("venvEnv(\"\") = %q, %q; want PATH unchanged, nothing added", path, env)
	}
}

func TestDescribeJupyter(t *testing.T) {
	v := map[string]string{"jupyterlab": "4.6.6", "notebook": "7.6.5", "jupyter_server": "2.21.1"}
	tests := []struct {
		command []string
		app     string
		vers    map[string]string
		want    string
	}{
		{[]string{"/v/bin/jupyter-lab"}, "ServerApp", v, "jupyterlab 4.6.6 (jupyter_server 2.21.1)"},
		{[]string{"/v/bin/jupyter", "lab"}, "ServerApp", v, "jupyterlab 4.6.6 (jupyter_server 2.21.1)"},
		{[]string{"/v/bin/jupyter-notebook"}, "ServerApp", v, "notebook 7.6.5 (jupyter_server 2.21.1)"},
		{[]string{"/v/bin/jupyter-server"}, "ServerApp", v, "jupyter_server 2.21.1"},
		{[]string{"/usr/bin/jupyter-notebook"}, "NotebookApp", map[string]string{"notebook": "6.4.12"}, "notebook 6.4.12"},
		{[]string{"/usr/bin/jupyter-lab"}, "ServerApp", nil, "jupyterlab (version unknown)"},
		{[]string{"/opt/start.sh"}, "NotebookApp", map[string]string{"notebook": "6.5.4"}, "notebook 6.5.4"},
	}
	for _, tt := range tests {
		in := install{Command: tt.command, App: tt.app, Versions: tt.vers}
		if got := in.describe(); got != tt.want {
			t.Errorf("describe(%q, %s, %v) = %q, want %q", tt.command, tt.app, tt.vers, got, tt.want)
		}
	}
}

// testVenv is the venv of scripts/jupyter-venv (the current JupyterLab);
// a skip naming the install command when it is missing, a failure in CI.
func testVenv(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../scripts/jupyter-venv").Output()
	if err != nil {
		msg := "the Jupyter venv is not installed: scripts/jupyter-venv install (scripts/setup --for-tests does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

// TestProbeRealVenvJupyter: the venv's JupyterLab is found through the
// venv, runs on a socket, and says what it is.
func TestProbeRealVenvJupyter(t *testing.T) {
	venv := testVenv(t)
	cmd, found, err := findJupyter(nil, venv, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := probe(t.Context(), cmd, found, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if in.App != "ServerApp" || !in.Sock || in.Venv != venv {
		t.Fatalf("probe = %+v, want a ServerApp with a socket option in %s", in, venv)
	}
	if got := in.describe(); !regexp.MustCompile(`^jupyterlab 4\.6\.\d+ \(jupyter_server 2\.21\.\d+\)$`).MatchString(got) {
		t.Errorf("describe() = %q, want jupyterlab 4.6.x (jupyter_server 2.21.x)", got)
	}
}

// TestProbeRealJupyter asks the installed Jupyter which options it takes,
// and the second time answers from the cache without running it.
func TestProbeRealJupyter(t *testing.T) {
	path, err := exec.LookPath("jupyter-notebook")
	if err != nil {
		t.Skip("no jupyter-notebook on PATH: apt-get install jupyter-notebook")
	}
	cache := t.TempDir()
	in, err := probe(t.Context(), []string{path}, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.describe(); !regexp.MustCompile(`^notebook 6\.\d+\.\d+$`).MatchString(got) {
		t.Errorf("describe() = %q, want notebook 6.x.y (Debian's)", got)
	}
	if in.App != "NotebookApp" && in.App != "ServerApp" {
		t.Fatalf("probe = %+v, want NotebookApp or ServerApp", in)
	}
	// notebook 6 serves /static/ from its package; the gateway serves it
	// from there itself.
	if in.App == "NotebookApp" {
		if len(in.Static) != 1 || in.Static[0].Prefix != "/static/" || len(in.Static[0].Dirs) != 1 {
			t.Fatalf("probe static routes = %+v, want notebook 6's /static/ alone", in.Static)
		}
		if _, err := os.Stat(filepath.Join(in.Static[0].Dirs[0], "base", "js", "namespace.js")); err != nil {
			t.Errorf("probe found no notebook static dir (%q): %v", in.Static[0].Dirs, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(cache, "jupyter-*.json"))
	if len(files) != 1 {
		t.Fatalf("probe cached %d files, want 1", len(files))
	}
	// A poisoned cache entry shows that the second probe reads the cache.
	os.WriteFile(files[0], []byte(`{"app":"ServerApp","sock":false}`), 0o600)
	again, err := probe(t.Context(), []string{path}, "", cache)
	if err != nil || again.App != "ServerApp" || again.Sock {
		t.Fatalf("second probe = %+v, %v; want the cached answer", again, err)
	}
}

func TestProbeRefusesANonJupyterCommand(t *testing.T) {
	_, err := probe(t.Context(), []string{"/bin/echo"}, "", "")
	if err == nil || !strings.Contains(err.Error(), "does not look like a Jupyter server") {
		t.Fatalf("probe(/bin/echo) = %v, want a clear refusal", err)
	}
}
