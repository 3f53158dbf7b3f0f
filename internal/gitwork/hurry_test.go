package gitwork

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestSaveHurriedMidPush: a push that hangs is cut short when Hurry
// closes, and the work goes into a bundle at once — the save a spot
// interruption makes while a push is under way. Without Hurry the same
// save waits for the push.
func TestSaveHurriedMidPush(t *testing.T) {
	t.Parallel()
	token := canary()
	s := gittest.New(t, token, "main", seed)
	pushing := make(chan struct{}, 1)
	release := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			select {
			case pushing <- struct{}{}:
			default:
			}
			select { // a remote that hangs mid-push
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	t.Cleanup(func() { close(release) })

	r := repoFor(t, s, token)
	if err := r.Clone(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// From now on the checkout talks to the remote through the proxy.
	url := proxy.URL + "/team.git"
	sock := filepath.Join(t.TempDir(), "git.sock")
	cs, err := ServeCredentials(sock, url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	gittest.Git(t, r.Dir, "remote", "set-url", "origin", url)
	r.URL, r.Socket = url, sock

	gittest.WriteFiles(t, r.Dir, map[string]string{"work.txt": "unsaved\n"})
	hurry := make(chan struct{})
	go func() {
		<-pushing
		close(hurry)
	}()
	bundles := t.TempDir()
	res, err := r.Save(ctx(t), SaveOptions{User: "alice", BundleDir: bundles, Hurry: hurry})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Saved || res.Bundle == "" || res.PushedTo != "" || res.NewBranch {
		t.Fatalf("hurried Save = %+v, want the work in a bundle and no push", res)
	}
	if !strings.Contains(res.Reason, "cut short") {
		t.Errorf("reason %q does not say the push was cut short", res.Reason)
	}
	restore := t.TempDir()
	gittest.Git(t, restore, "clone", "-q", s.Bare, ".")
	gittest.Git(t, restore, "fetch", "-q", res.Bundle, "HEAD:refs/heads/restored")
	if got := gittest.TreeOf(t, restore, "restored")["work.txt"]; got != "unsaved\n" {
		t.Errorf("work.txt from the bundle = %q, want the work", got)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".git", "index.lock")); err == nil {
		t.Error("the cut-short save left .git/index.lock behind")
	}
	if b := s.Branches(t); len(b) != 1 {
		t.Errorf("remote branches %v, want main only (no fallback branch in a hurry)", b)
	}
}
