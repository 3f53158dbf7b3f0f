// Package gitwork keeps a server's workspace in step with the team's git
// repository: it clones the repository into the workspace, and saves the
// work — commit everything, push it fast-forward, else to a branch of its
// own, else into a git bundle — so that no change made in a server is lost.
//
// It drives the real git binary with a clean environment: no system or
// global config, no terminal prompts, transfer.credentialsInUrl=die; and
// since the workspace's .git is the person's to change (from a kernel or
// a terminal), none of the commands that .git/config or .git/hooks can
// name runs in the agent's git (see safetyArgs). The
// token reaches git only through a credential helper (the spinbook binary,
// `spinbook git-credential`) that asks the agent over a private Unix socket,
// so it never appears in argv, a URL, .git/config, the environment or a log.
package gitwork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SocketEnv names the environment variable that tells the credential
// helper where the agent's credential socket is.
const SocketEnv = "SPINBOOK_GIT_CREDENTIALS"

// Author is who commits made by a save are attributed to.
type Author struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Repo is a workspace checkout of a remote repository, and everything git
// needs to reach that remote.
type Repo struct {
	// Dir is the work tree, the server's workspace.
	Dir string
	// URL is the remote, an http(s) URL without a password.
	URL string
	// Branch is the branch to check out; "" means the remote's default.
	Branch string
	// Author signs the commits a save makes.
	Author Author
	// Helper is the credential helper's command line, e.g.
	// "'/usr/local/bin/spinbook' git-credential", and Socket the Unix socket
	// of the CredentialServer it asks; both "" when the remote needs no token.
	Helper string
	Socket string
	// Redact removes secrets from git's messages before they reach an error
	// or a log; nil leaves them as they are.
	Redact func(string) string
	// Log receives one line per git step; nil discards.
	Log *slog.Logger
}

// ConfigEnv is the environment that makes git in this server — the agent's
// own, and git typed in a kernel or terminal — use the credential helper
// for the remote's host, sign commits as the author, and refuse URLs with
// credentials in them. It is git's environment-based config
// (GIT_CONFIG_COUNT, GIT_CONFIG_KEY_n, GIT_CONFIG_VALUE_n), so nothing is
// written to .git/config or ~/.gitconfig.
func (r *Repo) ConfigEnv() []string {
	var kv [][2]string
	if r.Helper != "" {
		scope := "credential." + credentialScope(r.URL) + ".helper"
		// An empty value clears helpers configured elsewhere for this host.
		kv = append(kv, [2]string{scope, ""}, [2]string{scope, "!" + r.Helper})
	}
	if r.Author.Name != "" {
		kv = append(kv, [2]string{"user.name", r.Author.Name})
	}
	if r.Author.Email != "" {
		kv = append(kv, [2]string{"user.email", r.Author.Email})
	}
	kv = append(kv, [2]string{"transfer.credentialsInUrl", "die"})

	env := []string{"GIT_CONFIG_COUNT=" + strconv.Itoa(len(kv))}
	for i, p := range kv {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+p[0], "GIT_CONFIG_VALUE_"+n+"="+p[1])
	}
	if r.Socket != "" {
		env = append(env, SocketEnv+"="+r.Socket)
	}
	return env
}

// credentialScope is the scheme://host[:port] git matches credential.<url>
// config against.
func credentialScope(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Scheme + "://" + u.Host
}

// env is the whole environment of the agent's own git: only what git needs
// from the agent's, no system or global config, never a prompt.
func (r *Repo) env(extra []string) []string {
	env := []string{
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"LC_ALL=C",
		// Only http(s) transports, whatever remote.origin.url, pushurl or
		// url.*.insteadOf say: no ext:: (a shell command), ssh
		// (core.sshCommand), file (uploadpack/receivepack programs) or
		// remote helpers named by remote.*.vcs.
		"GIT_ALLOW_PROTOCOL=http:https",
		// Neither is needed without a terminal; set, they win over
		// core.pager and core.editor.
		"GIT_PAGER=cat",
		"GIT_EDITOR=:",
		"GIT_SEQUENCE_EDITOR=:",
	}
	for _, name := range []string{"PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	env = append(env, r.ConfigEnv()...)
	return append(env, extra...)
}

// Error is a git command that failed.
type Error struct {
	Args   []string // git's arguments, without secrets (the agent never passes any)
	Code   int      // exit code; -1 when git could not run or was stopped
	Stderr string   // what git said, redacted
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), firstLines(msg, 4))
}

