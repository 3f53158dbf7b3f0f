package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

func TestNewValidates(t *testing.T) {
	up := &url.URL{Scheme: "http", Host: "jupyter"}
	check := func(string) bool { return false }
	tests := []struct {
		name    string
		opts    Options
		wantErr string // substring; empty means valid
	}{
		{name: "minimal", opts: Options{Upstream: up, CheckPassword: check}},
		{name: "full", opts: Options{User: "alice.b-c_d", Upstream: up, CheckPassword: check, SessionTTL: time.Hour,
			Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		{name: "no upstream", opts: Options{CheckPassword: check}, wantErr: "upstream: required"},
		{name: "upstream without host", opts: Options{Upstream: &url.URL{Scheme: "http"}, CheckPassword: check}, wantErr: "upstream"},
		{name: "upstream scheme", opts: Options{Upstream: &url.URL{Scheme: "unix", Host: "x"}, CheckPassword: check}, wantErr: "upstream"},
		{name: "no password check", opts: Options{Upstream: up}, wantErr: "check password: required"},
		{name: "user with separator", opts: Options{User: "a;b", Upstream: up, CheckPassword: check}, wantErr: "user"},
		{name: "user with space", opts: Options{User: "a b", Upstream: up, CheckPassword: check}, wantErr: "user"},
		{name: "invalid allow", opts: Options{Upstream: up, CheckPassword: check, Allow: []netip.Prefix{{}}}, wantErr: "allow"},
		{name: "negative ttl", opts: Options{Upstream: up, CheckPassword: check, SessionTTL: -time.Second}, wantErr: "session ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Options{User: "a b"})
	if err == nil {
		t.Fatal("New with no options: no error")
	}
	for _, want := range []string{"upstream", "check password", "user"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// Behaviour 1: the allowlist comes first, for every kind of request.
func TestAllowlistRefusesBeforeAnythingElse(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	cookie := e.login127(t)

	tests := []struct {
		name   string
		method string
		target string
		header http.Header
	}{
		{name: "login page", method: http.MethodGet, target: "/spinbook/login", header: http.Header{"Accept": {"text/html"}}},
		{name: "login post", method: http.MethodPost, target: "/spinbook/login"},
		{name: "health-looking path", method: http.MethodGet, target: "/healthz"},
		{name: "static", method: http.MethodGet, target: "/static/lab/main.js"},
		{name: "api with session", method: http.MethodGet, target: "/api/contents", header: http.Header{"Cookie": {cookie}}},
		{name: "logout", method: http.MethodGet, target: "/logout"},
		{name: "websocket upgrade", method: http.MethodGet, target: "/api/kernels/k/channels", header: http.Header{
			"Cookie":                {cookie},
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Origin":                {"http://example.com"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}},
		{name: "spoofed forwarding headers", method: http.MethodGet, target: "/api/contents", header: http.Header{
			"Cookie":          {cookie},
			"X-Forwarded-For": {"127.0.0.1"},
			"X-Real-Ip":       {"127.0.0.1"},
			"Forwarded":       {"for=127.0.0.1"},
			"X_forwarded_for": {"127.0.0.1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.RemoteAddr = "127.0.0.2:51000"
			for k, v := range tt.header {
				r.Header[k] = v
			}
			resp := e.serve(r)
			b := body(t, resp)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if !strings.Contains(b, "allowlist") || !strings.Contains(b, "access.allow") {
				t.Errorf("page does not explain the allowlist:\n%s", b)
			}
			if strings.Contains(b, "127.0.0.1") {
				t.Errorf("page shows the allowlist:\n%s", b)
			}
			if got := e.up.requests.Load(); got != 0 {
				t.Errorf("upstream got %d requests, want 0", got)
			}
		})
	}
}

// login127 logs in from 127.0.0.1, for gateways that admit only that.
func (e *testEnv) login127(t *testing.T) string {
	t.Helper()
	r := loginRequest(testPassword, "/")
	r.RemoteAddr = "127.0.0.1:40000"
	resp := e.serve(r)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	c := resp.Cookies()
	if len(c) != 1 {
		t.Fatalf("login: cookies %q", resp.Header["Set-Cookie"])
	}
	return c[0].Name + "=" + c[0].Value
}

func TestAllowlistDefaultIsLoopback(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Allow = nil })
	tests := []struct {
		remote string
		want   int
	}{
		{remote: "127.0.0.1:1", want: http.StatusUnauthorized},
		{remote: "127.9.9.9:1", want: http.StatusUnauthorized},
		{remote: "[::1]:1", want: http.StatusUnauthorized},
		{remote: "[::ffff:127.0.0.1]:1", want: http.StatusUnauthorized},
		{remote: "192.0.2.1:1", want: http.StatusForbidden},
		{remote: "[2001:db8::1]:1", want: http.StatusForbidden},
		{remote: "@", want: http.StatusForbidden}, // a Unix socket peer has no address
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
			r.RemoteAddr = tt.remote
			if got := e.serve(r).StatusCode; got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
}

// Behaviour 1 over a real connection: the peer address is the socket's.
func TestAllowlistRealConnection(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	srv := httptest.NewServer(e.g)
	t.Cleanup(srv.Close)

	clientFrom := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		tr := &http.Transport{DialContext: d.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	get := func(c *http.Client, path string, header http.Header) *http.Response {
		t.Helper()
		r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			r.Header[k] = v
		}
		resp, err := c.Do(r)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skip("127.0.0.2 is not a local address here (on macOS: sudo ifconfig lo0 alias 127.0.0.2)")
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	other := clientFrom("127.0.0.2")
	html := http.Header{"Accept": {"text/html"}, "X-Forwarded-For": {"127.0.0.1"}}
	for _, path := range []string{"/spinbook/login", "/lab", "/api/contents"} {
		if resp := get(other, path, html); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s from 127.0.0.2: status %d, want 403", path, resp.StatusCode)
		}
	}
	ws := srv.Listener.Addr().String()
	_, resp, err := websocket.Dial(t.Context(), "ws://"+ws+"/api/kernels/k/channels", &websocket.DialOptions{
		HTTPClient: other,
		HTTPHeader: http.Header{"Origin": {"http://" + ws}},
	})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("websocket from 127.0.0.2: err %v, response %v; want 403", err, resp)
	}
	if got := e.up.requests.Load(); got != 0 {
		t.Errorf("upstream got %d requests, want 0", got)
	}

	// The same requests from 127.0.0.1 get past the allowlist.
	if resp := get(clientFrom("127.0.0.1"), "/lab", html); resp.StatusCode != http.StatusFound {
		t.Errorf("GET /lab from 127.0.0.1: status %d, want 302 to login", resp.StatusCode)
	}
}

// Behaviour 1: X-Forwarded-For only from trusted proxies.
func TestClientIP(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	tests := []struct {
		name   string
		remote string
		header http.Header
		want   string
	}{
		{name: "peer", remote: "192.0.2.1:1234", want: "192.0.2.1"},
		{name: "untrusted peer, forwarding headers ignored", remote: "203.0.113.9:1", header: http.Header{
			"X-Forwarded-For": {"127.0.0.1"},
			"X-Real-Ip":       {"127.0.0.1"},
			"Forwarded":       {"for=127.0.0.1"},
			"X_forwarded_for": {"127.0.0.1"},
			"True-Client-Ip":  {"127.0.0.1"},
		}, want: "203.0.113.9"},
		{name: "trusted peer without header", remote: "10.1.2.3:1", want: "10.1.2.3"},
		{name: "trusted peer, one hop", remote: "10.1.2.3:1", header: http.Header{"X-Forwarded-For": {"192.0.2.7"}}, want: "192.0.2.7"},
		{name: "trusted peer, right-most untrusted", remote: "10.1.2.3:1",
			header: http.Header{"X-Forwarded-For": {"127.0.0.1, 192.0.2.7, 10.9.9.9"}}, want: "192.0.2.7"},
		{name: "right-most across header lines", remote: "10.1.2.3:1",
			header: http.Header{"X-Forwarded-For": {"127.0.0.1, 198.51.100.1", "192.0.2.7"}}, want: "192.0.2.7"},
		{name: "trusted peer ignores X-Real-IP", remote: "10.1.2.3:1",
			header: http.Header{"X-Real-Ip": {"192.0.2.7"}}, want: "10.1.2.3"},
		{name: "trusted IPv6 peer", remote: "[::1]:1", header: http.Header{"X-Forwarded-For": {"2001:db8::5"}}, want: "2001:db8::5"},
		{name: "mapped peer", remote: "[::ffff:192.0.2.1]:1", want: "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header[k] = v
			}
			if got := e.g.ClientIP(r); got.String() != tt.want {
				t.Errorf("ClientIP = %v, want %s", got, tt.want)
			}
		})
	}
}

// Behaviour 1 end to end: a trusted proxy's client is the one admitted
// and the one Jupyter hears about.
func TestTrustedProxy(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	cookie := e.login(t)
	tests := []struct {
		name       string
		remote     string
		forwarded  string
		wantStatus int
		wantClient string // X-Forwarded-For upstream
	}{
		{name: "allowed client behind proxy", remote: "10.0.0.1:1", forwarded: "203.0.113.66, 192.0.2.7", wantStatus: http.StatusOK, wantClient: "192.0.2.7"},
		{name: "refused client behind proxy", remote: "10.0.0.1:1", forwarded: "192.0.2.7, 203.0.113.66", wantStatus: http.StatusForbidden},
		{name: "untrusted peer claiming an allowed client", remote: "203.0.113.66:1", forwarded: "192.0.2.7", wantStatus: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.requests.Load()
			r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Forwarded-For", tt.forwarded)
			r.Header.Set("Cookie", cookie)
			resp := e.serve(r)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				if got := e.up.requests.Load() - before; got != 0 {
					t.Errorf("upstream got %d requests, want 0", got)
				}
				return
			}
			if diff := cmp.Diff([]string{tt.wantClient}, e.up.lastRequest(t).Header["X-Forwarded-For"]); diff != "" {
				t.Errorf("upstream X-Forwarded-For (-want +got):\n%s", diff)
			}
		})
	}
}

// Behaviour 2: login.
func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
		wantBody   string // substring
		wantCookie bool
		wantNext   string // Location, for 303
		wantChecks int64  // CheckPassword calls
	}{
		{
			name:       "right password",
			request:    func() *http.Request { return loginRequest(testPassword, "/lab/tree/a.ipynb?x=1") },
			wantStatus: http.StatusSeeOther, wantCookie: true, wantNext: "/lab/tree/a.ipynb?x=1", wantChecks: 1,
		},
		{
			name:       "right password, foreign next",
			request:    func() *http.Request { return loginRequest(testPassword, "https://evil.example/") },
			wantStatus: http.StatusSeeOther, wantCookie: true, wantNext: "/", wantChecks: 1,
		},
		{
			name:       "wrong password",
			request:    func() *http.Request { return loginRequest("hunter2", "/lab") },
			wantStatus: http.StatusUnauthorized, wantBody: "Wrong password.", wantChecks: 1,
		},
		{
			name:       "empty password is wrong without a check",
			request:    func() *http.Request { return loginRequest("", "/lab") },
			wantStatus: http.StatusUnauthorized, wantBody: "Wrong password.",
		},
		{
			name: "password in the query does not count",
			request: func() *http.Request {
				r := loginRequest("", "/")
				r.URL.RawQuery = "password=" + url.QueryEscape(testPassword)
				return r
			},
			wantStatus: http.StatusUnauthorized, wantBody: "Wrong password.",
		},
		{
			name: "body too large",
			request: func() *http.Request {
				return loginRequest(testPassword+strings.Repeat("x", 5000), "/")
			},
			wantStatus: http.StatusRequestEntityTooLarge,
		},
		{
			name: "GET is the form, not a login",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/spinbook/login?password="+url.QueryEscape(testPassword), nil)
			},
			wantStatus: http.StatusOK, wantBody: `type="password"`,
		},
		{
			name: "PUT not allowed",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodPut, "/spinbook/login", nil)
			},
			wantStatus: http.StatusMethodNotAllowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			resp := e.serve(tt.request())
			b := body(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tt.wantStatus, b)
			}
			if !strings.Contains(b, tt.wantBody) {
				t.Errorf("body does not contain %q:\n%s", tt.wantBody, b)
			}
			if got := len(resp.Cookies()) == 1; got != tt.wantCookie {
				t.Errorf("session cookie set = %v, want %v (%q)", got, tt.wantCookie, resp.Header["Set-Cookie"])
			}
			if tt.wantNext != "" {
				if got := resp.Header.Get("Location"); got != tt.wantNext {
					t.Errorf("Location %q, want %q", got, tt.wantNext)
				}
			}
			if got := e.checks.Load(); got != tt.wantChecks {
				t.Errorf("CheckPassword called %d times, want %d", got, tt.wantChecks)
			}
			if got, want := e.g.Sessions(), btoi(tt.wantCookie); got != want {
				t.Errorf("Sessions() = %d, want %d", got, want)
			}
			if e.up.requests.Load() != 0 {
				t.Error("a login request reached upstream")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Behaviour 2: a new login replaces the client's old session.
func TestLoginReplacesSession(t *testing.T) {
	e := newEnv(t, nil)
	old := e.login(t)
	r := loginRequest(testPassword, "/")
	r.Header.Set("Cookie", old)
	resp := e.serve(r)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("second login: status %d, cookies %q", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	if newCookie := resp.Cookies()[0]; newCookie.Name+"="+newCookie.Value == old {
		t.Fatal("second login kept the session id")
	}
	if got := apiStatus(e, old); got != http.StatusUnauthorized {
		t.Errorf("old session: status %d, want 401", got)
	}
	if got := e.g.Sessions(); got != 1 {
		t.Errorf("Sessions() = %d, want 1", got)
	}
}

// apiStatus is the status of an API request carrying cookie.
func apiStatus(e *testEnv, cookie string) int {
	r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return e.serve(r).StatusCode
}

// Behaviour 11: the login page.
func TestLoginPage(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		want    []string
		notWant []string
	}{
		{
			name:   "form",
			target: "/spinbook/login?next=%2Flab%3Fa%3D1%26b%3D2",
			want: []string{
				"<title>spinbook — alice</title>",
				`<form method="post" action="/spinbook/login">`,
				`type="password"`, `name="password"`, "autofocus",
				`<input type="hidden" name="next" value="/lab?a=1&amp;b=2">`,
				`<button type="submit">`,
				"<b>alice</b>",
			},
			notWant: []string{"<script", "http://", "https://", "Wrong password", "logged out"},
		},
		{
			name:   "logged out",
			target: "/spinbook/login?logged_out=1",
			want:   []string{"You are logged out.", `name="next" value="/"`},
		},
		{
			name:    "unsafe next is replaced",
			target:  "/spinbook/login?next=" + url.QueryEscape(`//evil.example/"><script>`),
			want:    []string{`name="next" value="/"`},
			notWant: []string{"evil", "<script>"},
		},
		{
			name:   "quote in next is escaped",
			target: "/spinbook/login?next=" + url.QueryEscape(`/a'b`),
			want:   []string{`value="/a&#39;b"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			resp := e.serve(httptest.NewRequest(http.MethodGet, tt.target, nil))
			b := body(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, s := range tt.want {
				if !strings.Contains(b, s) {
					t.Errorf("page lacks %q:\n%s", s, b)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(b, s) {
					t.Errorf("page contains %q:\n%s", s, b)
				}
			}
		})
	}
}

func TestLoginPageWithSessionGoesOn(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	r := httptest.NewRequest(http.MethodGet, "/spinbook/login?next=%2Flab", nil)
	r.Header.Set("Cookie", cookie)
	resp := e.serve(r)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/lab" {
		t.Errorf("status %d, Location %q; want 303 to /lab", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Behaviour 2: cookie name and attributes.
func TestSessionCookie(t *testing.T) {
	tests := []struct {
		name       string
		secure     bool
		wantName   string
		wantSecure bool
	}{
		{name: "plain http", wantName: "spinbook-alice"},
		{name: "behind tls", secure: true, wantName: "__Host-spinbook-alice", wantSecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Secure = tt.secure })
			resp := e.serve(loginRequest(testPassword, "/"))
			cookies := resp.Cookies()
			if len(cookies) != 1 {
				t.Fatalf("Set-Cookie %q, want one cookie", resp.Header["Set-Cookie"])
			}
			c := cookies[0]
			got := struct {
				Name     string
				Path     string
				Domain   string
				Secure   bool
				HttpOnly bool
				SameSite http.SameSite
				MaxAge   int
				ValueLen int
			}{c.Name, c.Path, c.Domain, c.Secure, c.HttpOnly, c.SameSite, c.MaxAge, len(c.Value)}
			want := got
			want.Name, want.Path, want.Domain = tt.wantName, "/", ""
			want.Secure, want.HttpOnly, want.SameSite, want.MaxAge = tt.wantSecure, true, http.SameSiteLaxMode, 0
			want.ValueLen = 43 // 32 bytes, unpadded base64url
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cookie (-want +got):\n%s", diff)
			}
			if got := apiStatus(e, c.Name+"="+c.Value); got != http.StatusOK {
				t.Errorf("request with the new cookie: status %d, want 200", got)
			}
		})
	}
}

// Behaviour 2: a session of one server is no session on another.
func TestSessionOfAnotherServerRefused(t *testing.T) {
	a := newEnv(t, nil)
	b := newEnv(t, func(o *Options) { o.User = "bob" })
	aliceCookie := a.login(t)
	_, aliceID, _ := strings.Cut(aliceCookie, "=")

	tests := []struct {
		name   string
		cookie string
	}{
		{name: "alice's cookie as is", cookie: aliceCookie},
		{name: "alice's id under bob's name", cookie: "spinbook-bob=" + aliceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apiStatus(b, tt.cookie); got != http.StatusUnauthorized {
				t.Errorf("bob's gateway: status %d, want 401", got)
			}
			if got := b.up.requests.Load(); got != 0 {
				t.Errorf("bob's upstream got %d requests, want 0", got)
			}
		})
	}
	if got := apiStatus(a, aliceCookie); got != http.StatusOK {
		t.Errorf("alice's gateway: status %d, want 200", got)
	}
}

// Behaviour 3: without a session nothing reaches Jupyter.
func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, nil)
	expired := e.login(t)
	e.clock.Advance(DefaultSessionTTL + time.Second)

	cookies := []struct{ name, value string }{
		{"no cookie", ""},
		{"unknown session", "spinbook-alice=" + strings.Repeat("A", 43)},
		{"expired session", expired},
		{"empty value", "spinbook-alice="},
	}
	requests := []struct {
		name     string
		method   string
		target   string
		header   http.Header
		wantCode int
		wantLoc  string
	}{
		{name: "browser navigation", method: http.MethodGet, target: "/lab/tree/a%20b.ipynb?x=1&y=%2F",
			header:   http.Header{"Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}},
			wantCode: http.StatusFound, wantLoc: "/spinbook/login?next=" + url.QueryEscape("/lab/tree/a%20b.ipynb?x=1&y=%2F")},
		{name: "HEAD navigation", method: http.MethodHead, target: "/lab",
			header: http.Header{"Accept": {"text/html"}}, wantCode: http.StatusFound, wantLoc: "/spinbook/login?next=%2Flab"},
		{name: "api", method: http.MethodGet, target: "/api/contents",
			header: http.Header{"Accept": {"application/json"}}, wantCode: http.StatusUnauthorized},
		{name: "no accept", method: http.MethodGet, target: "/", wantCode: http.StatusUnauthorized},
		{name: "post", method: http.MethodPost, target: "/api/kernels",
			header: http.Header{"Accept": {"text/html"}}, wantCode: http.StatusUnauthorized},
		{name: "websocket", method: http.MethodGet, target: "/api/kernels/k/channels", header: http.Header{
			"Accept":     {"text/html"},
			"Connection": {"Upgrade"},
			"Upgrade":    {"websocket"},
			"Origin":     {"http://example.com"},
		}, wantCode: http.StatusUnauthorized},
	}
	for _, c := range cookies {
		for _, tt := range requests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				r := httptest.NewRequest(tt.method, tt.target, nil)
				for k, v := range tt.header {
					r.Header[k] = v
				}
				if c.value != "" {
					r.Header.Set("Cookie", c.value)
				}
				resp := e.serve(r)
				b := body(t, resp)
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
				if got := resp.Header.Get("Location"); got != tt.wantLoc {
					t.Errorf("Location %q, want %q", got, tt.wantLoc)
				}
				if tt.wantCode == http.StatusUnauthorized {
					if b != `{"message":"login required"}`+"\n" {
						t.Errorf("body %q", b)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q", ct)
					}
				}
				if got := e.up.requests.Load(); got != 0 {
					t.Errorf("upstream got %d requests, want 0", got)
				}
			})
		}
	}
}

// Behaviour 2: sessions slide, and end after SessionTTL unused.
func TestSessionExpiry(t *testing.T) {
	const ttl = time.Hour
	e := newEnv(t, func(o *Options) { o.SessionTTL = ttl })
	cookie := e.login(t)
	steps := []struct {
		advance time.Duration
		want    int
	}{
		{advance: ttl - time.Minute, want: http.StatusOK},
		{advance: ttl - time.Minute, want: http.StatusOK}, // the last request extended it
		{advance: ttl, want: http.StatusUnauthorized},
		{advance: 0, want: http.StatusUnauthorized},
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		if got := apiStatus(e, cookie); got != s.want {
			t.Fatalf("step %d (+%v): status %d, want %d", i, s.advance, got, s.want)
		}
	}
	if got := e.g.Sessions(); got != 0 {
		t.Errorf("Sessions() = %d, want 0", got)
	}
}

// Behaviour 2: logout, a POST from our page (where Jupyter's button leads,
// see TestLogoutGET) or to Jupyter's path, ends the session on the server.
func TestLogout(t *testing.T) {
	tests := []struct {
		method, path string
	}{
		{http.MethodPost, "/spinbook/logout"},
		{http.MethodPost, "/logout"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e := newEnv(t, nil)
			cookie := e.login(t)
			other := e.login(t)

			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Header.Set("Cookie", cookie)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			resp := e.serve(r)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/spinbook/login?logged_out=1" {
				t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			cleared := resp.Cookies()
			if len(cleared) != 1 || cleared[0].Name != "spinbook-alice" || cleared[0].MaxAge >= 0 || cleared[0].Value != "" {
				t.Errorf("Set-Cookie %q, want the session cookie cleared", resp.Header["Set-Cookie"])
			}
			// A client that kept the old cookie is refused.
			if got := apiStatus(e, cookie); got != http.StatusUnauthorized {
				t.Errorf("replayed cookie: status %d, want 401", got)
			}
			if got := apiStatus(e, other); got != http.StatusOK {
				t.Errorf("another session: status %d, want 200", got)
			}
			if got := e.g.Sessions(); got != 1 {
				t.Errorf("Sessions() = %d, want 1", got)
			}
			if got := e.up.requests.Load(); got != 1 {
				t.Errorf("upstream got %d requests, want only the other session's", got)
			}
		})
	}
}

func TestLogoutGETOnOwnPathNotAllowed(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	r := httptest.NewRequest(http.MethodGet, "/spinbook/logout", nil)
	r.Header.Set("Cookie", cookie)
	if got := e.serve(r).StatusCode; got != http.StatusMethodNotAllowed {
		t.Errorf("status %d, want 405", got)
	}
	if got := e.g.Sessions(); got != 1 {
		t.Errorf("Sessions() = %d, want 1", got)
	}
}

// Behaviour 2: login attempts are rate limited per client.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	attempt := func(remote, password string) *http.Response {
		r := loginRequest(password, "/lab")
		r.RemoteAddr = remote
		return e.serve(r)
	}
	const attacker, other = "192.0.2.1:1000", "192.0.2.2:1000"
	for i := range clientBurst {
		if got := attempt(attacker, "guess"+strconv.Itoa(i)).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401", i+1, got)
		}
	}
	checks := e.checks.Load()

	resp := attempt(attacker, "guess")
	b := body(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("attempt %d: status %d, want 429", clientBurst+1, resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q, want 10", got)
	}
	if !strings.Contains(b, "Wait 10 seconds") || !strings.Contains(b, `value="/lab"`) {
		t.Errorf("429 page does not say to wait, or lost next:\n%s", b)
	}
	if got := attempt(attacker, testPassword).StatusCode; got != http.StatusTooManyRequests {
		t.Errorf("right password while limited: status %d, want 429", got)
	}
	if got := e.checks.Load(); got != checks {
		t.Errorf("CheckPassword called %d times while limited", got-checks)
	}

	if got := attempt(other, testPassword).StatusCode; got != http.StatusSeeOther {
		t.Errorf("another client: status %d, want 303", got)
	}

	e.clock.Advance(clientInterval)
	if got := attempt(attacker, "guess").StatusCode; got != http.StatusUnauthorized {
		t.Errorf("after %v: status %d, want 401", clientInterval, got)
	}
	if got := attempt(attacker, "guess").StatusCode; got != http.StatusTooManyRequests {
		t.Errorf("second attempt after %v: status %d, want 429", clientInterval, got)
	}
}

func TestLoginRateLimitIPv6ByPrefix(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Allow = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")} })
	for i := range clientBurst + 1 {
		r := loginRequest("guess", "/")
		r.RemoteAddr = fmt.Sprintf("[2001:db8:0:1::%x]:1", i+1) // one /64, many addresses
		want := http.StatusUnauthorized
		if i == clientBurst {
			want = http.StatusTooManyRequests
		}
		if got := e.serve(r).StatusCode; got != want {
			t.Fatalf("attempt %d: status %d, want %d", i+1, got, want)
		}
	}
}

func TestLoginRateLimitGlobal(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Allow = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")} })
	for i := range globalRate + 1 {
		r := loginRequest("guess", "/")
		r.RemoteAddr = fmt.Sprintf("198.18.0.%d:1", i+1) // a different client each time
		resp := e.serve(r)
		want := http.StatusUnauthorized
		if i == globalRate {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("attempt %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
		if want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
		}
	}
}

func TestLoginLimiterForgetsIdleClients(t *testing.T) {
	l := newLoginLimiter()
	now := newClock().Now()
	for i := range 100 {
		now = now.Add(time.Second / globalRate) // within the global limit
		l.allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now)
	}
	if got := l.size(); got != 100 {
		t.Fatalf("size %d, want 100", got)
	}
	now = now.Add(pruneEvery + clientInterval)
	l.allow(netip.MustParseAddr("198.51.100.1"), now)
	if got := l.size(); got != 1 {
		t.Errorf("size after idle time %d, want 1", got)
	}
}

// Behaviour 2: at most two password checks run at once.
func TestPasswordChecksBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inside atomic.Int32
		release := make(chan struct{})
		g, err := New(Options{
			Upstream: &url.URL{Scheme: "http", Host: "jupyter"},
			Allow:    []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
			Hosts:    []string{"example.com"},
			CheckPassword: func(string) bool {
				inside.Add(1)
				<-release
				inside.Add(-1)
				return true
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		const logins = 5
		var wg sync.WaitGroup
		for i := range logins {
			wg.Go(func() {
				r := loginRequest(testPassword, "/")
				r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", i+1)
				g.ServeHTTP(httptest.NewRecorder(), r)
			})
		}
		for waiting := logins; waiting > 0; waiting-- {
			synctest.Wait()
			if got, want := inside.Load(), int32(min(waiting, 2)); got != want {
				t.Fatalf("%d logins waiting: %d checks running, want %d", waiting, got, want)
			}
			release <- struct{}{}
		}
		wg.Wait()
		if got := g.Sessions(); got != logins {
			t.Errorf("Sessions() = %d, want %d", got, logins)
		}
	})
}

// Behaviour 5: cross-site state changes are refused, login included.
func TestCrossSiteRefused(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	checks := e.checks.Load()

	tests := []struct {
		name   string
		method string
		target string
		header http.Header
		want   int
	}{
		{name: "login, cross-site", method: http.MethodPost, target: "/spinbook/login",
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, want: http.StatusForbidden},
		{name: "login, same-site (another port)", method: http.MethodPost, target: "/spinbook/login",
			header: http.Header{"Sec-Fetch-Site": {"same-site"}}, want: http.StatusForbidden},
		{name: "login, foreign Origin", method: http.MethodPost, target: "/spinbook/login",
			header: http.Header{"Origin": {"http://evil.example"}}, want: http.StatusForbidden},
		{name: "api post, cross-site", method: http.MethodPost, target: "/api/kernels",
			header: http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"cross-site"}}, want: http.StatusForbidden},
		{name: "api put, foreign Origin", method: http.MethodPut, target: "/api/contents/a.ipynb",
			header: http.Header{"Cookie": {cookie}, "Origin": {"http://evil.example"}}, want: http.StatusForbidden},
		{name: "api delete, Origin of another port", method: http.MethodDelete, target: "/api/contents/a.ipynb",
			header: http.Header{"Cookie": {cookie}, "Origin": {"http://example.com:8888"}}, want: http.StatusForbidden},
		{name: "logout, cross-site", method: http.MethodPost, target: "/logout",
			header: http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"cross-site"}}, want: http.StatusForbidden},
		{name: "api post, same-origin", method: http.MethodPost, target: "/api/kernels",
			header: http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"same-origin"}}, want: http.StatusOK},
		{name: "api post, own Origin", method: http.MethodPost, target: "/api/kernels",
			header: http.Header{"Cookie": {cookie}, "Origin": {"http://example.com"}}, want: http.StatusOK},
		{name: "api post, not a browser", method: http.MethodPost, target: "/api/kernels",
			header: http.Header{"Cookie": {cookie}}, want: http.StatusOK},
		{name: "api get, cross-site (safe method)", method: http.MethodGet, target: "/api/kernels",
			header: http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"cross-site"}}, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.requests.Load()
			var r *http.Request
			if tt.target == "/spinbook/login" {
				r = loginRequest(testPassword, "/")
				r.Header.Del("Sec-Fetch-Site")
			} else {
				r = httptest.NewRequest(tt.method, tt.target, strings.NewReader("{}"))
			}
			for k, v := range tt.header {
				r.Header[k] = v
			}
			resp := e.serve(r)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			wantUp := int64(btoi(tt.want == http.StatusOK))
			if got := e.up.requests.Load() - before; got != wantUp {
				t.Errorf("upstream got %d requests, want %d", got, wantUp)
			}
		})
	}
	if got := e.checks.Load(); got != checks {
		t.Errorf("CheckPassword called %d times for refused logins", got-checks)
	}
	if got := e.g.Sessions(); got != 1 {
		t.Errorf("Sessions() = %d, want 1 (cross-site logout must not count)", got)
	}
}

// Behaviour 6 and 7: a websocket works through the gateway only from the
// server's own origin.
func TestWebsocket(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.g)
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String() // 127.0.0.1:port
	_, port, _ := net.SplitHostPort(host)
	portNum, _ := strconv.Atoi(port)
	wsURL := "ws://" + host + "/api/kernels/k/channels?session_id=s"
	cookie := e.login(t)

	t.Run("own origin echoes", func(t *testing.T) {
		before := e.up.requests.Load()
		c, _, err := websocket.Dial(t.Context(), wsURL, &websocket.DialOptions{
			HTTPHeader: http.Header{"Origin": {"http://" + host}, "Cookie": {cookie}},
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		for _, msg := range []string{"hello", `{"header":{"msg_type":"execute_request"}}`} {
			if err := c.Write(t.Context(), websocket.MessageText, []byte(msg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, got, err := c.Read(t.Context())
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != msg {
				t.Errorf("echo %q, want %q", got, msg)
			}
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
		if got := e.up.requests.Load() - before; got != 1 {
			t.Errorf("upstream got %d requests, want 1", got)
		}
		up := e.up.lastRequest(t)
		if got := up.Header.Get("Authorization"); got != "token "+testToken {
			t.Errorf("upstream Authorization %q", got)
		}
		if got := up.Header.Get("Cookie"); got != "" {
			t.Errorf("upstream Cookie %q, want none", got)
		}
	})

	refused := []struct {
		name    string
		origins []string
		cookie  string
		want    int
	}{
		{name: "foreign", origins: []string{"http://evil.example"}, want: http.StatusForbidden},
		{name: "suffix trick", origins: []string{"http://evil.com." + host}, want: http.StatusForbidden},
		{name: "prefix trick", origins: []string{"http://" + host + ".evil.com"}, want: http.StatusForbidden},
		{name: "another port", origins: []string{"http://127.0.0.1:" + strconv.Itoa(portNum+1)}, want: http.StatusForbidden},
		{name: "localhost alias", origins: []string{"http://localhost:" + port}, want: http.StatusForbidden},
		{name: "https scheme", origins: []string{"https://" + host}, want: http.StatusForbidden},
		{name: "with path", origins: []string{"http://" + host + "/"}, want: http.StatusForbidden},
		{name: "with user", origins: []string{"http://x@" + host}, want: http.StatusForbidden},
		{name: "null", origins: []string{"null"}, want: http.StatusForbidden},
		{name: "missing", want: http.StatusForbidden},
		{name: "two origins", origins: []string{"http://" + host, "http://evil.example"}, want: http.StatusForbidden},
		{name: "own origin without session", origins: []string{"http://" + host}, cookie: "-", want: http.StatusUnauthorized},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.requests.Load()
			h := http.Header{"Cookie": {cookie}}
			if tt.cookie == "-" {
				h.Del("Cookie")
			}
			if tt.origins != nil {
				h["Origin"] = tt.origins
			}
			c, resp, err := websocket.Dial(t.Context(), wsURL, &websocket.DialOptions{HTTPHeader: h})
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("dial: %v, response %v; want status %d", err, resp, tt.want)
			}
			if got := e.up.requests.Load() - before; got != 0 {
				t.Errorf("upstream got %d requests, want 0", got)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
		tls    bool
		host   string
		origin []string
		want   bool
	}{
		{name: "http", host: "nb.example:8800", origin: []string{"http://nb.example:8800"}, want: true},
		{name: "host case", host: "NB.example:8800", origin: []string{"http://nb.EXAMPLE:8800"}, want: true},
		{name: "scheme case", host: "nb.example", origin: []string{"HTTP://nb.example"}, want: true},
		{name: "secure wants https", secure: true, host: "nb.example", origin: []string{"https://nb.example"}, want: true},
		{name: "secure refuses http", secure: true, host: "nb.example", origin: []string{"http://nb.example"}},
		{name: "tls wants https", tls: true, host: "nb.example", origin: []string{"https://nb.example"}, want: true},
		{name: "plain refuses https", host: "nb.example", origin: []string{"https://nb.example"}},
		{name: "suffix", host: "127.0.0.1:8800", origin: []string{"http://evil.com.127.0.0.1:8800"}},
		{name: "prefix", host: "127.0.0.1:8800", origin: []string{"http://127.0.0.1:8800.evil.com"}},
		{name: "port missing", host: "127.0.0.1:8800", origin: []string{"http://127.0.0.1"}},
		{name: "null", host: "nb.example", origin: []string{"null"}},
		{name: "empty", host: "nb.example", origin: []string{""}},
		{name: "missing", host: "nb.example"},
		{name: "query", host: "nb.example", origin: []string{"http://nb.example?"}},
		{name: "fragment", host: "nb.example", origin: []string{"http://nb.example#x"}},
		{name: "opaque", host: "nb.example", origin: []string{"http:nb.example"}},
		{name: "file", host: "nb.example", origin: []string{"file://nb.example"}},
		{name: "backslash", host: "nb.example", origin: []string{`http://nb.example\@evil.example`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{secure: tt.secure}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
			if tt.tls {
				r = httptest.NewRequest(http.MethodGet, "https://"+tt.host+"/", nil)
			}
			if tt.origin != nil {
				r.Header["Origin"] = tt.origin
			}
			if got := g.sameOrigin(r); got != tt.want {
				t.Errorf("sameOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}

// Behaviour 4 end to end: whatever next says, the redirect after login
// stays on this origin.
func TestLoginRedirectStaysOnOrigin(t *testing.T) {
	e := newEnv(t, nil)
	vectors := []string{
		"//evil.example", "///x", `\\x`, `/\x`, "https:x", "https://evil.example", "/\t/evil",
		"/%2f/evil", "/%2f%2fevil", "%2F%2Fevil", "/%5cevil", "javascript:alert(1)", "/\r\nLocation: //evil",
		"/.//evil", "/%252f%252fevil", " //evil", "/lab",
	}
	for i, next := range vectors {
		t.Run(strconv.Quote(next), func(t *testing.T) {
			r := loginRequest(testPassword, next)
			r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", 10+i)
			e.clock.Advance(time.Second) // stay under the global login rate
			resp := e.serve(r)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			if err := checkLocalTarget(loc); err != nil {
				t.Fatalf("Location %q: %v", loc, err)
			}
		})
	}
}

// Behaviour 3 and 4 together: an odd path keeps its next through login,
// but the redirect afterwards does not leave the origin.
func TestLoginRoundTripOddPath(t *testing.T) {
	e := newEnv(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.URL = &url.URL{Path: "//evil.example/x"}
	r.Header.Set("Accept", "text/html")
	resp := e.serve(r)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Path != loginPath {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	next := loc.Query().Get("next")
	if next != "//evil.example/x" {
		t.Errorf("next %q", next)
	}
	resp = e.serve(loginRequest(testPassword, next))
	if got := resp.Header.Get("Location"); got != "/" {
		t.Errorf("after login: Location %q, want /", got)
	}
}

// Behaviour 7: what Jupyter receives, and what the client does not.
func TestProxyRewritesRequest(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	r := httptest.NewRequest(http.MethodGet, "/api/contents/nb.ipynb?content=1&type=notebook", nil)
	r.RemoteAddr = "192.0.2.9:5555"
	r.Header["Authorization"] = []string{"Bearer client-credential"}
	r.Header["Cookie"] = []string{cookie + "; _xsrf=2|abc|def; spinbook-bob=bobs-session", "__Host-spinbook-carol=carols; theme=dark"}
	r.Header["X-Forwarded-For"] = []string{"203.0.113.66"}
	r.Header["X-Forwarded-Host"] = []string{"evil.example"}
	r.Header["X-Forwarded-Proto"] = []string{"https"}
	r.Header["X-Forwarded-Prefix"] = []string{"/evil"}
	r.Header["X_Forwarded_For"] = []string{"203.0.113.66"}
	r.Header["X_forwarded_host"] = []string{"evil.example"}
	r.Header["X-Real-Ip"] = []string{"203.0.113.66"}
	r.Header["X_Real_IP"] = []string{"203.0.113.66"}
	r.Header["Forwarded"] = []string{"for=203.0.113.66;host=evil.example"}
	r.Header["X-Scheme"] = []string{"https"}
	r.Header["X-Custom"] = []string{"kept"}

	resp := e.serve(r)
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || b != "hello from jupyter" {
		t.Fatalf("status %d, body %q", resp.StatusCode, b)
	}

	up := e.up.lastRequest(t)
	got := map[string]any{
		"host":  up.Host,
		"path":  up.URL.Path,
		"query": up.URL.RawQuery,
	}
	forwarding := http.Header{}
	for k, v := range up.Header {
		switch norm := strings.ReplaceAll(strings.ToLower(k), "_", "-"); {
		case norm == "authorization", norm == "cookie", norm == "x-custom",
			strings.HasPrefix(norm, "x-forwarded"), norm == "forwarded", norm == "x-real-ip", norm == "x-scheme":
			forwarding[k] = v
		}
	}
	got["header"] = forwarding
	want := map[string]any{
		"host":  "example.com",
		"path":  "/api/contents/nb.ipynb",
		"query": "content=1&type=notebook",
		"header": http.Header{
			"Authorization":     {"token " + testToken},
			"Cookie":            {"_xsrf=2|abc|def; theme=dark"},
			"X-Custom":          {"kept"},
			"X-Forwarded-For":   {"192.0.2.9"},
			"X-Forwarded-Host":  {"example.com"},
			"X-Forwarded-Proto": {"http"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upstream request (-want +got):\n%s", diff)
	}
	if strings.Contains(fmt.Sprint(resp.Header), testToken) || strings.Contains(b, testToken) {
		t.Error("the upstream token reached the client")
	}
}

func TestProxyDropsSpinbookCookiesFromJupyter(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	r := httptest.NewRequest(http.MethodGet, "/set-cookie", nil)
	r.Header.Set("Cookie", cookie)
	resp := e.serve(r)
	if diff := cmp.Diff([]string{"_xsrf=fresh; Path=/"}, resp.Header["Set-Cookie"]); diff != "" {
		t.Errorf("Set-Cookie (-want +got):\n%s", diff)
	}
}

// Behaviour 7: Jupyter down is a 502 page, logged without secrets.
func TestUpstreamDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL)
	dead.Close()
	e := newEnv(t, func(o *Options) { o.Upstream = deadURL })
	cookie := e.login(t)

	r := httptest.NewRequest(http.MethodGet, "/api/contents?token=query-secret-1", nil)
	r.Header.Set("Cookie", cookie)
	resp := e.serve(r)
	b := body(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(b, "Jupyter is not answering (it may be starting or busy)") {
		t.Errorf("page:\n%s", b)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "jupyter not answering") {
		t.Errorf("no log line for the error:\n%s", logs)
	}
	_, id, _ := strings.Cut(cookie, "=")
	for _, secret := range []string{"query-secret-1", id, testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

// Behaviour 8: the gateway's own responses carry security headers.
func TestSecurityHeaders(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL, _ := url.Parse(dead.URL)
	dead.Close()

	tests := []struct {
		name     string
		request  func(t *testing.T, e *testEnv) *http.Request
		wantCode int
	}{
		{name: "login page", wantCode: http.StatusOK, request: func(*testing.T, *testEnv) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/spinbook/login", nil)
		}},
		{name: "wrong password", wantCode: http.StatusUnauthorized, request: func(*testing.T, *testEnv) *http.Request {
			return loginRequest("nope", "/")
		}},
		{name: "login redirect", wantCode: http.StatusSeeOther, request: func(*testing.T, *testEnv) *http.Request {
			return loginRequest(testPassword, "/")
		}},
		{name: "not allowed", wantCode: http.StatusForbidden, request: func(*testing.T, *testEnv) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "203.0.113.1:1"
			return r
		}},
		{name: "cross-site", wantCode: http.StatusForbidden, request: func(*testing.T, *testEnv) *http.Request {
			r := loginRequest("x", "/")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			return r
		}},
		{name: "login required (json)", wantCode: http.StatusUnauthorized, request: func(*testing.T, *testEnv) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/api/status", nil)
		}},
		{name: "login required (redirect)", wantCode: http.StatusFound, request: func(*testing.T, *testEnv) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/lab", nil)
			r.Header.Set("Accept", "text/html")
			return r
		}},
		{name: "own 404", wantCode: http.StatusNotFound, request: func(*testing.T, *testEnv) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/spinbook/other", nil)
		}},
		{name: "logout", wantCode: http.StatusSeeOther, request: func(*testing.T, *testEnv) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			return r
		}},
		{name: "upstream down", wantCode: http.StatusBadGateway, request: func(t *testing.T, e *testEnv) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
			r.Header.Set("Cookie", e.login(t))
			return r
		}},
	}
	want := map[string]string{
		"Content-Security-Policy": pagePolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Upstream = deadURL })
			resp := e.serve(tt.request(t, e))
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			got := map[string]string{}
			for k := range want {
				got[k] = resp.Header.Get(k)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
	if !strings.Contains(pagePolicy, "frame-ancestors 'none'") || !strings.Contains(pagePolicy, "default-src 'none'") {
		t.Errorf("policy %q", pagePolicy)
	}
}

// Behaviour 9: one access log line per request, and no secrets in it.
func TestAccessLogHasNoSecrets(t *testing.T) {
	e := newEnv(t, nil)
	login := loginRequest(testPassword, "/lab?token=next-secret")
	resp := e.serve(login)
	c := resp.Cookies()
	if len(c) != 1 {
		t.Fatalf("login: %d, %q", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	sessionID := c[0].Value

	r := httptest.NewRequest(http.MethodGet, "/api/contents?token=query-secret", nil)
	r.Header.Set("Cookie", c[0].Name+"="+sessionID+"; other=cookie-secret")
	r.Header.Set("Authorization", "token header-secret")
	r.Header.Set("Referer", "http://example.com/lab?token=referer-secret")
	r.Header.Set("User-Agent", "test-agent/1.0")
	if got := e.serve(r).StatusCode; got != http.StatusOK {
		t.Fatalf("status %d", got)
	}

	logs := e.logs.String()
	for _, secret := range []string{testPassword, sessionID, testToken, "next-secret", "query-secret", "cookie-secret", "header-secret", "referer-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{
		`"msg":"request","method":"POST","path":"/spinbook/login","status":303`,
		`"msg":"request","method":"GET","path":"/api/contents","status":200`,
		`"client":"192.0.2.1","user_agent":"test-agent/1.0"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, `"msg":"request"`); n != 2 {
		t.Errorf("%d access log lines, want 2:\n%s", n, logs)
	}
}

// Behaviour 9: a websocket is logged once, as 101, when it ends.
func TestAccessLogWebsocket(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.g)
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	c, _, err := websocket.Dial(t.Context(), "ws://"+host+"/api/events/subscribe", &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"http://" + host}, "Cookie": {e.login(t)}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// The line is written when the proxy lets go of the connection.
	const want = `"path":"/api/events/subscribe","status":101`
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !e.logs.waitFor(ctx, want) {
		t.Fatalf("log lacks %s:\n%s", want, e.logs.String())
	}
}
