package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// gitPorts keeps the repo tests' servers clear of the other tests' ports.
const gitPorts = "19200-19399"

// gitWorld is a world whose config names the repository of a real git
// server (git http-backend behind basic auth), with the token — a unique
// canary — only in the environment of the spinbook commands.
type gitWorld struct {
	*world
	git   *gittest.Server
	token string
}

var gitSeed = map[string]string{
	"README.md":  "# team notebooks\n",
	".gitignore": "*.tmp\nscratch/\n",
	"a.txt":      "a on main\n",
}

func newGitWorld(t *testing.T, branch, extra string) *gitWorld {
	t.Helper()
	needJupyter(t)
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	cfg := fmt.Sprintf("repo:\n  url: %s\n  branch: %s\n  token: ${env:SPINBOOK_E2E_GIT_TOKEN}\n%s", g.URL(), branch, extra)
	w := newWorldPorts(t, cfg, gitPorts)
	w.env = append(w.env, "SPINBOOK_E2E_GIT_TOKEN="+token)
	return &gitWorld{world: w, git: g, token: token}
}

// pushAs commits files onto branch of the remote from a clone of its own,
// as a colleague would (force rewrites the branch from scratch).
func (g *gitWorld) pushAs(t *testing.T, branch string, files map[string]string, force bool) string {
	t.Helper()
	dir := t.TempDir()
	if force {
		gittest.Git(t, dir, "init", "-q", "-b", branch)
	} else {
		gittest.Git(t, dir, "clone", "-q", g.git.Bare, ".")
		start := "HEAD"
		if slices.Contains(g.git.Branches(t), branch) {
			start = "origin/" + branch
		}
		gittest.Git(t, dir, "checkout", "-q", "-B", branch, start)
	}
	gittest.WriteFiles(t, dir, files)
	gittest.Git(t, dir, "add", "-A")
	gittest.Git(t, dir, "commit", "-q", "-m", "a colleague's work")
	args := []string{"push", "-q", g.git.Bare, "HEAD:refs/heads/" + branch}
	if force {
		args = append(args, "--force")
	}
	gittest.Git(t, dir, args...)
	return strings.TrimSpace(gittest.Git(t, dir, "rev-parse", "HEAD"))
}

// saveResult is what `save --json` prints.
type saveResult struct {
	User         string `json:"user"`
	Repo         bool   `json:"repo"`
	Committed    string `json:"committed"`
	Head         string `json:"head"`
	Branch       string `json:"branch"`
	PushedTo     string `json:"pushed_to"`
	NewBranch    bool   `json:"new_branch"`
	UpToDate     bool   `json:"up_to_date"`
	Bundle       string `json:"bundle"`
	StoredBundle string `json:"stored_bundle"`
	Reason       string `json:"reason"`
	Saved        bool   `json:"saved"`
}

func (g *gitWorld) save(t *testing.T, user string, args ...string) (saveResult, result) {
	t.Helper()
	r := g.run(append([]string{"save", "--json", "--user", user}, args...)...)
	var s saveResult
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("save --json printed no JSON: %v\n%s", err, r)
	}
	return s, r
}

// workspaceFiles reads every file of a workspace outside .git.
func workspaceFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".ipynb_checkpoints") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(data)
		}
		return nil
	})
	return out
}

// canaryWatch samples every process's command line (every few ms) and the
// environment of every process but the spinbook commands the test runs
// (which hold the token by design: it is in their ${env:...}), looking for
// the token.
type canaryWatch struct {
	token string
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	hits  map[string]bool
	scans int
}

func watchCanary(t *testing.T, token string) *canaryWatch {
	c := &canaryWatch{token: token, stop: make(chan struct{}), done: make(chan struct{}), hits: map[string]bool{}}
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			c.scan(i%10 == 0)
			select {
			case <-c.stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(c.finish)
	// A positive control: a process with the token in its argv is seen.
	probe := exec.Command("sh", "-c", "sleep 2", token)
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the canary watch to see a probe process", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.hits) > 0
	})
	probe.Process.Kill()
	probe.Wait()
	c.mu.Lock()
	clear(c.hits)
	c.mu.Unlock()
	return c
}