func (e *Error) Unwrap() error { return e.Err }

// run runs git in r.Dir and returns its standard output.
type runOpts struct {
	env       []string
	stdin     io.Reader
	dir       string // "" = r.Dir
	noDrivers bool   // do not look for filter drivers (safetyArgs' own query)
}

func (r *Repo) git(ctx context.Context, o runOpts, args ...string) (string, error) {
	full := append(r.safetyArgs(ctx, o), args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = r.Dir
	if o.dir != "" {
		cmd.Dir = o.dir
	}
	cmd.Env = r.env(o.env)
	cmd.Stdin = o.stdin
	// Stopped, git takes its helpers (git-remote-https) with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return stdout.String(), &Error{Args: args, Code: code, Stderr: r.redact(stderr.String()), Err: err}
	}
	if r.Log != nil {
		r.Log.Debug("git", "args", strings.Join(args, " "))
	}
	return stdout.String(), nil
}

// safeConfig is what the agent's own git runs with, over anything the
// workspace's config says: a save must neither run the person's programs
// (which could fail it, hang it, or run in the agent's context) nor depend
// on them. Hooks: pre-commit, commit-msg, post-commit, pre-push,
// post-checkout, reference-transaction and the rest, from .git/hooks or
// core.hooksPath. fsmonitor: a command or hook git runs before status and
// add. Signing: gpg.program. Automatic gc and maintenance: a long job in
// the middle of a save.
var safeConfig = []string{
	"core.hooksPath=/dev/null",
	"core.fsmonitor=false",
	"commit.gpgSign=false",
	"tag.gpgSign=false",
	"push.gpgSign=false",
	"gc.auto=0",
	"maintenance.auto=false",
}

// safetyArgs are the -c options of every git the agent runs: safeConfig,
// and an empty command for each filter driver the repository's config
// defines (filter.NAME.clean, smudge, process), not required, so that
// neither add nor checkout nor status runs one. (The agent runs no diff,
// merge or rebase, so diff and merge drivers never come up.)
func (r *Repo) safetyArgs(ctx context.Context, o runOpts) []string {
	args := make([]string, 0, 2*len(safeConfig)+8)
	for _, kv := range safeConfig {
		args = append(args, "-c", kv)
	}
	if o.noDrivers {
		return args
	}
	q := runOpts{dir: o.dir, noDrivers: true}
	out, _ := r.git(ctx, q, "config", "--includes", "--name-only", "--get-regexp", `^filter\.`)
	seen := map[string]bool{}
	for key := range strings.Lines(out) {
		key = strings.TrimRight(key, "\n")
		i := strings.LastIndexByte(key, '.')
		if i <= len("filter.") {
			continue
		}
		name := key[len("filter."):i]
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, k := range []string{"clean", "smudge", "process"} {
			args = append(args, "-c", "filter."+name+"."+k+"=")
		}
		args = append(args, "-c", "filter."+name+".required=false")
	}
	return args
}

// line runs git and returns the first line of its output.
func (r *Repo) line(ctx context.Context, args ...string) (string, error) {
	out, err := r.git(ctx, runOpts{}, args...)
	return strings.TrimSpace(out), err
}

func (r *Repo) redact(s string) string {
	if r.Redact == nil {
		return s
	}
	return r.Redact(s)
}

func (r *Repo) logf(msg string, args ...any) {
	if r.Log != nil {
		r.Log.Info(msg, args...)
	}
}

// firstLines keeps at most n lines of s.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "; ")
}

// ShellQuote quotes s for a POSIX shell, as a credential helper command
// line is run: '/path with spaces/spinbook' git-credential.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
