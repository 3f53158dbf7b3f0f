package gitwork

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestSaveRunsNoneOfTheWorkspacesPrograms: the workspace's .git is the
// person's to change, from a kernel or a terminal. A save runs none of the
// programs it can name — hooks in .git/hooks and in a core.hooksPath
// directory (each of them failing, as a linter's pre-commit may), an
// fsmonitor command, a filter driver's clean command for a path that
// .gitattributes gives it, a gpg.program for signing, a pushurl with the
// ext:: transport — and the work still reaches the remote.
func TestSaveRunsNoneOfTheWorkspacesPrograms(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}

	markers := t.TempDir()
	script := func(name string) string {
		// Leaves a marker, then fails: a save that ran it would either
		// stop or leave the marker.
		return "#!/bin/sh\ntouch '" + filepath.Join(markers, name) + "'\nexit 1\n"
	}
	hooks := []string{"pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "pre-push",
		"post-checkout", "reference-transaction", "pre-auto-gc", "post-index-change", "fsmonitor-watchman"}
	hooksDir := filepath.Join(r.Dir, ".git", "hooks")
	altHooks := t.TempDir()
	for _, h := range hooks {
		for _, dir := range []string{hooksDir, altHooks} {
			if err := os.WriteFile(filepath.Join(dir, h), []byte(script(filepath.Base(dir)+"-"+h)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, body := range map[string]string{"fsmonitor": script("fsmonitor"), "clean": script("clean-filter"), "gpg": script("gpg")} {
		if err := os.WriteFile(filepath.Join(markers, name+".sh"), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gittest.Git(t, r.Dir, "config", "core.fsmonitor", filepath.Join(markers, "fsmonitor.sh"))
	gittest.Git(t, r.Dir, "config", "filter.evil.clean", filepath.Join(markers, "clean.sh"))
	gittest.Git(t, r.Dir, "config", "filter.evil.required", "true")
	gittest.Git(t, r.Dir, "config", "commit.gpgSign", "true")
	gittest.Git(t, r.Dir, "config", "gpg.program", filepath.Join(markers, "gpg.sh"))

	gittest.WriteFiles(t, r.Dir, map[string]string{
		".git/info/attributes": "*.txt filter=evil\n",
		"a.txt":                "a, edited with every hook in place\n",
	})
	// First the hooks of .git/hooks, then of a core.hooksPath.
	for _, hooksPath := range []string{"", altHooks} {
		if hooksPath != "" {
			gittest.Git(t, r.Dir, "config", "core.hooksPath", hooksPath)
			gittest.WriteFiles(t, r.Dir, map[string]string{"a.txt": "edited again, hooksPath set\n"})
		}
		res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir()})
		if err != nil || res.Committed == "" || res.PushedTo != "main" {
			t.Fatalf("Save with hooks %q = %+v, %v; want a commit pushed to main", hooksPath, res, err)
		}
		if got := s.Tree(t, "main")["a.txt"]; !strings.HasPrefix(got, "edited again") && !strings.HasPrefix(got, "a, edited with") {
			t.Errorf("remote a.txt = %q", got)
		}
	}

	// A pushurl with the ext:: transport, allowed by the repository's own
	// config: refused, never run; the save falls back to a bundle.
	gittest.Git(t, r.Dir, "config", "protocol.allow", "always")
	gittest.Git(t, r.Dir, "config", "remote.origin.pushurl", "ext::sh -c touch% "+filepath.Join(markers, "ext")+"% >&2")
	gittest.WriteFiles(t, r.Dir, map[string]string{"a.txt": "edited a third time\n"})
	if res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir()}); err == nil && res.PushedTo != "" {
		t.Errorf("Save with an ext:: pushurl = %+v, pushed", res)
	}

	entries, _ := os.ReadDir(markers)
	var ran []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sh") {
			ran = append(ran, e.Name())
		}
	}
	if len(ran) > 0 {
		t.Errorf("the save ran the workspace's programs: %v", ran)
	}
}
