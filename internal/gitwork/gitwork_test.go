package gitwork

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// The test binary doubles as the credential helper (as the spinbook binary
// does in a server): with GITWORK_TEST_HELPER=1 it runs CredentialHelper.
func TestMain(m *testing.M) {
	if os.Getenv("GITWORK_TEST_HELPER") == "1" {
		if err := CredentialHelper(os.Args[len(os.Args)-1], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func canary() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "canary-" + hex.EncodeToString(b)
}

var seed = map[string]string{
	"README.md":   "# team notebooks\n",
	"a.txt":       "a\n",
	"del.txt":     "to be deleted\n",
	".gitignore":  "*.tmp\nscratch/\n",
	"sub/keep.py": "print('keep')\n",
}

// repoFor returns a Repo for a checkout in a new directory that reaches s
// with token through a CredentialServer, as the agent sets it up.
func repoFor(t *testing.T, s *gittest.Server, token string) *Repo {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "git.sock")
	cs, err := ServeCredentials(sock, s.URL(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &Repo{
		Dir:    t.TempDir(),
		URL:    s.URL(),
		Branch: "main",
		Author: Author{Name: "Alice", Email: "alice@users.noreply.spinbook.invalid"},
		Helper: "GITWORK_TEST_HELPER=1 " + ShellQuote(exe),
		Socket: sock,
		Redact: func(v string) string { return strings.ReplaceAll(v, token, "[redacted]") },
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// assertNoToken fails if token is in any file under dir.
func assertNoToken(t *testing.T, dir, token string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(token)) {
			t.Errorf("the token is in %s", p)
		}
		return nil
	})
}

func TestCloneThenSaveModifiedNewDeletedIgnored(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, r.Dir); !cmp.Equal(got, seed) {
		t.Fatalf("checkout after clone differs from the remote (-want +got):\n%s", cmp.Diff(seed, got))
	}
	if br := strings.TrimSpace(gittest.Git(t, r.Dir, "symbolic-ref", "--short", "HEAD")); br != "main" {
		t.Fatalf("checked-out branch %q, want main", br)
	}

	gittest.WriteFiles(t, r.Dir, map[string]string{
		"a.txt":                                  "a, edited\n",
		"new/n.txt":                              "new\n",
		"x.tmp":                                  "ignored by *.tmp\n",
		"scratch/y.txt":                          "ignored by scratch/\n",
		".ipynb_checkpoints/nb-checkpoint.ipynb": "{}",
		"new/.ipynb_checkpoints/n-checkpoint.ipynb": "{}",
	})
	os.Remove(filepath.Join(r.Dir, "del.txt"))

	res, err := r.Save(ctx(t), SaveOptions{User: "alice", Message: "edits", BundleDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Saved || res.PushedTo != "main" || res.NewBranch || res.Committed == "" || res.Bundle != "" {
		t.Fatalf("Save = %+v, want a new commit pushed to main", res)
	}
	want := map[string]string{
		"README.md": "# team notebooks\n", "a.txt": "a, edited\n", "new/n.txt": "new\n",
		".gitignore": "*.tmp\nscratch/\n", "sub/keep.py": "print('keep')\n",
	}
	if diff := cmp.Diff(want, s.Tree(t, "main")); diff != "" {
		t.Errorf("remote main after save (-want +got):\n%s", diff)
	}
	if got := strings.TrimSpace(gittest.Git(t, s.Bare, "rev-parse", "main")); got != res.Committed {
		t.Errorf("remote main = %s, want the saved commit %s", got, res.Committed)
	}
	if author := gittest.Git(t, s.Bare, "log", "-1", "--format=%an <%ae>", "main"); author != "Alice <alice@users.noreply.spinbook.invalid>\n" {
		t.Errorf("author %q", author)
	}
	if st := gittest.Git(t, r.Dir, "status", "--porcelain"); st != "" {
		t.Errorf("after a save the workspace should be clean (ignored files aside), git status says:\n%s", st)
	}

	// Nothing changed: nothing new is committed, the remote is up to date.
	res2, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir()})
	if err != nil || !res2.Saved || res2.Committed != "" || res2.Head != res.Committed {
		t.Fatalf("second Save = %+v, %v; want no new commit", res2, err)
	}
	assertNoToken(t, r.Dir, token)
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(data)
		}
		return nil
	})
	return out
}

