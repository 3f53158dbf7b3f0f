package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const (
	testPassword = "correct horse battery staple"
	testToken    = "upstream-token-7f3c9d"
)

// A fakeClock is the gateway's clock in tests: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed on the next write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// waitFor reports whether s appears in the buffer before ctx is done.
func (b *syncBuffer) waitFor(ctx context.Context, s string) bool {
	for {
		b.mu.Lock()
		if strings.Contains(b.buf.String(), s) {
			b.mu.Unlock()
			return true
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// An upstream stands in for Jupyter: it counts requests, keeps a copy of
// the last one, echoes websocket messages, and on /set-cookie tries to set
// a spinbook cookie.
type upstream struct {
	*httptest.Server
	requests atomic.Int64

	mu   sync.Mutex
	last *http.Request
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	u.mu.Lock()
	u.last = r.Clone(context.Background())
	u.mu.Unlock()

	if r.Header.Get("Upgrade") != "" {
		// The default Accept options check Origin against Host, as
		// Jupyter does: this passes only if the gateway kept the Host.
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}
	if r.URL.Path == "/set-cookie" {
		w.Header().Add("Set-Cookie", "spinbook-bob=planted; Path=/")
		w.Header().Add("Set-Cookie", "_xsrf=fresh; Path=/")
	}
	_, _ = io.WriteString(w, "hello from jupyter")
}

// lastRequest returns a copy of the last request upstream received.
func (u *upstream) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		t.Fatal("upstream received no request")
	}
	return u.last
}

// A testEnv is a gateway in front of an upstream, with a fake clock and a
// log buffer.
type testEnv struct {
	g      *Gateway
	up     *upstream
	clock  *fakeClock
	logs   *syncBuffer
	checks atomic.Int64 // CheckPassword calls
	logins atomic.Int64 // logins made by login, for distinct addresses
}

// newEnv starts a gateway for user alice, named example.com (the Host of
// httptest.NewRequest), that admits 127.0.0.0/8 and 192.0.2.0/24
// (httptest.NewRequest's RemoteAddr is 192.0.2.1). mod, if
// not nil, changes the options first.
func newEnv(t testing.TB, mod func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{up: newUpstream(t), clock: newClock(), logs: &syncBuffer{}}
	u, err := url.Parse(e.up.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		User:          "alice",
		Upstream:      u,
		UpstreamToken: testToken,
		CheckPassword: func(p string) bool {
			e.checks.Add(1)
			return subtle.ConstantTimeCompare([]byte(p), []byte(testPassword)) == 1
		},
		Allow: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("192.0.2.0/24"),
		},
		// httptest.NewRequest's Host.
		Hosts:  []string{"example.com"},
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	e.g, err = New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// serve runs r through the gateway.
func (e *testEnv) serve(r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	e.g.ServeHTTP(rec, r)
	return rec.Result()
}

// login logs in from a fresh address and returns the session cookie as a
// "name=value" pair for a Cookie header.
func (e *testEnv) login(t testing.TB) string {
	t.Helper()
	n := e.logins.Add(1)
	r := loginRequest(testPassword, "/")
	r.RemoteAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + n)}), 40000).String()
	resp := e.serve(r)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == e.g.cookieName && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("login: no %s cookie in %q", e.g.cookieName, resp.Header["Set-Cookie"])
	return ""
}

// loginRequest is a same-origin login form post.
func loginRequest(password, next string) *http.Request {
	form := url.Values{"password": {password}, "next": {next}}
	r := httptest.NewRequest(http.MethodPost, "/spinbook/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}
