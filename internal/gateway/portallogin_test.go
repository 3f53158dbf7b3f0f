package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// portalKeys makes the portal's key pair for a test.
func portalKeys(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// openRequest is the browser's cross-site post of an open token from the
// portal's page, as Chromium sends it.
func openRequest(token string) *http.Request {
	form := url.Values{"token": {token}}
	r := httptest.NewRequest(http.MethodPost, portalLoginPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.Header.Set("Origin", "https://portal.example.net")
	return r
}

func sessionCookie(e *testEnv, resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == e.g.cookieName && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

func TestPortalLogin(t *testing.T) {
	pub, priv := portalKeys(t)
	_, otherPriv := portalKeys(t)
	valid := func(now time.Time) OpenClaims {
		return OpenClaims{Subject: "alice", Audience: "http://example.com", IssuedAt: now.Unix(), Expires: now.Add(30 * time.Second).Unix()}
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		claims  func(c *OpenClaims)
		key     ed25519.PrivateKey
		token   string // overrides the signed token
		remote  string // client address; default httptest's 192.0.2.1
		host    string // Host; default example.com, the server's name
		advance time.Duration
		want    int
	}{
		{name: "valid", want: http.StatusSeeOther},
		{name: "wrong user", claims: func(c *OpenClaims) { c.Subject = "bob" }, want: http.StatusUnauthorized},
		{name: "other server host", claims: func(c *OpenClaims) { c.Audience = "http://other.example.com" }, want: http.StatusUnauthorized},
		{name: "other server port", claims: func(c *OpenClaims) { c.Audience = "http://example.com:8889" }, want: http.StatusUnauthorized},
		{name: "other scheme", claims: func(c *OpenClaims) { c.Audience = "https://example.com" }, want: http.StatusUnauthorized},
		{name: "expired", advance: 31 * time.Second, want: http.StatusUnauthorized},
		{name: "lives too long", claims: func(c *OpenClaims) { c.Expires = c.IssuedAt + 3600 }, want: http.StatusUnauthorized},
		{name: "forged signature", key: otherPriv, want: http.StatusUnauthorized},
		{name: "garbage", token: "sbo1.e30.AAAA", want: http.StatusUnauthorized},
		{name: "empty", token: "", want: http.StatusUnauthorized},
		{name: "no portal key", mod: func(o *Options) { o.PortalKey = nil }, want: http.StatusNotFound},
		{name: "not on allowlist", remote: "198.51.100.9:1234", want: http.StatusForbidden},
		{name: "foreign host", host: "evil.example", claims: func(c *OpenClaims) { c.Audience = "http://evil.example" }, want: http.StatusMisdirectedRequest},
		{name: "portal only still opens", mod: func(o *Options) { o.PortalOnly = true }, want: http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.PortalKey = pub
				if tt.mod != nil {
					tt.mod(o)
				}
			})
			c := valid(e.clock.Now())
			if tt.claims != nil {
				tt.claims(&c)
			}
			key := priv
			if tt.key != nil {
				key = tt.key
			}
			token, err := SignOpenToken(key, c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "garbage" || tt.name == "empty" {
				token = tt.token
			}
			e.clock.Advance(tt.advance)
			r := openRequest(token)
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			if tt.host != "" {
				r.Host = tt.host
			}
			resp := e.serve(r)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d; logs:\n%s", resp.StatusCode, tt.want, e.logs)
			}
			cookie := sessionCookie(e, resp)
			if tt.want != http.StatusSeeOther {
				if cookie != "" {
					t.Fatalf("refused open set a session cookie")
				}
				return
			}
			if loc := resp.Header.Get("Location"); loc != "/" {
				t.Errorf("Location %q, want /", loc)
			}
			if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Errorf("Referrer-Policy %q, want no-referrer", rp)
			}
			// The session reaches Jupyter.
			get := httptest.NewRequest(http.MethodGet, "/lab", nil)
			get.Header.Set("Cookie", cookie)
			if resp := e.serve(get); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /lab with the new session: %d", resp.StatusCode)
			}
			if strings.Contains(e.logs.String(), token) {
				t.Errorf("the open token reached the log")
			}
		})
	}
}