func (c *canaryWatch) scan(environ bool) {
	entries, _ := os.ReadDir("/proc")
	tok := []byte(c.token)
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		argv := bytes.Split(cmdline, []byte{0})
		if bytes.Contains(cmdline, tok) {
			c.hit("argv of " + string(bytes.Join(argv, []byte{' '})[:min(len(cmdline), 60)]))
		}
		if !environ {
			continue
		}
		cli := len(argv) > 1 && string(argv[0]) == bin && string(argv[1]) != "agent"
		if cli {
			continue
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(env, tok) {
			c.hit("environment of " + string(bytes.Join(argv, []byte{' '})[:min(len(cmdline), 80)]))
		}
	}
	c.mu.Lock()
	c.scans++
	c.mu.Unlock()
}

func (c *canaryWatch) hit(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hits[strings.ReplaceAll(what, c.token, "[canary]")] = true
}

func (c *canaryWatch) finish() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// check stops the watch and fails the test if the token was seen.
func (c *canaryWatch) check(t *testing.T) {
	t.Helper()
	c.finish()
	if c.scans < 10 {
		t.Errorf("the canary watch scanned /proc only %d times", c.scans)
	}
	for h := range c.hits {
		t.Errorf("the token was found in the %s", h)
	}
}

// assertNoCanary fails if the token is in any file under dir (.git included).
func assertNoCanary(t *testing.T, dir, token string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		n++
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(token)) {
			t.Errorf("the token is in %s", p)
		}
		return nil
	})
	if n == 0 {
		t.Errorf("no files under %s to check", dir)
	}
}

