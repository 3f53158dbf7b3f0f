package cli

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/gitwork"
)

// standinPortal is a STAND-IN for the portal's /api/v1 (the portal itself
// is built on another branch): a real HTTP server that keeps servers in
// memory and answers as the API contract says — bearer tokens, 401 for a
// revoked one, 404 for another person's server, SSE progress on start and
// stop, JSON errors. It lets the command line's side be tested before the
// portal lands; the e2e tests run against the real portal.
type standinPortal struct {
	*httptest.Server
	mu      sync.Mutex
	tokens  map[string]standinUser // token -> user
	servers map[string]serverJSON
	// calls records "METHOD PATH" of each authorised call.
	calls []string
}

type standinUser struct {
	name    string
	admin   bool
	revoked bool
}

func newStandinPortal(t *testing.T) *standinPortal {
	t.Helper()
	p := &standinPortal{tokens: map[string]standinUser{}, servers: map[string]serverJSON{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// token makes a token for user.
func (p *standinPortal) token(user string, admin bool) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := "sbp_" + base64.RawURLEncoding.EncodeToString(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens[tok] = standinUser{name: user, admin: admin}
	return tok
}

func (p *standinPortal) revoke(tok string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.tokens[tok]
	u.revoked = true
	p.tokens[tok] = u
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func apiJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (p *standinPortal) serve(w http.ResponseWriter, r *http.Request) {
	if r.Host != strings.TrimPrefix(p.URL, "http://") {
		apiError(w, http.StatusBadRequest, "unknown host")
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	u, known := p.tokens[tok]
	p.mu.Unlock()
	if !ok || !known || u.revoked {
		apiError(w, http.StatusUnauthorized, "the API token is unknown or revoked: make a new one on the portal's Tokens page")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v1/")
	if !ok {
		apiError(w, http.StatusNotFound, "no such page")
		return
	}
	p.mu.Lock()
	p.calls = append(p.calls, r.Method+" /api/v1/"+path)
	p.mu.Unlock()
	parts := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodGet && path == "me":
		apiJSON(w, map[string]any{"user": u.name, "admin": u.admin})
	case r.Method == http.MethodGet && path == "servers":
		p.mu.Lock()
		out := []serverJSON{}
		for name, s := range p.servers {
			if u.admin || name == u.name {
				out = append(out, s)
			}
		}
		p.mu.Unlock()
		apiJSON(w, out)
	case len(parts) >= 2 && parts[0] == "servers":
		owner := parts[1]
		if owner != u.name && !u.admin {
			apiError(w, http.StatusNotFound, fmt.Sprintf("there is no server of %s that you may see", owner))
			return
		}
		action := ""
		if len(parts) == 3 {
			action = parts[2]
		}
		p.server(w, r, owner, action)
	default:
		apiError(w, http.StatusNotFound, "no such API call")
	}
}

func (p *standinPortal) status(owner string) serverJSON {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.servers[owner]
	if !ok {
		return serverJSON{Server: backend.Server{User: owner, Backend: "docker", State: backend.Absent}}
	}
	return s
}

func (p *standinPortal) server(w http.ResponseWriter, r *http.Request, owner, action string) {
	var body map[string]any
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			apiError(w, http.StatusBadRequest, "the body is not JSON: send {...}")
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && action == "":
		apiJSON(w, p.status(owner))
	case r.Method == http.MethodPost && action == "start":
		size, _ := body["size"].(string)
		if size != "" && size != "small" && size != "large" {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("size %q is not one of the portal's sizes (small, large)", size))
			return
		}
		if cur := p.status(owner); cur.State == backend.Running {
			p.stream(w, r, nil, cur) // already up: as it is
			return
		}
		price, soFar := 0.25, 0.0
		s := serverJSON{Server: backend.Server{User: owner, Backend: "docker", State: backend.Running, Ready: true,
			URL: "https://" + owner + ".notebooks.example.com", StartedAt: time.Now().UTC().Truncate(time.Second)},
			IdleJSON: &IdleJSON{Size: size, IdleSeconds: 90, CostPerHour: &price, CostSoFar: &soFar}}
		p.mu.Lock()
		p.servers[owner] = s
		p.mu.Unlock()
		p.stream(w, r, []string{"creating " + owner + "'s container", "waiting for Jupyter"}, s)
	case r.Method == http.MethodPost && action == "stop":
		if p.status(owner).State == backend.Absent && body["purge"] != true {
			p.stream(w, r, nil, p.status(owner))
			return
		}
		p.mu.Lock()
		delete(p.servers, owner)
		p.mu.Unlock()
		p.stream(w, r, []string{"saving " + owner + "'s work", "stopping"}, p.status(owner))
	case r.Method == http.MethodPost && action == "save":
		if p.status(owner).State != backend.Running {
			apiError(w, http.StatusConflict, owner+"'s server is not running: start it first")
			return
		}
		apiJSON(w, saveJSON{User: owner, Repo: true, Result: &gitwork.Result{Saved: true, Head: "0123456789abcdef", PushedTo: "main", Branch: "main"}})
	case r.Method == http.MethodPost && action == "extend":
		d, err := time.ParseDuration(fmt.Sprint(body["for"]))
		if err != nil {
			apiError(w, http.StatusBadRequest, "for: not a duration")
			return
		}
		at := time.Now().Add(d).UTC()
		apiJSON(w, extendJSON{User: owner, IdleJSON: &IdleJSON{StopsAt: &at, StopReason: "idle"}})
	default:
		apiError(w, http.StatusNotFound, "no such API call")
	}
}

// stream answers with SSE progress then done, or plain JSON.
func (p *standinPortal) stream(w http.ResponseWriter, r *http.Request, steps []string, result any) {
	if r.Header.Get("Accept") != "text/event-stream" {
		apiJSON(w, result)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, s := range steps {
		msg, _ := json.Marshal(map[string]string{"message": s})
		fmt.Fprintf(w, "event: progress\ndata: %s\n\n", msg)
		w.(http.Flusher).Flush()
	}
	done, _ := json.Marshal(result)
	fmt.Fprintf(w, ": keep-alive\n\nevent: done\ndata: %s\n\n", done)
}
