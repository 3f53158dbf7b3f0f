package agent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spinbook/spinbook/internal/gateway"
	"github.com/spinbook/spinbook/internal/gitwork"
	"github.com/spinbook/spinbook/internal/models"
)

// Time limits of the repo work.
const (
	cloneTimeout = 10 * time.Minute
	syncTimeout  = 2 * time.Minute
	saveTimeout  = 5 * time.Minute
)

// repoState is the agent's side of the team repo.
type repoState struct {
	repo  *gitwork.Repo
	creds *gitwork.CredentialServer // nil when the remote needs no token
	dir   string                    // private directory of the credential socket
	save  gitwork.SaveOptions       // the options every save starts from
	mu    sync.Mutex                // one save at a time
	// hurry is closed to cut the save under way short (hurrySave);
	// guarded by hurryMu.
	hurryMu sync.Mutex
	hurry   chan struct{}
	// atStart is where the checkout stood when the agent started.
	atStart gitwork.Status
}

// prepareRepo clones the team repo into an empty workspace, or fetches
// into an existing checkout and reports how far behind it is, keeping
// every local change. It starts the credential socket and returns the
// environment through which git in Jupyter, kernels and terminals uses
// it, and signs commits. With no repo configured it does nothing.
func (a *Agent) prepareRepo(ctx context.Context) ([]string, error) {
	spec := a.spec.Repo
	if spec == nil {
		return nil, nil
	}
	a.redact.Add(spec.Token)
	rs := &repoState{}
	author := gitwork.Author{Name: spec.AuthorName, Email: spec.AuthorEmail}
	if author.Name == "" {
		author.Name = a.spec.User
	}
	if author.Email == "" {
		author.Email = a.spec.User + "@users.noreply.spinbook.invalid"
	}
	rs.repo = &gitwork.Repo{
		Dir:    a.spec.Workspace,
		URL:    spec.URL,
		Branch: spec.Branch,
		Author: author,
		Redact: a.redact.Redact,
		Log:    a.log,
	}
	if spec.Token != "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the spinbook binary for git's credential helper: %w", err)
		}
		if rs.dir, err = os.MkdirTemp("", "spinbook-git-"+a.spec.User+"-"); err != nil {
			return nil, fmt.Errorf("credential socket dir: %w", err)
		}
		socket := filepath.Join(rs.dir, "credentials.sock")
		if rs.creds, err = gitwork.ServeCredentials(socket, spec.URL, spec.Token, a.log); err != nil {
			os.RemoveAll(rs.dir)
			return nil, err
		}
		rs.repo.Helper = gitwork.ShellQuote(exe) + " git-credential"
		rs.repo.Socket = socket
	}
	a.repo = rs
	rs.save = gitwork.SaveOptions{
		User:         a.spec.User,
		StripOutputs: spec.StripOutputs,
		BundleDir:    a.spec.BundleDir,
		StoreBundle:  a.bundleStore(),
	}

	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	look := rs.repo.Sync // an existing checkout: fetch, change nothing
	if !rs.repo.IsCheckout() {
		a.log.Info("cloning the team repo into the workspace", "url", spec.URL, "branch", spec.Branch)
		cctx, cancel := context.WithTimeout(ctx, cloneTimeout)
		defer cancel()
		if err := rs.repo.Clone(cctx); err != nil {
			return nil, fmt.Errorf("%w (check repo.url, repo.branch and repo.token)", err)
		}
		look = rs.repo.Status // just fetched
	}
	st, err := look(sctx)
	if err != nil {
		a.log.Warn("the workspace checkout cannot be read", "err", err)
	}
	rs.atStart = st
	a.log.Info("workspace holds the team repo", "branch", st.Branch, "head", st.Head,
		"behind_remote", st.Behind, "ahead_of_remote", st.Ahead, "changed_files", st.Changed)
	if st.FetchError != "" {
		a.log.Warn("the remote could not be fetched; counts are as of the last fetch", "err", st.FetchError)
	}
	return rs.repo.ConfigEnv(), nil
}

// bundleStore returns where bundles are stored besides the state dir: the
// model store, under <prefix>/spinbook/bundles/<user>/, when one is
// configured; nil for nowhere.
func (a *Agent) bundleStore() func(ctx context.Context, path string) (string, error) {
	if a.spec.Models == nil {
		return nil
	}
	return func(ctx context.Context, path string) (string, error) {
		store, err := a.modelStore(ctx)
		if err != nil {
			return "", err
		}
		name, err := models.PutBundle(ctx, store, a.spec.User, path)
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(store.URL(), "/") + "/" + name, nil
	}
}

// closeRepo stops the credential socket.
func (a *Agent) closeRepo() {
	if a.repo == nil || a.repo.creds == nil {
		return
	}
	a.repo.creds.Close()
	os.RemoveAll(a.repo.dir)
}