func TestSaveAfterForcePushGoesToNewBranch(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// A commit of the user's own, then an unsaved edit.
	gittest.WriteFiles(t, r.Dir, map[string]string{"mine.txt": "committed by hand\n"})
	gittest.Git(t, r.Dir, "add", "mine.txt")
	gittest.Git(t, r.Dir, "commit", "-q", "-m", "by hand")
	own := strings.TrimSpace(gittest.Git(t, r.Dir, "rev-parse", "HEAD"))
	gittest.WriteFiles(t, r.Dir, map[string]string{"a.txt": "unsaved edit\n"})

	// Meanwhile someone rewrites main on the remote.
	other := t.TempDir()
	gittest.Git(t, other, "init", "-q", "-b", "main")
	gittest.WriteFiles(t, other, map[string]string{"theirs.txt": "rewritten history\n"})
	gittest.Git(t, other, "add", "-A")
	gittest.Git(t, other, "commit", "-q", "-m", "rewrite")
	gittest.Git(t, other, "push", "-q", "--force", s.Bare, "main")
	theirs := strings.TrimSpace(gittest.Git(t, other, "rev-parse", "HEAD"))

	at := time.Date(2026, 11, 25, 21, 4, 5, 0, time.UTC)
	res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir(), Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	wantBranch := "spinbook/alice/20261125T210405Z"
	if !res.Saved || !res.NewBranch || res.PushedTo != wantBranch || res.Reason == "" {
		t.Fatalf("Save = %+v, want the work on %s with a reason", res, wantBranch)
	}
	if got := strings.TrimSpace(gittest.Git(t, s.Bare, "rev-parse", "main")); got != theirs {
		t.Errorf("remote main = %s, want it untouched at %s", got, theirs)
	}
	for _, c := range []string{own, res.Committed} {
		if out := gittest.Git(t, s.Bare, "branch", "--contains", c); !strings.Contains(out, wantBranch) {
			t.Errorf("commit %s is not on %s (branches containing it: %q)", c, wantBranch, out)
		}
	}
	if got := s.Tree(t, wantBranch)["a.txt"]; got != "unsaved edit\n" {
		t.Errorf("a.txt on %s = %q, want the unsaved edit", wantBranch, got)
	}

	// Saving again with nothing new makes no further branch.
	again, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir(), Now: func() time.Time { return at.Add(time.Minute) }})
	if err != nil || !again.Saved || !again.UpToDate || again.PushedTo != "" || again.Bundle != "" {
		t.Errorf("second Save = %+v, %v; want up to date", again, err)
	}
	if n := len(s.Branches(t)); n != 2 {
		t.Errorf("the remote has branches %v, want main and %s only", s.Branches(t), wantBranch)
	}
}

func TestSaveWritesBundleWhenRemoteIsDownOrTokenRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		wrongToken bool
	}{
		{"remote down", false},
		{"wrong token", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := canary()
			s := gittest.New(t, token, "main", seed)
			r := repoFor(t, s, token)
			if err := r.Clone(ctx(t)); err != nil {
				t.Fatal(err)
			}
			gittest.WriteFiles(t, r.Dir, map[string]string{"first.txt": "1\n"})
			gittest.Git(t, r.Dir, "add", "-A")
			gittest.Git(t, r.Dir, "commit", "-q", "-m", "one")
			first := strings.TrimSpace(gittest.Git(t, r.Dir, "rev-parse", "HEAD"))
			gittest.WriteFiles(t, r.Dir, map[string]string{"second.txt": "2\n"})
			if tc.wrongToken {
				wrong := repoFor(t, s, canary())
				wrong.Dir = r.Dir
				r = wrong
			} else {
				s.Close()
			}
			bundles := t.TempDir()
			var stored string
			res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: bundles,
				StoreBundle: func(_ context.Context, p string) (string, error) {
					stored = p
					return "store://" + filepath.Base(p), nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Saved || res.Bundle == "" || res.PushedTo != "" || res.Reason == "" {
				t.Fatalf("Save = %+v, want a bundle and a reason", res)
			}
			if stored != res.Bundle || res.StoredBundle != "store://"+filepath.Base(res.Bundle) {
				t.Errorf("StoreBundle got %q, result says %q; want the bundle %q", stored, res.StoredBundle, res.Bundle)
			}
			if filepath.Dir(res.Bundle) != bundles {
				t.Errorf("bundle %s is not in %s", res.Bundle, bundles)
			}
			if tc.wrongToken && s.Refused.Load() == 0 {
				t.Error("the server never saw the wrong token")
			}
			if strings.Contains(res.Reason, "canary-") {
				t.Errorf("the reason carries a token: %s", res.Reason)
			}

			// A clone of the remote plus the bundle has every commit.
			restore := t.TempDir()
			gittest.Git(t, restore, "clone", "-q", s.Bare, ".")
			gittest.Git(t, restore, "bundle", "verify", res.Bundle)
			gittest.Git(t, restore, "fetch", "-q", res.Bundle, "HEAD:refs/heads/restored")
			for _, c := range []string{first, res.Committed} {
				gittest.Git(t, restore, "merge-base", "--is-ancestor", c, "restored")
			}
			if got := gittest.TreeOf(t, restore, "restored")["second.txt"]; got != "2\n" {
				t.Errorf("second.txt from the bundle = %q", got)
			}

			// Saving again without changes reuses the bundle.
			again, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: bundles})
			if err != nil || again.Bundle != res.Bundle || again.Committed != "" {
				t.Errorf("second Save = %+v, %v; want the same bundle and no new commit", again, err)
			}
		})
	}
}

