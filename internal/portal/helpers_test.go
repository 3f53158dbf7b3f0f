package portal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"github.com/spinbook/spinbook/internal/secret"
)

// standInServers stands in for the backend work behind Servers (package
// cli's code of up, down, save ... over a real backend, tested there and
// in e2e): the portal's own job — who may do what, sessions, tokens, the
// audit log, progress — does not depend on what a start does. It keeps
// servers in memory and records every call.
type standInServers struct {
	mu      sync.Mutex
	running map[string]string // user -> size
	calls   []string          // "start alice small"
	release chan struct{}     // when set, Start waits for it after its first event
	url     string            // every server's URL
	unsaved map[string]bool   // users whose work cannot be saved: Stop refuses, as down does
}

func newStandIn() *standInServers {
	return &standInServers{running: map[string]string{}, url: "http://127.0.0.1:8801/", unsaved: map[string]bool{}}
}

func (s *standInServers) call(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func (s *standInServers) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *standInServers) status(user string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := map[string]any{"user": user, "backend": "stand-in", "state": "absent", "ready": false}
	if size, ok := s.running[user]; ok {
		v["state"], v["ready"], v["url"], v["size"] = "running", true, s.url, size
		v["cost_per_hour"], v["cost_so_far"] = 1.5, 0.25
	}
	data, _ := json.Marshal(v)
	return data
}

func (s *standInServers) Start(ctx context.Context, user, size string, progress func(string)) (json.RawMessage, error) {
	s.call("start %s %s", user, size)
	progress("bringing up " + user + "'s server")
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	progress("Jupyter answers")
	s.mu.Lock()
	s.running[user] = size
	s.mu.Unlock()
	return s.status(user), nil
}

func (s *standInServers) Stop(ctx context.Context, user string, purge, force bool, progress func(string)) (json.RawMessage, error) {
	s.call("stop %s purge=%t force=%t", user, purge, force)
	progress("saving " + user + "'s workspace first")
	s.mu.Lock()
	unsaved := s.unsaved[user] && !force
	s.mu.Unlock()
	if unsaved {
		return nil, fmt.Errorf("%w: down: %s's server keeps running, because its work did not reach the remote", ErrRefused, user)
	}
	s.mu.Lock()
	delete(s.running, user)
	s.mu.Unlock()
	return s.status(user), nil
}

func (s *standInServers) Save(ctx context.Context, user, message string) (json.RawMessage, error) {
	s.call("save %s %q", user, message)
	return json.RawMessage(`{"user":"` + user + `","repo":false}`), nil
}

func (s *standInServers) Extend(ctx context.Context, user string, d time.Duration) (json.RawMessage, error) {
	s.call("extend %s %s", user, d)
	return json.RawMessage(`{"user":"` + user + `"}`), nil
}

func (s *standInServers) Status(ctx context.Context, user string) (json.RawMessage, error) {
	return s.status(user), nil
}

func (s *standInServers) List(ctx context.Context) ([]json.RawMessage, error) {
	s.mu.Lock()
	users := make([]string, 0, len(s.running))
	for u := range s.running {
		users = append(users, u)
	}
	s.mu.Unlock()
	var out []json.RawMessage
	for _, u := range users {
		out = append(out, s.status(u))
	}
	return out, nil
}

// Passwords of the test users; the hashes are made once per test binary.
const (
	alicePassword = "alice-pw-Xq81LmZ3"
	bobPassword   = "bob-pw-Rt55NnA0"
	carolPassword = "carol-pw-Yy20PpB7"
)

var (
	hashesOnce sync.Once
	hashes     map[string]string
)

func testHashes(t *testing.T) map[string]string {
	t.Helper()
	hashesOnce.Do(func() {
		hashes = map[string]string{}
		for user, pw := range map[string]string{"alice": alicePassword, "bob": bobPassword, "carol": carolPassword} {
			h, err := secret.HashPassword(pw)
			if err != nil {
				panic(err)
			}
			hashes[user] = h
		}
	})
	return hashes
}

// A testPortal is a portal with users alice and bob (not admins) and
// carol (admin), over standInServers.
type testPortal struct {
	p       *Portal
	servers *standInServers
	logs    *proctest.Buffer // the portal's log, written by its goroutines
	out     *bytes.Buffer
	dir     string
	key     ed25519.PrivateKey
	cfg     *config.Config
	oidc    *OIDC
}

func newTestPortal(t *testing.T, mod func(*config.Config)) *testPortal {
	t.Helper()
	h := testHashes(t)
	cfg := config.Default()
	cfg.Portal.Users = map[string]config.PortalUser{
		"alice": {PasswordHash: h["alice"]},
		"bob":   {PasswordHash: h["bob"]},
		"carol": {PasswordHash: h["carol"], Admin: true},
	}
	cfg.Sizes = map[string]config.Size{"small": {PricePerHour: "1.5", Price: 1.5}, "gpu": {}}
	if mod != nil {
		mod(cfg)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPortal{servers: newStandIn(), logs: &proctest.Buffer{}, out: &bytes.Buffer{}, dir: t.TempDir(), key: key, cfg: cfg}
	tp.start(t)
	return tp
}

// start (re)opens the portal on tp's state dir, as a restart would.
func (tp *testPortal) start(t *testing.T) {
	t.Helper()
	p, err := New(t.Context(), Options{
		Config: tp.cfg, Servers: tp.servers, StateDir: tp.dir, Key: tp.key, Out: tp.out, OIDC: tp.oidc,
		Logger: slog.New(slog.NewTextHandler(tp.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	tp.p = p
}

// do runs a request through the portal. Host is 127.0.0.1:8700 unless set.
func (tp *testPortal) do(r *http.Request) *http.Response {
	if r.Host == "example.com" { // httptest.NewRequest's default
		r.Host = "127.0.0.1:8700"
	}
	rec := httptest.NewRecorder()
	tp.p.ServeHTTP(rec, r)
	return rec.Result()
}

// browser is a signed-in browser: its cookie and CSRF token.
type browser struct {
	cookie string
	csrf   string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs user in with password and returns the browser.
func (tp *testPortal) signIn(t *testing.T, user, password string) browser {
	t.Helper()
	resp := tp.do(formPost("/login", url.Values{"user": {user}, "password": {password}}))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %d, want 303", user, resp.StatusCode)
	}
	var b browser
	for _, c := range resp.Cookies() {
		if c.Name == tp.p.cookieName {
			b.cookie = c.Name + "=" + c.Value
		}
	}
	if b.cookie == "" {
		t.Fatalf("sign in %s: no cookie", user)
	}
	get := httptest.NewRequest(http.MethodGet, "/tokens", nil)
	get.Header.Set("Cookie", b.cookie)
	m := csrfField.FindStringSubmatch(readBody(t, tp.do(get)))
	if m == nil {
		t.Fatalf("no csrf field on the tokens page")
	}
	b.csrf = m[1]
	return b
}

// formPost is a same-origin form post, as a browser sends one.
func formPost(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

// makeToken makes an API token for b's user on the Tokens page.
func (tp *testPortal) makeToken(t *testing.T, b browser) string {
	t.Helper()
	r := formPost("/tokens", url.Values{"csrf": {b.csrf}, "name": {"test"}})
	r.Header.Set("Cookie", b.cookie)
	resp := tp.do(r)
	m := regexp.MustCompile(`value="(sbp_[A-Za-z0-9_-]{43})"`).FindStringSubmatch(readBody(t, resp))
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("make token: %d, or no token on the page", resp.StatusCode)
	}
	return m[1]
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