// saveRepo saves the workspace (see gitwork.Repo.Save), one save at a time.
func (a *Agent) saveRepo(ctx context.Context, message string) (gitwork.Result, error) {
	rs := a.repo
	for !rs.mu.TryLock() { // wait for a save in progress, but not past ctx
		select {
		case <-ctx.Done():
			return gitwork.Result{}, fmt.Errorf("save: another save is still running: %w", context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer rs.mu.Unlock()
	o := rs.save
	o.Message = message
	rs.hurryMu.Lock()
	rs.hurry = make(chan struct{})
	o.Hurry = rs.hurry
	rs.hurryMu.Unlock()
	res, err := rs.repo.Save(ctx, o)
	if a.metrics != nil {
		a.metrics.saved(res, err)
	}
	if err != nil {
		a.log.Error("save failed", "err", err)
	} else if !res.Saved || res.Bundle != "" || res.NewBranch {
		a.log.Warn("saved, but not onto the branch", "pushed_to", res.PushedTo, "bundle", res.Bundle, "reason", res.Reason)
	}
	return res, err
}

// hurrySave cuts the save under way, if any, short: its push stops and
// the work goes into a bundle (a spot interruption leaves no time to wait
// for a slow remote).
func (a *Agent) hurrySave() {
	rs := a.repo
	if rs == nil {
		return
	}
	rs.hurryMu.Lock()
	defer rs.hurryMu.Unlock()
	if rs.hurry != nil {
		close(rs.hurry)
		rs.hurry = nil
	}
}

// SaveResponse is what POST /spinbook/api/save answers.
type SaveResponse struct {
	// Repo is false when the server has no repo: there is nothing to save.
	Repo   bool            `json:"repo"`
	Result *gitwork.Result `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// StatusResponse is what GET /spinbook/api/status answers.
type StatusResponse struct {
	User  string `json:"user"`
	Ready bool   `json:"ready"`
	Repo  bool   `json:"repo"`
	// Git is where the checkout stands now (as of the last fetch), AtStart
	// where it stood when the agent started.
	Git     *gitwork.Status `json:"git,omitempty"`
	AtStart *gitwork.Status `json:"at_start,omitempty"`
	// Idle is the server's activity, coming stop and cost (see idle.go).
	Idle *IdleStatus `json:"idle,omitempty"`
	// Jupyter says which Jupyter the agent started and its version, such
	// as "jupyterlab 4.6.6 (jupyter_server 2.21.1)" or "notebook 6.4.12".
	Jupyter string `json:"jupyter,omitempty"`
	// ProbeCache is what the agent learned about its Jupyter's options
	// (probecarry.go), for a backend to hand to the next server of the
	// image (AgentSpec.ProbeCache).
	ProbeCache map[string]string `json:"probe_cache,omitempty"`
}

// controlHandler is the control API, served by the front door under
// gateway.ControlPrefix to holders of the control token:
//
//	POST /spinbook/api/save    {"message": "..."} -> SaveResponse
//	GET  /spinbook/api/status  -> StatusResponse
//	POST /spinbook/api/extend  {"for": "2h"} -> IdleStatus
func (a *Agent) controlHandler() http.Handler {
	want := sha256.Sum256([]byte(a.spec.ControlToken))
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+gateway.ControlPrefix+"save", a.serveSave)
	mux.HandleFunc("GET "+gateway.ControlPrefix+"status", a.serveStatus)
	mux.HandleFunc("POST "+gateway.ControlPrefix+"extend", a.serveExtend)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if a.spec.ControlToken == "" || !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			a.log.Warn("control API: refused a request without the control token", "path", r.URL.Path)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "the control token is missing or wrong"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (a *Agent) serveSave(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message string `json:"message"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, SaveResponse{Error: "the request is not JSON: " + err.Error()})
			return
		}
	}
	if a.repo == nil {
		writeJSON(w, http.StatusOK, SaveResponse{Repo: false})
		return
	}
	// The save outlives a client that hangs up: a push is not cut short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), saveTimeout)
	defer cancel()
	res, err := a.saveRepo(ctx, req.Message)
	if err != nil {
		msg := a.redact.Redact(err.Error())
		if errors.Is(err, gitwork.ErrNotCheckout) {
			msg = "the workspace is not a git checkout (the repo was configured after it was made?): " + msg
		}
		writeJSON(w, http.StatusInternalServerError, SaveResponse{Repo: true, Result: &res, Error: msg})
		return
	}
	res.Reason = a.redact.Redact(res.Reason)
	if res.OffServer() && a.idle != nil {
		a.idle.retryNow() // a stop waiting for this save may go ahead
	}
	writeJSON(w, http.StatusOK, SaveResponse{Repo: true, Result: &res})
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	resp := StatusResponse{User: a.spec.User, Ready: a.ready.Load(), Repo: a.repo != nil, Idle: a.idleStatus(),
		Jupyter: a.jupyterName, ProbeCache: a.probeCache}
	if a.repo != nil {
		st, err := a.repo.repo.Status(r.Context())
		if err == nil {
			resp.Git = &st
		}
		at := a.repo.atStart
		resp.AtStart = &at
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