func TestStripOutputsInCommitOnly(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	withOutputs := `{
 "cells": [
  {"cell_type": "markdown", "metadata": {}, "source": ["# <title> & more"]},
  {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [
    {"name": "stdout", "output_type": "stream", "text": ["secret result 42\n"]}
   ], "source": ["print(6*7)"]}
 ],
 "metadata": {"kernelspec": {"name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
`
	gittest.WriteFiles(t, r.Dir, map[string]string{"analysis/nb.ipynb": withOutputs, "plain.json": `{"outputs": [1]}`})
	res, err := r.Save(ctx(t), SaveOptions{User: "alice", StripOutputs: true, BundleDir: t.TempDir()})
	if err != nil || res.PushedTo != "main" {
		t.Fatalf("Save = %+v, %v", res, err)
	}
	pushed := s.Tree(t, "main")["analysis/nb.ipynb"]
	if strings.Contains(pushed, "secret result") || strings.Contains(pushed, `"execution_count": 3`) {
		t.Errorf("the pushed notebook keeps its outputs:\n%s", pushed)
	}
	if !strings.Contains(pushed, `"outputs": []`) || !strings.Contains(pushed, "print(6*7)") || !strings.Contains(pushed, "<title> & more") {
		t.Errorf("the pushed notebook lost more than its outputs:\n%s", pushed)
	}
	if got := s.Tree(t, "main")["plain.json"]; got != `{"outputs": [1]}` {
		t.Errorf("a non-notebook file was changed: %q", got)
	}
	if data, _ := os.ReadFile(filepath.Join(r.Dir, "analysis/nb.ipynb")); string(data) != withOutputs {
		t.Errorf("the workspace copy was changed:\n%s", data)
	}
	again, err := r.Save(ctx(t), SaveOptions{User: "alice", StripOutputs: true, BundleDir: t.TempDir()})
	if err != nil || again.Committed != "" {
		t.Errorf("saving the unchanged notebook again = %+v, %v; want no new commit", again, err)
	}
}

func TestCloneKeepsFilesOfANonEmptyWorkspace(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	gittest.WriteFiles(t, r.Dir, map[string]string{"a.txt": "my own a\n", "local.txt": "local\n"})
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	got := readTree(t, r.Dir)
	if got["a.txt"] != "my own a\n" || got["local.txt"] != "local\n" || got["README.md"] != seed["README.md"] {
		t.Fatalf("workspace after clone = %v; want local files kept and the rest checked out", got)
	}
}

func TestCloneEmptyRemoteThenSaveCreatesBranch(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", nil)
	r := repoFor(t, s, token)
	r.Branch = "work"
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	gittest.WriteFiles(t, r.Dir, map[string]string{"first.ipynb": "{}"})
	res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: t.TempDir()})
	if err != nil || res.PushedTo != "work" {
		t.Fatalf("Save = %+v, %v; want the new branch work pushed", res, err)
	}
	if diff := cmp.Diff(map[string]string{"first.ipynb": "{}"}, s.Tree(t, "work")); diff != "" {
		t.Error(diff)
	}
}

