package gitwork

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// ErrNotCheckout means the workspace is not a git checkout, so there is
// nothing a save can do.
var ErrNotCheckout = errors.New("the workspace is not a git checkout")

// emptyTree is git's id of the empty tree (SHA-1 repositories).
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// SaveOptions say how Save commits and where its work may go.
type SaveOptions struct {
	// Message is the commit message; "" gives one naming User and the time.
	Message string
	// User names the fallback branch spinbook/<User>/<UTC time>.
	User string
	// StripOutputs commits notebooks (*.ipynb) without their outputs and
	// execution counts; the files in the workspace keep them.
	StripOutputs bool
	// BundleDir is where a bundle goes when the remote cannot be reached.
	BundleDir string
	// StoreBundle, when set, is also given every bundle written (the model
	// store, for servers whose state dir does not outlive them); it
	// returns where it stored it.
	StoreBundle func(ctx context.Context, path string) (string, error)
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Hurry, once closed, cuts the save's network short: a push under way
	// is stopped and the work goes into a bundle instead (the server is
	// being taken away: a spot interruption). Nil: never.
	Hurry <-chan struct{}
}

// Result says where a save put the work. Saved is the promise: every
// commit of the checkout is on a remote branch or in a bundle.
type Result struct {
	// Committed is the commit this save made; "" when nothing had changed.
	Committed string `json:"committed,omitempty"`
	// Head is the commit saved, Branch the local branch ("" if detached).
	Head   string `json:"head,omitempty"`
	Branch string `json:"branch,omitempty"`
	// PushedTo is the remote branch that now holds Head. NewBranch says it
	// is a spinbook/<user>/<time> branch, because the remote branch had
	// moved or the remote refused the push.
	PushedTo  string `json:"pushed_to,omitempty"`
	NewBranch bool   `json:"new_branch,omitempty"`
	// UpToDate: the remote already held every commit.
	UpToDate bool `json:"up_to_date,omitempty"`
	// Bundle is the git bundle written because the remote could not be
	// reached or refused the token; StoredBundle where StoreBundle put it.
	Bundle       string `json:"bundle,omitempty"`
	StoredBundle string `json:"stored_bundle,omitempty"`
	// Reason says why the work is not on the checked-out branch, when not.
	Reason string `json:"reason,omitempty"`
	Saved  bool   `json:"saved"`
}

// OffServer says that the save put every commit somewhere the server's
// own storage is not: on a remote branch (pushed, or there already), or in
// a bundle stored away (StoredBundle: the model store). A bundle only in
// BundleDir is a last resort on the server's own disk, and does not count.
func (r Result) OffServer() bool {
	return r.Saved && (r.PushedTo != "" || r.UpToDate || r.StoredBundle != "")
}