// TestRepoUpSaveKernelPush: up clones the configured branch; save commits
// modified, new and deleted files (not ignored ones) and pushes exactly
// that tree, notebooks without outputs; `!git push` in a kernel works with
// no token typed; the token is never in argv, an environment of the
// server, a file of the workspace or the log; a later up keeps local
// changes and reports how far behind the remote the checkout is.
func TestRepoUpSaveKernelPush(t *testing.T) {
	g := newGitWorld(t, "analysis", "  strip_outputs: true\n")
	analysis := map[string]string{"analysis/notes.md": "branch analysis\n", "del.txt": "to delete\n"}
	g.pushAs(t, "analysis", analysis, false)
	watch := watchCanary(t, g.token)

	s := g.up("gina")
	want := map[string]string{}
	for k, v := range gitSeed {
		want[k] = v
	}
	for k, v := range analysis {
		want[k] = v
	}
	if diff := cmp.Diff(want, workspaceFiles(t, s.Workspace)); diff != "" {
		t.Fatalf("workspace after up is not the branch analysis (-want +got):\n%s", diff)
	}
	if br := strings.TrimSpace(gitAsOwner(t, s.Workspace, "symbolic-ref", "--short", "HEAD")); br != "analysis" {
		t.Fatalf("checked-out branch %q, want analysis", br)
	}

	notebook := `{"cells": [{"cell_type": "code", "execution_count": 7, "metadata": {}, "outputs": [{"name": "stdout", "output_type": "stream", "text": ["output only in the workspace\n"]}], "source": ["print(42)"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}`
	writeAsOwner(t, s.Workspace, map[string]string{
		"a.txt":           "a, edited in the server\n",
		"new/model.py":    "weights = 1\n",
		"nb.ipynb":        notebook,
		"cache.tmp":       "ignored\n",
		"scratch/big.csv": "ignored too\n",
	})
	if err := os.Remove(filepath.Join(s.Workspace, "del.txt")); err != nil {
		t.Fatal(err)
	}
	res, r := g.save(t, "gina", "-m", "e2e edits")
	if r.code != 0 || !res.Saved || res.PushedTo != "analysis" || res.NewBranch || res.Committed == "" {
		t.Fatalf("save = %+v\n%s", res, r)
	}
	tree := g.git.Tree(t, "analysis")
	pushedNB := tree["nb.ipynb"]
	delete(tree, "nb.ipynb")
	wantTree := map[string]string{
		"README.md": gitSeed["README.md"], ".gitignore": gitSeed[".gitignore"], "a.txt": "a, edited in the server\n",
		"analysis/notes.md": "branch analysis\n", "new/model.py": "weights = 1\n",
	}
	if diff := cmp.Diff(wantTree, tree); diff != "" {
		t.Errorf("remote branch analysis after save (-want +got):\n%s", diff)
	}
	if strings.Contains(pushedNB, "output only in the workspace") || !strings.Contains(pushedNB, "print(42)") {
		t.Errorf("pushed notebook, want it without outputs:\n%s", pushedNB)
	}
	if data, _ := os.ReadFile(filepath.Join(s.Workspace, "nb.ipynb")); string(data) != notebook {
		t.Errorf("the workspace notebook changed: %s", data)
	}
	if msg := gittest.Git(t, g.git.Bare, "log", "-1", "--format=%s|%an|%ae", "analysis"); msg != "e2e edits|gina|gina@users.noreply.spinbook.invalid\n" {
		t.Errorf("commit message and author = %q", msg)
	}

	// git push typed in a kernel: no token asked for.
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != 303 {
		t.Fatalf("login = %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, startKernel(t, b), b.origin())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	out := execute(ctx, t, conn, fmt.Sprintf(`import subprocess
ws = %q
open(ws + "/from_kernel.txt", "w").write("written in a kernel\n")
subprocess.run(["git", "-C", ws, "add", "from_kernel.txt"], check=True)
subprocess.run(["git", "-C", ws, "commit", "-q", "-m", "from a kernel"], check=True)
!git -C {ws} push origin HEAD:analysis 2>&1
print("done")`, s.Workspace))
	if got := g.git.Tree(t, "analysis")["from_kernel.txt"]; got != "written in a kernel\n" {
		t.Fatalf("git push in a kernel did not reach the remote; the kernel printed:\n%s", out)
	}
	conn.Close(1000, "")

	watch.check(t)
	assertNoCanary(t, s.Workspace, g.token)
	assertNoCanary(t, filepath.Join(g.stateDir, "servers"), g.token)
	if cfg, _ := os.ReadFile(filepath.Join(s.Workspace, ".git", "config")); !bytes.Contains(cfg, []byte(g.git.URL())) {
		t.Errorf(".git/config does not name the remote:\n%s", cfg)
	}
	for _, rr := range []result{r} {
		if strings.Contains(rr.stdout+rr.stderr, g.token) {
			t.Errorf("the token is in the output of spinbook: %s", rr)
		}
	}

	// A later up: local changes kept, the remote fetched, behind reported.
	if r := g.run("down", "--user", "gina"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	writeAsOwner(t, s.Workspace, map[string]string{"a.txt": "edited while the server was down\n"})
	g.pushAs(t, "analysis", map[string]string{"c1.txt": "1"}, false)
	g.pushAs(t, "analysis", map[string]string{"c2.txt": "2"}, false)
	up2 := g.run("up", "--json", "--user", "gina")
	if up2.code != 0 || !strings.Contains(up2.stderr, "2 commit(s) behind the remote") {
		t.Errorf("a later up must say how far behind the remote the workspace is: %s", up2)
	}
	if data, _ := os.ReadFile(filepath.Join(s.Workspace, "a.txt")); string(data) != "edited while the server was down\n" {
		t.Errorf("a later up changed a local edit: %q", data)
	}
	logData, _ := os.ReadFile(filepath.Join(g.stateDir, "servers", "gina", "agent.log"))
	if !bytes.Contains(logData, []byte("behind_remote=2")) {
		t.Errorf("the log does not report the checkout 2 commits behind:\n%s", lastLines(string(logData), 30))
	}
	if bytes.Contains(logData, []byte(g.token)) {
		t.Error("the token is in the agent log")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestRepoSaveAfterForcePush: when the remote branch was rewritten, save
// puts every local commit on a spinbook/<user>/... branch and overwrites
// nothing.
func TestRepoSaveAfterForcePush(t *testing.T) {
	g := newGitWorld(t, "main", "")
	s := g.up("hank")
	writeAsOwner(t, s.Workspace, map[string]string{"hand.txt": "committed by hand\n"})
	gitAsOwner(t, s.Workspace, "add", "hand.txt")
	gitAsOwner(t, s.Workspace, "commit", "-q", "-m", "by hand")
	own := strings.TrimSpace(gitAsOwner(t, s.Workspace, "rev-parse", "HEAD"))
	writeAsOwner(t, s.Workspace, map[string]string{"unsaved.txt": "not committed yet\n"})
	theirs := g.pushAs(t, "main", map[string]string{"rewritten.txt": "history rewritten\n"}, true)

	res, r := g.save(t, "hank")
	if r.code != 0 || !res.Saved || !res.NewBranch || !strings.HasPrefix(res.PushedTo, "spinbook/hank/") || len(res.PushedTo) != len("spinbook/hank/20261125T210405Z") {
		t.Fatalf("save after a force push = %+v\n%s", res, r)
	}
	if got := strings.TrimSpace(gittest.Git(t, g.git.Bare, "rev-parse", "main")); got != theirs {
		t.Errorf("remote main = %s, want it untouched at %s", got, theirs)
	}
	for _, c := range []string{own, res.Committed} {
		gittest.Git(t, g.git.Bare, "merge-base", "--is-ancestor", c, res.PushedTo)
	}
	if got := g.git.Tree(t, res.PushedTo)["unsaved.txt"]; got != "not committed yet\n" {
		t.Errorf("unsaved.txt on %s = %q", res.PushedTo, got)
	}
	human := g.run("save", "--user", "hank")
	if human.code != 0 || !strings.Contains(human.stdout, "no new changes") {
		t.Errorf("a second save: %s", human)
	}
}

// TestRepoBundleWhenRemoteUnusable: with the remote down, or the token
// refused, save writes a verified bundle that restores every commit, and
// down refuses to stop the server until --force.
func TestRepoBundleWhenRemoteUnusable(t *testing.T) {
	for _, tc := range []struct{ name, user string }{{"remote down", "jack"}, {"token refused", "kate"}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGitWorld(t, "main", "")
			s := g.up(tc.user)
			writeAsOwner(t, s.Workspace, map[string]string{"one.txt": "1\n"})
			gitAsOwner(t, s.Workspace, "add", "-A")
			gitAsOwner(t, s.Workspace, "commit", "-q", "-m", "one")
			own := strings.TrimSpace(gitAsOwner(t, s.Workspace, "rev-parse", "HEAD"))
			writeAsOwner(t, s.Workspace, map[string]string{"two.txt": "2\n"})
			if tc.name == "remote down" {
				g.git.Close()
			} else {
				g.git.SetToken("canary-revoked-" + newID())
			}

			res, r := g.save(t, tc.user)
			if r.code != 1 || !res.Saved || res.Bundle == "" || res.PushedTo != "" || res.Reason == "" {
				t.Fatalf("save with the remote unusable = %+v\n%s", res, r)
			}
			if !strings.HasPrefix(res.Bundle, filepath.Join(g.stateDir, "servers", tc.user, "bundles")+"/") {
				t.Errorf("bundle %s is not in the server's state dir", res.Bundle)
			}
			if tc.name == "token refused" && g.git.Refused.Load() == 0 {
				t.Error("the git server never saw the refused token")
			}
			restore := t.TempDir()
			gittest.Git(t, restore, "clone", "-q", g.git.Bare, ".")
			gittest.Git(t, restore, "bundle", "verify", res.Bundle)
			gittest.Git(t, restore, "fetch", "-q", res.Bundle, "HEAD:refs/heads/restored")
			for _, c := range []string{own, res.Committed} {
				gittest.Git(t, restore, "merge-base", "--is-ancestor", c, "restored")
			}
			if got := gittest.TreeOf(t, restore, "restored")["two.txt"]; got != "2\n" {
				t.Errorf("two.txt restored from the bundle = %q", got)
			}

			writeAsOwner(t, s.Workspace, map[string]string{"three.txt": "3\n"})
			down := g.run("down", "--user", tc.user)
			if down.code != 1 || !strings.Contains(down.stderr, "keeps running") || !strings.Contains(down.stderr, "--force") {
				t.Fatalf("down with the work only in a bundle: %s", down)
			}
			if st := g.status(tc.user); st.State != "running" {
				t.Fatalf("after a refused down the server is %s, want running", st.State)
			}
			writeAsOwner(t, s.Workspace, map[string]string{"four.txt": "4\n"})
			if down := g.run("down", "--force", "--user", tc.user); down.code != 0 {
				t.Fatalf("down --force: %s", down)
			}
			if st := g.status(tc.user); st.State == "running" {
				t.Fatal("down --force left the server running")
			}
			if _, err := os.Stat(res.Bundle); err != nil {
				t.Errorf("the bundle is gone after down --force: %v", err)
			}
			// down --force still bundled the edits made since.
			bundles, _ := filepath.Glob(filepath.Join(filepath.Dir(res.Bundle), "*.bundle"))
			found := false
			for i, b := range bundles {
				ref := fmt.Sprintf("refs/heads/b%d", i)
				gittest.Git(t, restore, "fetch", "-q", b, "HEAD:"+ref)
				tree := gittest.TreeOf(t, restore, ref)
				found = found || (tree["three.txt"] == "3\n" && tree["four.txt"] == "4\n")
			}
			if !found {
				t.Errorf("no bundle among %v holds the edits made before down --force", bundles)
			}
			assertNoCanary(t, filepath.Join(g.stateDir, "servers"), g.token)
		})
	}
}

// TestRepoSavedOnSIGTERM: an agent stopped from outside spinbook pushes
// the unsaved edits as it exits.
func TestRepoSavedOnSIGTERM(t *testing.T) {
	g := newGitWorld(t, "main", "")
	s := g.up("liam")
	writeAsOwner(t, s.Workspace, map[string]string{"late.txt": "edited just before the stop\n", "a.txt": "changed\n"})
	var rec struct{ PID int }
	data, err := os.ReadFile(filepath.Join(g.stateDir, "servers", "liam", "record.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &rec)
	if err := syscall.Kill(rec.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to stop", time.Minute, func() bool { return g.status("liam").State != "running" })
	tree := g.git.Tree(t, "main")
	if tree["late.txt"] != "edited just before the stop\n" || tree["a.txt"] != "changed\n" {
		t.Fatalf("after SIGTERM the remote main holds %v, want the edits", tree)
	}
}

// TestRepoCloneRefusedFailsUp: a first up whose token the remote refuses
// fails, saying what to check, and never shows the token; once the token
// is right again, the next up clones.
func TestRepoCloneRefusedFailsUp(t *testing.T) {
	g := newGitWorld(t, "main", "")
	g.git.SetToken("canary-other-" + newID())
	r := g.run("up", "--user", "mia")
	if r.code != 1 || !strings.Contains(r.stderr, "clone") || !strings.Contains(r.stderr, "repo.token") {
		t.Fatalf("up with a refused token: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, g.token) {
		t.Errorf("the token is in up's output: %s", r)
	}
	assertNoCanary(t, filepath.Join(g.stateDir, "servers"), g.token)

	// Once the token is right again, the next up clones.
	g.git.SetToken(g.token)
	s := g.up("mia")
	if got := workspaceFiles(t, s.Workspace); !cmp.Equal(got, gitSeed) {
		t.Errorf("workspace after a retried up (-want +got):\n%s", cmp.Diff(gitSeed, got))
	}
}
