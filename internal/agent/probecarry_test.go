package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeCacheCarriedToAnotherAgent: what one agent learned, read from
// its cache dir and handed to a fresh one, answers that one's probe; an
// entry of another name is refused and nothing is written outside the dir.
func TestProbeCacheCarriedToAnotherAgent(t *testing.T) {
	path, err := exec.LookPath("jupyter-notebook")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no jupyter-notebook on PATH (scripts/setup --for-tests installs it)")
		}
		t.Skip("no jupyter-notebook on PATH: apt-get install jupyter-notebook")
	}
	first := t.TempDir()
	in, err := probe(t.Context(), []string{path}, "", first)
	if err != nil {
		t.Fatal(err)
	}
	carried := readProbeCache(first)
	if len(carried) != 1 {
		t.Fatalf("readProbeCache = %v, want the one answer", carried)
	}

	fresh := filepath.Join(t.TempDir(), "cache")
	if probeCached([]string{path}, fresh) {
		t.Fatal("a fresh dir counts as cached")
	}
	carried["../escape.json"] = `{"app":"ServerApp"}`
	carried["jupyter-0123.json"] = `{}`
	err = seedProbeCache(fresh, carried)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("seedProbeCache with bad names = %v, want them refused", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(fresh), "escape.json")); err == nil {
		t.Error("an entry named ../escape.json was written outside the cache dir")
	}
	if !probeCached([]string{path}, fresh) {
		t.Fatal("the carried answer is not where probe looks")
	}
	again, err := probe(t.Context(), []string{path}, "", fresh)
	if err != nil || again.App != in.App || again.Sock != in.Sock || again.describe() != in.describe() {
		t.Errorf("probe from the carried answer = %+v, %v; want %+v", again, err, in)
	}
	if got := readProbeCache(fresh); len(got) != 1 {
		t.Errorf("the fresh dir holds %v, want only the valid answer", got)
	}
}

func TestSeedProbeCacheNothingToDo(t *testing.T) {
	if err := seedProbeCache("", map[string]string{"jupyter-0123456789abcdef.json": "{}"}); err != nil {
		t.Errorf("no cache dir: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "never")
	if err := seedProbeCache(dir, nil); err != nil {
		t.Errorf("nothing carried: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("an empty carry made the cache dir")
	}
	if got := readProbeCache(dir); got != nil {
		t.Errorf("readProbeCache of a missing dir = %v", got)
	}
}
