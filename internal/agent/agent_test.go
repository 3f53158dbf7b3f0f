package agent

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

func TestFindJupyter(t *testing.T) {
	if _, err := findJupyter([]string{"/nonexistent/jupyter", "lab"}); err == nil || !strings.Contains(err.Error(), "jupyter.command") {
		t.Errorf("a configured command that does not exist: %v, want an error naming jupyter.command", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := findJupyter(nil); !errors.Is(err, ErrNoJupyter) {
		t.Errorf("nothing on PATH: %v, want ErrNoJupyter", err)
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
	in, err := probe(t.Context(), []string{path}, cache)
	if err != nil {
		t.Fatal(err)
	}
	if in.App != "NotebookApp" && in.App != "ServerApp" {
		t.Fatalf("probe = %+v, want NotebookApp or ServerApp", in)
	}
	// notebook 6 serves /static/ from its package; the gateway serves it
	// from there itself.
	if in.App == "NotebookApp" {
		if _, err := os.Stat(filepath.Join(in.StaticDir, "base", "js", "namespace.js")); err != nil {
			t.Errorf("probe found no notebook static dir (%q): %v", in.StaticDir, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(cache, "jupyter-*.json"))
	if len(files) != 1 {
		t.Fatalf("probe cached %d files, want 1", len(files))
	}
	// A poisoned cache entry shows that the second probe reads the cache.
	os.WriteFile(files[0], []byte(`{"app":"ServerApp","sock":false}`), 0o600)
	again, err := probe(t.Context(), []string{path}, cache)
	if err != nil || again.App != "ServerApp" || again.Sock {
		t.Fatalf("second probe = %+v, %v; want the cached answer", again, err)
	}
}

func TestProbeRefusesANonJupyterCommand(t *testing.T) {
	_, err := probe(t.Context(), []string{"/bin/echo"}, "")
	if err == nil || !strings.Contains(err.Error(), "does not look like a Jupyter server") {
		t.Fatalf("probe(/bin/echo) = %v, want a clear refusal", err)
	}
}
