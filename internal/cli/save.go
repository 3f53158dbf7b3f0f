package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/gitwork"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/tlscert"
	"github.com/spinbook/spinbook/internal/ui"
)

// saveJSON is what `save --json` prints, and `down --json` under "save".
type saveJSON struct {
	User string `json:"user"`
	// Repo is false when the server has no repo: nothing to save.
	Repo bool `json:"repo"`
	*gitwork.Result
}

func newSave(e *env) *cobra.Command {
	var message string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "save",
		Short: "Commit every change in your server's workspace and push it",
		Long: `Commit every change in the server's workspace — modified, new and deleted
files; .gitignore decides what is left out — and push it, never forcing:

  - onto the branch checked out in the workspace, when that is a fast-forward;
  - if the remote branch moved or the remote refuses, onto a new branch
    spinbook/USER/UTC-TIME, and save says so;
  - if the remote cannot be reached or refuses the token, into a git bundle
    in the server's state dir, and save says where (exit 1: nothing reached
    the remote, but the work is safe in the bundle).

The server keeps running. With repo.strip_outputs the commit holds notebooks
without their outputs; the workspace keeps them.`,
		Example: `  spinbook save
  spinbook save -m "churn model: first draft"
  spinbook save --user alice --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.saveViaPortal(ctx, pc, message) }); ok || err != nil {
				return err
			}
			_, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			srv, err := be.Status(ctx, user)
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			if srv.State != backend.Running {
				return fmt.Errorf("save: %s's server is %s; start it with `spinbook up --user %s` (its workspace is kept and saved from there)", user, srv.State, user)
			}
			ui.NewProgress(e.stderr).Step(fmt.Sprintf("saving %s's workspace", user))
			out, err := saveServer(ctx, srv, message)
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			return e.finishSave(out)
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "the commit message (default: names the user and the time)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

// finishSave prints what a save did; one that reached no remote is an
// error (exit 1), though the work is safe in a bundle.
func (e *env) finishSave(out saveJSON) error {
	if e.json {
		if err := ui.JSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		printSave(e.stdout, out)
	}
	if out.Repo && out.Result != nil && out.PushedTo == "" && !out.UpToDate {
		return fmt.Errorf("save: nothing reached the remote (%s); the work is safe in %s", out.Reason, out.Bundle)
	}
	return nil
}

// printSave tells a person where the work went.
func printSave(w io.Writer, s saveJSON) {
	if !s.Repo {
		fmt.Fprintf(w, "%s's server has no repo configured (repo.url); nothing to save\n", s.User)
		return
	}
	r := s.Result
	what := "no new changes"
	if r.Committed != "" {
		what = "committed " + short(r.Committed)
	}
	switch {
	case r.PushedTo != "" && !r.NewBranch:
		fmt.Fprintf(w, "%s; %s is on the remote branch %s\n", what, short(r.Head), r.PushedTo)
	case r.NewBranch:
		fmt.Fprintf(w, "%s; the remote branch %s moved or refused the push, so %s is on a new branch: %s\n", what, r.Branch, short(r.Head), r.PushedTo)
		fmt.Fprintf(w, "  why: %s\n  merge it on the git host, or in a terminal of the server\n", r.Reason)
	case r.Bundle != "":
		fmt.Fprintf(w, "%s; the remote could not take it, so %s is in the bundle %s\n", what, short(r.Head), r.Bundle)
		if r.StoredBundle != "" {
			fmt.Fprintf(w, "  also stored at %s\n", r.StoredBundle)
		}
		fmt.Fprintf(w, "  why: %s\n  restore it with: git fetch %s HEAD:refs/heads/restored\n", r.Reason, r.Bundle)
	case r.UpToDate:
		fmt.Fprintf(w, "%s; the remote already holds everything", what)
		if r.Reason != "" {
			fmt.Fprintf(w, " (%s)", r.Reason)
		}
		fmt.Fprintln(w)
	}
}

func short(commit string) string { return commit[:min(len(commit), 12)] }

// saveServer asks srv's agent, through its control API, to save.
func saveServer(ctx context.Context, srv backend.Server, message string) (saveJSON, error) {
	out := saveJSON{User: srv.User}
	body, _ := json.Marshal(map[string]string{"message": message})
	var resp agent.SaveResponse
	code, err := control(ctx, srv, http.MethodPost, "save", body, &resp)
	if err != nil {
		return out, err
	}
	out.Repo, out.Result = resp.Repo, resp.Result
	if resp.Error != "" || code != http.StatusOK {
		return out, fmt.Errorf("the server could not save: %s", resp.Error)
	}
	if out.Repo && out.Result == nil {
		return out, errors.New("the server answered without a result")
	}
	return out, nil
}

// control calls the control API of srv at path with its control token and
// decodes the JSON answer into v.
func control(ctx context.Context, srv backend.Server, method, path string, body []byte, v any) (int, error) {
	if srv.ControlToken == "" {
		return 0, fmt.Errorf("%s's server was started without a control token (by an older spinbook?); restart it: spinbook down --force && spinbook up", srv.User)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(srv.URL, "/")+"/spinbook/api/"+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+srv.ControlToken)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: controlTransport(srv), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reach the server's control API at %s: %w", srv.URL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusForbidden:
		return resp.StatusCode, fmt.Errorf("the server's front door refused this machine (403): add its address to access.allow")
	case http.StatusUnauthorized:
		return resp.StatusCode, errors.New("the server refused the control token (401): it was started by another spinbook state dir?")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return resp.StatusCode, fmt.Errorf("the server's control API answered %s, not JSON", resp.Status)
	}
	return resp.StatusCode, nil
}

// controlTransport trusts a self-signed front door by the fingerprint the
// backend recorded, and anything else by the system's roots.
func controlTransport(srv backend.Server) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if srv.TLSFingerprint == "" {
		return tr
	}
	tr.TLSClientConfig = tlscert.Pinned(srv.TLSFingerprint)
	return tr
}

// repoSpec is what the agent needs of the repo, with the token resolved;
// nil when no repo is configured.
func repoSpec(cfg *config.Config, secrets *resolvedSecrets) (*backend.Repo, error) {
	r := &cfg.Repo
	if !r.Enabled() {
		return nil, nil
	}
	token := secrets.byPath["repo.token"]
	if strings.ContainsAny(token, "\r\n\x00") {
		return nil, usagef("repo.token: the secret holds a line break or NUL, which git's credential protocol cannot carry")
	}
	return &backend.Repo{
		URL:          r.URL,
		Branch:       r.Branch,
		Token:        token,
		AuthorName:   r.Author.Name,
		AuthorEmail:  r.Author.Email,
		StripOutputs: r.StripOutputs,
	}, nil
}

// newControlToken is a fresh 256-bit bearer token for a server's control API.
func newControlToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newGitCredential is git's credential helper inside a server: git in the
// agent, kernels and terminals runs `spinbook git-credential get`, and this
// asks the agent (over the socket named in $SPINBOOK_GIT_CREDENTIALS) for
// the repo's token.
func newGitCredential() *cobra.Command {
	return &cobra.Command{
		Use:    "git-credential get|store|erase",
		Short:  "Internal: git's credential helper inside a server",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gitwork.CredentialHelper(args[0], cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// saveBeforeDown saves srv's work before down takes it away, telling the
// user on stderr where it went. It fails — down then stops and the server
// keeps running — unless every commit is on a remote branch or in a bundle
// stored away from this server (the model store); a bundle only in the
// state dir is a last resort, not a reason to go ahead. With force it only
// warns.
func saveBeforeDown(ctx context.Context, e *env, cfg *config.Config, srv backend.Server, force bool) (*saveJSON, error) {
	if !cfg.Repo.Enabled() {
		return nil, nil // no repo, nothing to save (the agent saves on SIGTERM anyway if it has one)
	}
	p := ui.NewProgress(e.stderr)
	p.Step(fmt.Sprintf("saving %s's workspace first", srv.User))
	out, err := saveServer(ctx, srv, "")
	if err == nil && out.Repo {
		printSave(e.stderr, out)
	}
	if err == nil && out.Repo && !out.OffServer() { // the rule of the agent's own idle stop too
		err = fmt.Errorf("the remote could not take the work (%s); it is only in the bundle %s", out.Reason, out.Bundle)
	}
	if err == nil {
		return &out, nil
	}
	if !force {
		return nil, fmt.Errorf("down: %s's server keeps running, because its work did not reach the remote: %w; "+
			"fix that and run down again, or run `spinbook down --force` to stop it anyway "+
			"(as it stops, the agent tries to save once more and writes a bundle if it cannot push)", srv.User, err)
	}
	p.Step(fmt.Sprintf("the save failed (%v); --force: stopping the server anyway", err))
	return &out, nil
}

// reportRepo tells, as progress, where the workspace checkout stands
// against the remote; silent when the server cannot say.
func reportRepo(ctx context.Context, p *ui.Progress, srv backend.Server) {
	var st agent.StatusResponse
	if code, err := control(ctx, srv, http.MethodGet, "status", nil, &st); err != nil || code != http.StatusOK || st.AtStart == nil {
		return
	}
	g := st.AtStart
	msg := fmt.Sprintf("workspace: branch %s, %d commit(s) behind the remote, %d ahead, %d changed file(s)", g.Branch, g.Behind, g.Ahead, g.Changed)
	if g.FetchError != "" {
		msg += " (as of the last fetch: the remote could not be reached)"
	}
	p.Step(msg)
}