func TestCloneRefusedLeavesNoCheckout(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	wrong := repoFor(t, s, canary())
	err := wrong.Clone(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("Clone with a refused token = %v", err)
	}
	if wrong.IsCheckout() {
		t.Fatal("a failed clone left a .git behind")
	}
	right := repoFor(t, s, token)
	right.Dir = wrong.Dir
	if err := right.Clone(ctx(t)); err != nil {
		t.Fatalf("Clone after a failed one: %v", err)
	}
	if got := readTree(t, right.Dir); !cmp.Equal(got, seed) {
		t.Errorf("checkout after a retried clone (-want +got):\n%s", cmp.Diff(seed, got))
	}
}

func TestCloneUnknownBranchNamesTheBranches(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	r.Branch = "nope"
	err := r.Clone(ctx(t))
	if err == nil || !strings.Contains(err.Error(), `no branch "nope"`) || !strings.Contains(err.Error(), "main") {
		t.Fatalf("Clone of a missing branch = %v", err)
	}
}

func TestSyncKeepsLocalChangesAndCountsBehind(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	gittest.WriteFiles(t, r.Dir, map[string]string{"a.txt": "local edit\n"})
	other := t.TempDir()
	gittest.Git(t, other, "clone", "-q", s.Bare, ".")
	for i := range 2 {
		gittest.WriteFiles(t, other, map[string]string{"b.txt": fmt.Sprint(i)})
		gittest.Git(t, other, "add", "-A")
		gittest.Git(t, other, "commit", "-q", "-m", "remote work")
	}
	gittest.Git(t, other, "push", "-q", "origin", "main")

	st, err := r.Sync(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Behind != 2 || st.Ahead != 0 || st.Changed != 1 || st.Branch != "main" || st.FetchError != "" {
		t.Errorf("Sync = %+v, want 2 behind, 1 changed file on main", st)
	}
	if data, _ := os.ReadFile(filepath.Join(r.Dir, "a.txt")); string(data) != "local edit\n" {
		t.Errorf("Sync changed a local file: %q", data)
	}
	s.Close()
	st, err = r.Sync(ctx(t))
	if err != nil || st.FetchError == "" || st.Behind != 2 {
		t.Errorf("Sync with the remote down = %+v, %v; want a fetch error and the last known counts", st, err)
	}
}

func TestCredentialServerAnswersOnlyItsHost(t *testing.T) {
	token := canary()
	sock := filepath.Join(t.TempDir(), "git.sock")
	cs, err := ServeCredentials(sock, "https://git.example.com:8443/team/nb.git", token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v, want 0600", fi.Mode(), err)
	}
	t.Setenv(SocketEnv, sock)
	for _, tc := range []struct {
		name, req string
		want      string
	}{
		{"its host", "protocol=https\nhost=git.example.com:8443\npath=team/nb.git\n\n", "username=x-access-token\npassword=" + token + "\n\n"},
		{"another port", "protocol=https\nhost=git.example.com\n\n", ""},
		{"plain http", "protocol=http\nhost=git.example.com:8443\n\n", ""},
		{"another host", "protocol=https\nhost=evil.example\n\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := CredentialHelper("get", strings.NewReader(tc.req), &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("answer %q, want %q", out.String(), tc.want)
			}
		})
	}
	var out bytes.Buffer
	if err := CredentialHelper("store", strings.NewReader("protocol=https\nhost=x\npassword=p\n\n"), &out); err != nil || out.Len() != 0 {
		t.Errorf("store: %v %q, want nothing", err, out.String())
	}
	t.Setenv(SocketEnv, "")
	if err := CredentialHelper("get", strings.NewReader("protocol=https\nhost=git.example.com:8443\n\n"), &out); err == nil {
		t.Error("with no socket the helper must say so")
	}
}

func TestSaveWithoutCheckout(t *testing.T) {
	r := &Repo{Dir: t.TempDir()}
	if _, err := r.Save(ctx(t), SaveOptions{}); !errors.Is(err, ErrNotCheckout) {
		t.Fatalf("Save in a plain directory = %v, want ErrNotCheckout", err)
	}
}

func TestStripOutputsFormat(t *testing.T) {
	in := `{"cells":[{"cell_type":"code","execution_count":1,"metadata":{},"outputs":[{"output_type":"stream"}],"source":["x = 1.50"]}],"metadata":{},"nbformat":4,"nbformat_minor":5}`
	got, err := StripOutputs([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": null,
   "metadata": {},
   "outputs": [],
   "source": [
    "x = 1.50"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("StripOutputs (-want +got):\n%s", diff)
	}
	if _, err := StripOutputs([]byte("not json")); err == nil {
		t.Error("StripOutputs of garbage must fail")
	}
}
