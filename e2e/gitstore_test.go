package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestRepoBundleGoesToModelStore: with the remote unreachable and a model
// store configured, save stores the bundle there too, under
// spinbook/bundles/<user>/, and because the work now lives off the server,
// down goes ahead without --force.
func TestRepoBundleGoesToModelStore(t *testing.T) {
	// Run as root, each server writes a file:// store as its own OS
	// account: the store must let it (README, Model store).
	store := passableTempDir(t)
	if err := os.Chmod(store, 0o1777); err != nil {
		t.Fatal(err)
	}
	g := newGitWorld(t, "main", "models:\n  url: file://"+store+"/\n")
	s := g.up("lena")
	writeAsOwner(t, s.Workspace, map[string]string{"model-notes.txt": "trained overnight\n"})
	g.git.Close()

	res, r := g.save(t, "lena")
	if r.code != 1 || res.Bundle == "" || res.StoredBundle == "" {
		t.Fatalf("save with the remote down and a model store = %+v\n%s", res, r)
	}
	stored, _ := filepath.Glob(filepath.Join(store, "spinbook", "bundles", "lena", "*"))
	if len(stored) != 1 || !strings.HasSuffix(res.StoredBundle, filepath.Base(stored[0])) {
		t.Fatalf("bundles in the store = %v, save reported %q", stored, res.StoredBundle)
	}
	restore := t.TempDir() // a clone of the remote: the bundle holds what the remote lacks
	gittest.Git(t, restore, "clone", "-q", g.git.Bare, ".")
	gittest.Git(t, restore, "bundle", "verify", stored[0])
	gittest.Git(t, restore, "fetch", "-q", stored[0], "HEAD:refs/heads/restored")
	if got := gittest.TreeOf(t, restore, "restored")["model-notes.txt"]; got != "trained overnight\n" {
		t.Fatalf("model-notes.txt from the stored bundle = %q", got)
	}

	if down := g.run("down", "--user", "lena"); down.code != 0 {
		t.Fatalf("down with the work in the model store must go ahead: %s", down)
	}
	if st := g.status("lena"); st.State != "absent" {
		t.Fatalf("after down the server is %s, want absent", st.State)
	}
	if _, err := os.Stat(stored[0]); err != nil {
		t.Fatalf("the stored bundle is gone after down: %v", err)
	}
}