func TestPortalLoginReplay(t *testing.T) {
	pub, priv := portalKeys(t)
	e := newEnv(t, func(o *Options) { o.PortalKey = pub })
	now := e.clock.Now()
	token, err := SignOpenToken(priv, OpenClaims{Subject: "alice", Audience: "http://example.com", IssuedAt: now.Unix(), Expires: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.serve(openRequest(token)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: %d", resp.StatusCode)
	}
	for _, advance := range []time.Duration{0, 59 * time.Second} {
		e.clock.Advance(advance)
		if resp := e.serve(openRequest(token)); resp.StatusCode != http.StatusUnauthorized || sessionCookie(e, resp) != "" {
			t.Fatalf("replay after %v: %d, want 401 and no session", advance, resp.StatusCode)
		}
	}
	if !strings.Contains(e.logs.String(), errTokenReplayed.Error()) {
		t.Errorf("the log does not say the token was replayed:\n%s", e.logs)
	}
}

func TestPortalOnlyRefusesPassword(t *testing.T) {
	pub, _ := portalKeys(t)
	e := newEnv(t, func(o *Options) { o.PortalKey = pub; o.PortalOnly = true })
	resp := e.serve(loginRequest(testPassword, "/"))
	if resp.StatusCode != http.StatusForbidden || sessionCookie(e, resp) != "" {
		t.Fatalf("password login with portal_only: %d, want 403 and no session", resp.StatusCode)
	}
	if e.checks.Load() != 0 {
		t.Errorf("the password was checked %d times; portal_only must not check it", e.checks.Load())
	}
	page := httptest.NewRequest(http.MethodGet, loginPath, nil)
	if b := body(t, e.serve(page)); !strings.Contains(b, "portal") {
		t.Errorf("login page does not send the person to the portal:\n%s", b)
	}
	if _, err := New(Options{User: "alice", Upstream: e.g.upstream, CheckPassword: func(string) bool { return false }, PortalOnly: true}); err == nil {
		t.Error("New accepted PortalOnly without PortalKey")
	}
}

// Failed opens count against the login limit as wrong passwords do.
func TestPortalLoginRateLimited(t *testing.T) {
	pub, _ := portalKeys(t)
	_, forger := portalKeys(t)
	obs := &countingObserver{}
	e := newEnv(t, func(o *Options) { o.PortalKey = pub; o.Observer = obs })
	got := 0
	for i := 0; i < 50 && got != http.StatusTooManyRequests; i++ {
		now := e.clock.Now()
		tok, _ := SignOpenToken(forger, OpenClaims{Subject: "alice", Audience: "http://example.com", IssuedAt: now.Unix(), Expires: now.Add(time.Minute).Unix()})
		r := openRequest(tok)
		r.RemoteAddr = netip.MustParseAddrPort("192.0.2.77:1").String()
		got = e.serve(r).StatusCode
	}
	if got != http.StatusTooManyRequests {
		t.Fatalf("50 forged opens from one address were never rate limited (last %d)", got)
	}
	// /metrics counts them with the wrong passwords.
	if obs.failed.Load() == 0 || obs.throttled.Load() != 1 {
		t.Errorf("observer saw %d failed and %d throttled logins, want the forged opens and one throttle", obs.failed.Load(), obs.throttled.Load())
	}
}

// countingObserver counts the logins an Observer is told of.
type countingObserver struct{ failed, throttled atomic.Int32 }

func (o *countingObserver) Request(string, int, time.Duration) {}
func (o *countingObserver) LoginFailed()                       { o.failed.Add(1) }
func (o *countingObserver) LoginThrottled()                    { o.throttled.Add(1) }
func (o *countingObserver) Proxied(string, int64)              {}
