// Package gittest serves a real git repository over smart HTTP with basic
// auth, for tests: git http-backend behind net/http/cgi in the test
// process. The password is the token; any username is accepted.
package gittest

import (
	"bytes"
	"crypto/subtle"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a git server holding one bare repository, team.git.
type Server struct {
	// Bare is the repository's directory on disk.
	Bare string
	// Refused counts requests turned away for a missing or wrong token.
	Refused atomic.Int64

	mu      sync.Mutex
	token   string
	t       testing.TB
	root    string
	backend string
	srv     *httptest.Server
}

// New starts a server whose repository has one commit on branch holding
// files (path -> content). It stops when the test ends.
func New(t testing.TB, token, branch string, files map[string]string) *Server {
	t.Helper()
	exec, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("no git: apt-get install git (%v)", err)
	}
	s := &Server{token: token, t: t, root: t.TempDir(),
		backend: filepath.Join(strings.TrimSpace(string(exec)), "git-http-backend")}
	s.Bare = filepath.Join(s.root, "team.git")
	Git(t, s.root, "init", "-q", "--bare", "-b", branch, s.Bare)
	Git(t, s.Bare, "config", "http.receivepack", "true")
	if files != nil {
		work := t.TempDir()
		Git(t, work, "init", "-q", "-b", branch)
		WriteFiles(t, work, files)
		Git(t, work, "add", "-A")
		Git(t, work, "commit", "-q", "-m", "first")
		Git(t, work, "push", "-q", s.Bare, branch)
	}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the repository's URL.
func (s *Server) URL() string { return s.srv.URL + "/team.git" }

// SetToken makes token the only one accepted from now on, as when a token
// is revoked.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Close stops the server: from now on connections are refused.
func (s *Server) Close() { s.srv.Close() }

// ServeHTTP checks the token, then hands the request to git http-backend.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	token := s.token
	s.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
		if ok {
			s.Refused.Add(1)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	if r.ContentLength < 0 && r.Body != nil {
		// git sends a pack bigger than http.postBuffer (1 MiB) chunked,
		// which CGI cannot pass on: take it in whole first, as a git
		// host's front server does.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body, r.ContentLength, r.TransferEncoding = io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	}
	h := &cgi.Handler{
		Path: s.backend,
		Dir:  s.root,
		Env:  []string{"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user},
	}
	h.ServeHTTP(w, r)
}

// Git runs git in dir with no system or global config and a fixed
// identity, failing the test on error, and returns its output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	// The tests read workspaces that belong to a server's own OS account
	// (the local backend as root): safe.directory lets git look.
	cmd := exec.Command("git", append([]string{"-c", "safe.directory=*"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.invalid")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, errb.String())
	}
	return out.String()
}

// WriteFiles writes files (path -> content) under dir.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Tree returns every file of ref in the bare repository, path -> content.
func (s *Server) Tree(t testing.TB, ref string) map[string]string {
	t.Helper()
	return TreeOf(t, s.Bare, ref)
}

// TreeOf returns every file of ref in the repository at dir.
func TreeOf(t testing.TB, dir, ref string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range strings.Split(strings.TrimSuffix(Git(t, dir, "ls-tree", "-r", "-z", "--name-only", ref), "\x00"), "\x00") {
		if p != "" {
			out[p] = Git(t, dir, "show", ref+":"+p)
		}
	}
	return out
}

// Branches lists the repository's branches.
func (s *Server) Branches(t testing.TB) []string {
	t.Helper()
	out := strings.Fields(Git(t, s.Bare, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/"))
	return out
}