// Save commits every change in the work tree — modified, new and deleted
// files; .gitignore decides what is left out — and places every commit on
// the remote: fast-forward onto the checked-out branch; if the remote
// moved or refuses, onto a new branch spinbook/<user>/<UTC time>; if the
// remote cannot be reached or refuses the token, into a git bundle in
// o.BundleDir. Nothing on the remote is ever overwritten.
//
// The returned error means the save failed outright (nothing could be
// committed, or no bundle written); Result.Reason carries softer news.
// When ctx has a deadline, the network gets two thirds of it, so that a
// hanging remote still leaves time for the bundle.
func (r *Repo) Save(ctx context.Context, o SaveOptions) (Result, error) {
	var res Result
	if !r.IsCheckout() {
		return res, ErrNotCheckout
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	committed, err := r.commit(ctx, o, now())
	if err != nil {
		return res, fmt.Errorf("save: commit: %w", err)
	}
	res.Committed = committed
	res.Head, _ = r.line(ctx, "rev-parse", "-q", "--verify", "HEAD")
	res.Branch, _ = r.line(ctx, "symbolic-ref", "--short", "-q", "HEAD")
	if res.Head == "" {
		res.UpToDate, res.Saved = true, true // no commit at all, nothing to lose
		return res, nil
	}

	netCtx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		netCtx, cancel = context.WithTimeout(ctx, time.Until(d)*2/3)
		defer cancel()
	}
	netCtx, hurried := hurry(netCtx, o.Hurry)
	defer hurried.stop()
	tryNewBranch := true
	if res.Branch != "" {
		switch out, perr := r.push(netCtx, res.Branch); out {
		case pushed:
			res.PushedTo, res.Saved = res.Branch, true
			r.logf("saved: pushed", "branch", res.Branch, "head", res.Head)
			return res, nil
		case rejected:
			res.Reason = fmt.Sprintf("the remote branch %s moved or refused the push (%v)", res.Branch, perr)
			r.git(netCtx, runOpts{}, "fetch", "-q", "origin")
			if n, _ := r.line(ctx, "rev-list", "--count", "HEAD", "--not", "--remotes=origin"); n == "0" {
				res.UpToDate, res.Saved = true, true
				res.Reason = fmt.Sprintf("nothing new to push: every commit of the workspace is on a remote branch already, though %s has moved on", res.Branch)
				return res, nil
			}
		case unreachable:
			res.Reason = fmt.Sprintf("the remote cannot be reached or refused the token (%v)", perr)
			tryNewBranch = false
		}
		if hurried.done() {
			res.Reason, tryNewBranch = "the push was cut short to save the work in time (the server is being taken away)", false
		}
	} else {
		res.Reason = "HEAD is detached"
	}
	if tryNewBranch && !hurried.done() {
		alt := "spinbook/" + o.User + "/" + now().UTC().Format("20060102T150405Z")
		switch out, perr := r.push(netCtx, alt); out {
		case pushed:
			res.PushedTo, res.NewBranch, res.Saved = alt, true, true
			r.logf("saved: pushed to a new branch", "branch", alt, "head", res.Head, "why", res.Reason)
			return res, nil
		default:
			res.Reason += fmt.Sprintf("; pushing to the new branch %s failed too (%v)", alt, perr)
		}
	}

	path, err := r.bundle(ctx, o, res, now())
	if errors.Is(err, errEmptyBundle) {
		res.UpToDate, res.Saved = true, true
		res.Reason += "; every commit was already on the remote at the last fetch"
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("save: %s; and the bundle could not be written: %w", res.Reason, err)
	}
	res.Bundle, res.Saved = path, true
	r.logf("saved: bundle written", "bundle", path, "head", res.Head, "why", res.Reason)
	if o.StoreBundle != nil {
		if where, err := o.StoreBundle(ctx, path); err != nil {
			res.Reason += fmt.Sprintf("; the bundle could not be stored away too: %v", err)
		} else {
			res.StoredBundle = where
		}
	}
	return res, nil
}

// commit records the work tree as a commit on HEAD through a temporary
// index, so that the user's index and files are left alone (notebooks can
// be stripped in the commit only). It returns the new commit, or "" when
// the tree is the same as HEAD's.
func (r *Repo) commit(ctx context.Context, o SaveOptions, at time.Time) (string, error) {
	gitDir, err := r.line(ctx, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return "", err
	}
	head, _ := r.line(ctx, "rev-parse", "-q", "--verify", "HEAD")
	index := filepath.Join(gitDir, fmt.Sprintf("spinbook-index-%d", os.Getpid()))
	defer os.Remove(index)
	defer os.Remove(index + ".lock")
	os.Remove(index)
	if err := copyFile(filepath.Join(gitDir, "index"), index); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	env := []string{"GIT_INDEX_FILE=" + index}
	if _, err := r.git(ctx, runOpts{env: env}, "add", "-A"); err != nil {
		return "", err
	}
	if o.StripOutputs {
		if err := r.stripNotebooks(ctx, env, head); err != nil {
			return "", err
		}
	}
	tree, err := r.line2(ctx, env, "write-tree")
	if err != nil {
		return "", err
	}
	base := emptyTree
	if head != "" {
		if base, err = r.line(ctx, "rev-parse", head+"^{tree}"); err != nil {
			return "", err
		}
	}
	if tree == base {
		return "", nil
	}
	msg := o.Message
	if msg == "" {
		msg = fmt.Sprintf("Save from spinbook (%s, %s)", o.User, at.UTC().Format(time.RFC3339))
	}
	args := []string{"commit-tree", tree, "-m", msg}
	if head != "" {
		args = append(args, "-p", head)
	}
	c, err := r.line(ctx, args...)
	if err != nil {
		return "", err
	}
	update := []string{"update-ref", "-m", "spinbook save", "HEAD", c}
	if head != "" {
		update = append(update, head)
	}
	if _, err := r.git(ctx, runOpts{}, update...); err != nil {
		return "", err
	}
	// The user's index follows HEAD; their files stay as they are.
	if _, err := r.git(ctx, runOpts{}, "reset", "-q"); err != nil {
		r.logf("refresh the index after a save", "err", err)
	}
	return c, nil
}

func (r *Repo) line2(ctx context.Context, env []string, args ...string) (string, error) {
	out, err := r.git(ctx, runOpts{env: env}, args...)
	return strings.TrimSpace(out), err
}

