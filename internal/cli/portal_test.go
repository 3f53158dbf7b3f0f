package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With access.portal_only, only the portal starts servers: up refuses,
// before anything starts, and says what to do.
func TestUpRefusesPortalOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "spinbook.yaml")
	if err := os.WriteFile(cfg, []byte("access:\n  portal_only: true\nlocal:\n  state_dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "up", "--config", cfg, "--user", "alice")
	if code != exitUsage || !strings.Contains(stderr, "spinbook portal") || !strings.Contains(stderr, "portal_only") {
		t.Fatalf("up with portal_only: exit %d, %q; want 2 naming the portal", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "servers", "alice")); err == nil {
		t.Error("up made alice's server state before refusing")
	}
}

// The portal's progress shows down's steps without ui.Progress's clock.
func TestProgressWriter(t *testing.T) {
	var got []string
	w := &progressWriter{progress: func(s string) { got = append(got, s) }}
	w.Write([]byte("    0.1s  saving alice's workspace first\n  12.5s  "))
	w.Write([]byte("stopping\nalice's server has no repo\nlast"))
	w.flush()
	want := []string{"saving alice's workspace first", "stopping", "alice's server has no repo", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("progress %q, want %q", got, want)
	}
}
