package gitwork

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// defaultBranch is the branch of a remote that has none yet.
const defaultBranch = "main"

// Status is where a checkout stands against its remote.
type Status struct {
	// Branch is the branch checked out; "" when HEAD is detached.
	Branch string `json:"branch"`
	// Head is the commit checked out; "" before the first commit.
	Head string `json:"head,omitempty"`
	// Ahead counts local commits not on the remote branch, Behind remote
	// commits not in HEAD, Changed files with uncommitted changes.
	Ahead   int `json:"ahead"`
	Behind  int `json:"behind"`
	Changed int `json:"changed"`
	// FetchError says why the remote could not be asked; Ahead and Behind
	// are then as of the last fetch.
	FetchError string `json:"fetch_error,omitempty"`
}

// IsCheckout reports whether r.Dir is the top of a git work tree.
func (r *Repo) IsCheckout() bool {
	_, err := os.Stat(filepath.Join(r.Dir, ".git"))
	return err == nil
}

// Clone makes r.Dir, which holds no .git, a checkout of r.Branch of the
// remote. Files already in r.Dir are kept as they are (they show up as
// changes); files of the branch that r.Dir lacks are checked out. An empty
// remote gives a checkout of an unborn branch that the first save creates.
// A clone that fails leaves no .git behind, so the next one starts afresh.
func (r *Repo) Clone(ctx context.Context) error {
	if err := r.clone(ctx); err != nil {
		os.RemoveAll(filepath.Join(r.Dir, ".git"))
		return fmt.Errorf("clone %s: %w", r.URL, err)
	}
	return nil
}

func (r *Repo) clone(ctx context.Context) error {
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		return err
	}
	empty := len(entries) == 0
	if _, err := r.git(ctx, runOpts{}, "init", "-q"); err != nil {
		return err
	}
	if err := r.excludeCheckpoints(ctx); err != nil {
		return err
	}
	if _, err := r.git(ctx, runOpts{}, "remote", "add", "origin", r.URL); err != nil {
		return err
	}
	if _, err := r.git(ctx, runOpts{}, "fetch", "-q", "origin"); err != nil {
		return err
	}
	branch := r.Branch
	if branch == "" {
		branch = r.remoteDefault(ctx)
	}
	remoteRef := "refs/remotes/origin/" + branch
	if _, err := r.line(ctx, "rev-parse", "-q", "--verify", remoteRef); err != nil {
		// The remote has no such branch: fine for an empty remote, a
		// mistake otherwise.
		if out, _ := r.line(ctx, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin/"); out != "" {
			return fmt.Errorf("the remote has no branch %q (it has: %s); fix repo.branch", branch, strings.ReplaceAll(out, "\n", ", "))
		}
		_, err := r.git(ctx, runOpts{}, "symbolic-ref", "HEAD", "refs/heads/"+branch)
		return err
	}
	if empty {
		_, err := r.git(ctx, runOpts{}, "checkout", "-q", "-b", branch, "--track", "origin/"+branch)
		return err
	}
	// Keep every file that is there; take the rest from the branch.
	steps := [][]string{
		{"symbolic-ref", "HEAD", "refs/heads/" + branch},
		{"reset", "-q", "origin/" + branch},
		{"branch", "-q", "--set-upstream-to", "origin/" + branch},
	}
	for _, s := range steps {
		if _, err := r.git(ctx, runOpts{}, s...); err != nil {
			return err
		}
	}
	missing, err := r.git(ctx, runOpts{}, "ls-files", "-z", "--deleted")
	if err != nil || missing == "" {
		return err
	}
	_, err = r.git(ctx, runOpts{stdin: strings.NewReader(missing)},
		"checkout", "-q", "--pathspec-from-file=-", "--pathspec-file-nul")
	return err
}

// remoteDefault is the branch the remote's HEAD points at, or main.
func (r *Repo) remoteDefault(ctx context.Context) string {
	out, err := r.line(ctx, "ls-remote", "--symref", "origin", "HEAD")
	if err != nil {
		return defaultBranch
	}
	for _, l := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(l, "ref: refs/heads/"); ok {
			if name, _, ok := strings.Cut(ref, "\t"); ok {
				return name
			}
		}
	}
	return defaultBranch
}

// Sync fetches from the remote and reports where the checkout stands. It
// changes nothing in the work tree: local changes and commits stay. A
// remote that cannot be reached is reported in FetchError, not as an error.
func (r *Repo) Sync(ctx context.Context) (Status, error) {
	var st Status
	if err := r.excludeCheckpoints(ctx); err != nil {
		return st, fmt.Errorf("status of %s: %w", r.Dir, err)
	}
	if _, err := r.git(ctx, runOpts{}, "fetch", "-q", "origin"); err != nil {
		st.FetchError = err.Error()
	}
	if err := r.status(ctx, &st); err != nil {
		return st, fmt.Errorf("status of %s: %w", r.Dir, err)
	}
	return st, nil
}

// Status reports where the checkout stands as of the last fetch.
func (r *Repo) Status(ctx context.Context) (Status, error) {
	var st Status
	if err := r.status(ctx, &st); err != nil {
		return st, fmt.Errorf("status of %s: %w", r.Dir, err)
	}
	return st, nil
}

func (r *Repo) status(ctx context.Context, st *Status) error {
	st.Branch, _ = r.line(ctx, "symbolic-ref", "--short", "-q", "HEAD")
	st.Head, _ = r.line(ctx, "rev-parse", "-q", "--verify", "HEAD")
	out, err := r.git(ctx, runOpts{}, "status", "--porcelain=v1", "-z")
	if err != nil {
		return err
	}
	st.Changed = strings.Count(out, "\x00")
	if st.Head == "" || st.Branch == "" {
		return nil
	}
	counts, err := r.line(ctx, "rev-list", "--left-right", "--count", "HEAD...refs/remotes/origin/"+st.Branch)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ge.Code > 0 { // no such remote branch yet
			n, _ := r.line(ctx, "rev-list", "--count", "HEAD", "--not", "--remotes=origin")
			st.Ahead, _ = strconv.Atoi(n)
			return nil
		}
		return err
	}
	a, b, _ := strings.Cut(counts, "\t")
	st.Ahead, _ = strconv.Atoi(a)
	st.Behind, _ = strconv.Atoi(b)
	return nil
}

// checkpointsPattern keeps Jupyter's checkpoint copies out of every commit.
const checkpointsPattern = ".ipynb_checkpoints/"

// excludeCheckpoints adds Jupyter's .ipynb_checkpoints/ to the checkout's
// own exclude file (.git/info/exclude), so that neither a save nor git
// typed in a terminal commits them.
func (r *Repo) excludeCheckpoints(ctx context.Context) error {
	path, err := r.line(ctx, "rev-parse", "--git-path", "info/exclude")
	if err != nil {
		return err
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.Dir, path)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == checkpointsPattern {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
		f.WriteString("\n")
	}
	f.WriteString("# Jupyter's checkpoint copies (added by spinbook)\n" + checkpointsPattern + "\n")
	return f.Close()
}