// stripNotebooks replaces, in the index env names, every notebook changed
// since head by a copy without outputs.
func (r *Repo) stripNotebooks(ctx context.Context, env []string, head string) error {
	base := head
	if base == "" {
		base = emptyTree
	}
	changed, err := r.git(ctx, runOpts{env: env}, "diff-index", "--cached", "--name-only", "--no-renames", "-z",
		"--diff-filter=AMT", base, "--", "*.ipynb")
	if err != nil || changed == "" {
		return err
	}
	staged, err := r.git(ctx, runOpts{env: env}, "ls-files", "-s", "-z", "--", "*.ipynb")
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, p := range strings.Split(strings.TrimSuffix(changed, "\x00"), "\x00") {
		want[p] = true
	}
	var info strings.Builder
	for _, e := range strings.Split(strings.TrimSuffix(staged, "\x00"), "\x00") {
		meta, path, ok := strings.Cut(e, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 || !want[path] {
			continue
		}
		blob, err := r.git(ctx, runOpts{}, "cat-file", "blob", f[1])
		if err != nil {
			return err
		}
		clean, err := StripOutputs([]byte(blob))
		if err != nil {
			r.logf("notebook left as it is: not valid JSON", "path", path, "err", err)
			continue
		}
		id, err := r.git(ctx, runOpts{stdin: strings.NewReader(string(clean))}, "hash-object", "-w", "--no-filters", "--stdin")
		if err != nil {
			return err
		}
		fmt.Fprintf(&info, "%s %s\t%s\x00", f[0], strings.TrimSpace(id), path)
	}
	if info.Len() == 0 {
		return nil
	}
	_, err = r.git(ctx, runOpts{env: env, stdin: strings.NewReader(info.String())}, "update-index", "-z", "--index-info")
	return err
}

// pushOutcome is how a push ended.
type pushOutcome int

const (
	pushed      pushOutcome = iota // the remote branch holds HEAD
	rejected                       // the remote answered no (not a fast-forward, protected, hook)
	unreachable                    // no answer, or the token was refused
)

// push pushes HEAD to the remote branch without ever forcing.
func (r *Repo) push(ctx context.Context, branch string) (pushOutcome, error) {
	out, err := r.git(ctx, runOpts{}, "push", "--porcelain", "origin", "HEAD:refs/heads/"+branch)
	if err == nil {
		return pushed, nil
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "!\t") {
			return rejected, errors.New(strings.TrimSpace(l[strings.LastIndexByte(l, '\t')+1:]))
		}
	}
	return unreachable, err
}

// errEmptyBundle: every commit is on a remote-tracking branch already.
var errEmptyBundle = errors.New("nothing to bundle")

// bundle writes a verified git bundle of every commit of HEAD that the
// remote did not have at the last fetch, and returns its path. A bundle of
// the same HEAD written before is reused.
func (r *Repo) bundle(ctx context.Context, o SaveOptions, res Result, at time.Time) (string, error) {
	if o.BundleDir == "" {
		return "", errors.New("no bundle directory configured")
	}
	if err := os.MkdirAll(o.BundleDir, 0o700); err != nil {
		return "", err
	}
	short := res.Head[:min(12, len(res.Head))]
	if old, _ := filepath.Glob(filepath.Join(o.BundleDir, "*-"+short+".bundle")); len(old) > 0 {
		return old[len(old)-1], nil
	}
	path := filepath.Join(o.BundleDir, at.UTC().Format("20060102T150405Z")+"-"+short+".bundle")
	err := atomicfile.Replace(path, 0o600, func(tmp string) error {
		refs := []string{"bundle", "create", "-q", tmp, "HEAD"}
		if res.Branch != "" {
			refs = append(refs, "refs/heads/"+res.Branch)
		}
		refs = append(refs, "--not", "--remotes=origin")
		if _, err := r.git(ctx, runOpts{}, refs...); err != nil {
			var ge *Error
			if errors.As(err, &ge) && strings.Contains(ge.Stderr, "empty bundle") {
				return errEmptyBundle
			}
			return err
		}
		if _, err := r.git(ctx, runOpts{}, "bundle", "verify", "-q", tmp); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// hurried says whether a save's Hurry channel closed during it.
type hurried struct {
	closed atomic.Bool
	stop   func() bool
}

func (h *hurried) done() bool { return h.closed.Load() }

// hurry returns ctx cancelled also when ch closes, and what tells whether
// it did; stop releases it.
func hurry(ctx context.Context, ch <-chan struct{}) (context.Context, *hurried) {
	h := &hurried{stop: func() bool { return false }}
	if ch == nil {
		return ctx, h
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ch:
			h.closed.Store(true)
			cancel()
		case <-stopped:
		}
	}()
	h.stop = func() bool { close(stopped); cancel(); return true }
	return ctx, h
}
