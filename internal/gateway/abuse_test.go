package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A route is one kind of request the front door gets from a browser.
type route struct {
	name   string
	method string
	path   string
	ws     bool // a websocket upgrade
}

// routes are the routes of a Jupyter server behind the gateway, and the
// gateway's own.
var routes = []route{
	{name: "login page", method: http.MethodGet, path: "/spinbook/login"},
	{name: "login post", method: http.MethodPost, path: "/spinbook/login"},
	{name: "static", method: http.MethodGet, path: "/static/base/js/main.min.js"},
	{name: "notebook page", method: http.MethodGet, path: "/notebooks/a.ipynb"},
	{name: "REST API", method: http.MethodGet, path: "/api/contents"},
	{name: "REST API write", method: http.MethodPut, path: "/api/contents/a.ipynb"},
	{name: "kernel websocket", method: http.MethodGet, path: "/api/kernels/k1/channels", ws: true},
	{name: "terminal websocket", method: http.MethodGet, path: "/terminals/websocket/1", ws: true},
	{name: "health on the front door", method: http.MethodGet, path: "/healthz"},
}

// request builds r's request as a same-origin browser page would send it,
// from 127.0.0.1, with cookie (if any).
func (rt route) request(cookie string) *http.Request {
	var r *http.Request
	if rt.path == loginPath && rt.method == http.MethodPost {
		r = loginRequest("wrong", "/")
	} else {
		r = httptest.NewRequest(rt.method, rt.path, strings.NewReader("{}"))
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	r.Host = "127.0.0.1:8800"
	r.RemoteAddr = "127.0.0.1:50000"
	if rt.ws {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-Websocket-Version", "13")
		r.Header.Set("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Origin", "http://127.0.0.1:8800")
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}

// own reports whether rt is one of the gateway's own pages.
func (rt route) own() bool { return strings.HasPrefix(rt.path, "/spinbook/") }

// TestAbuse sends every attack to every route and checks the status, and
// that Jupyter (the recording upstream) received nothing.
func TestAbuse(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.3/32")}
	})
	cookie := e.login127(t)

	// Each attack changes a request for a route, or says it does not apply.
	attacks := []struct {
		name   string
		modify func(r *http.Request, rt route) bool
		want   func(rt route) int
	}{
		{
			name:   "not allowlisted",
			modify: func(r *http.Request, _ route) bool { r.RemoteAddr = "127.0.0.2:50000"; return true },
			want:   func(route) int { return http.StatusForbidden },
		},
		{
			name: "spoofed forwarding headers from an untrusted peer",
			modify: func(r *http.Request, _ route) bool {
				r.RemoteAddr = "127.0.0.2:50000"
				r.Header["X-Forwarded-For"] = []string{"127.0.0.1"}
				r.Header["X-Real-Ip"] = []string{"127.0.0.1"}
				r.Header["Forwarded"] = []string{"for=127.0.0.1"}
				r.Header["X_Forwarded_For"] = []string{"127.0.0.1"}
				r.Header["X-Client-Ip"] = []string{"127.0.0.1"}
				r.Header["True-Client-Ip"] = []string{"127.0.0.1"}
				return true
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "no session",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Del("Cookie")
				return !rt.own()
			},
			want: func(route) int { return http.StatusUnauthorized },
		},
		{
			name: "forged session",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Cookie", "spinbook-alice="+strings.Repeat("A", 43)+"; spinbook="+strings.Repeat("B", 43))
				return !rt.own()
			},
			want: func(route) int { return http.StatusUnauthorized },
		},
		{
			name: "session in Authorization",
			modify: func(r *http.Request, rt route) bool {
				_, id, _ := strings.Cut(cookie, "=")
				r.Header.Del("Cookie")
				r.Header.Set("Authorization", "token "+id)
				return !rt.own()
			},
			want: func(route) int { return http.StatusUnauthorized },
		},
		{
			name: "foreign Origin on upgrade",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Origin", "http://evil.example")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "null Origin on upgrade",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Origin", "null")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "missing Origin on upgrade",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Del("Origin")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "Origin that ends with the server's host",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Origin", "http://evil.com.127.0.0.1:8800")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "Origin that starts with the server's host",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Origin", "http://127.0.0.1:8800.evil.example")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "upgrade on a POST with a foreign Origin",
			modify: func(r *http.Request, rt route) bool {
				r.Method = http.MethodPost
				r.Header.Set("Origin", "http://evil.example")
				return rt.ws
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "cross-site write without a token",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Set("Sec-Fetch-Site", "cross-site")
				return r.Method != http.MethodGet
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "write with a foreign Origin",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Del("Sec-Fetch-Site")
				r.Header.Set("Origin", "http://evil.example")
				return r.Method != http.MethodGet
			},
			want: func(route) int { return http.StatusForbidden },
		},
		{
			name: "write with a null Origin",
			modify: func(r *http.Request, rt route) bool {
				r.Header.Del("Sec-Fetch-Site")
				r.Header.Set("Origin", "null")
				return r.Method != http.MethodGet
			},
			want: func(route) int { return http.StatusForbidden },
		},
	}

	for _, a := range attacks {
		for _, rt := range routes {
			r := rt.request(cookie)
			if !a.modify(r, rt) {
				continue
			}
			t.Run(a.name+"/"+rt.name, func(t *testing.T) {
				before := e.up.requests.Load()
				e.clock.Advance(time.Minute) // no attack is slowed by the login limit
				resp := e.serve(r)
				if want := a.want(rt); resp.StatusCode != want {
					t.Errorf("%s %s: status %d, want %d", r.Method, r.URL, resp.StatusCode, want)
				}
				if got := e.up.requests.Load() - before; got != 0 {
					t.Errorf("Jupyter received %d requests, want none", got)
				}
			})
		}
	}
	if got := e.checks.Load(); got > int64(len(attacks)) {
		t.Errorf("%d password checks; refused requests must not reach the check", got)
	}
}

// TestAbusePathTricks: odd spellings of paths never reach Jupyter without a
// session, and never turn a gateway route into a proxied one or back.
func TestAbusePathTricks(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	tricks := []struct {
		target      string
		withSession int // status with a session; 0: proxied (200)
	}{
		{target: "/%2e%2e/api/contents"},
		{target: "/api/%2e%2e/%2e%2e/etc/passwd"},
		{target: "//api/contents"},
		{target: "///api//contents"},
		{target: "/api;/contents"},
		{target: "/api/contents;jsessionid=x"},
		{target: "/api%2Fcontents"},
		{target: "/api%2fcontents%2f..%2f..%2f"},
		{target: "/%61pi/contents"},
		{target: "/logout/../api/contents"},
		{target: "/logout%2f..%2fapi/contents"},
		{target: "/Spinbook/login"},
		{target: "/spinbook/../api/contents", withSession: http.StatusNotFound},
		{target: "/spinbook/%2e%2e/api/contents", withSession: http.StatusNotFound},
		{target: "/spinbook%2f..%2fapi/contents", withSession: http.StatusNotFound},
		{target: "/spinbook/login/../../api/contents", withSession: http.StatusNotFound},
		{target: "/spinbook/login;/../../api/contents", withSession: http.StatusNotFound},
		{target: "/spinbook/login%00", withSession: http.StatusNotFound},
	}
	for _, tt := range tricks {
		t.Run(tt.target, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			r.URL, r.RequestURI = u, tt.target
			before := e.up.requests.Load()
			resp := e.serve(r)
			want := http.StatusUnauthorized
			if tt.withSession != 0 {
				want = tt.withSession
			}
			if resp.StatusCode != want {
				t.Errorf("without a session: status %d, want %d", resp.StatusCode, want)
			}
			if got := e.up.requests.Load() - before; got != 0 {
				t.Errorf("without a session: Jupyter received %d requests", got)
			}

			r = r.Clone(t.Context())
			r.Header.Set("Cookie", cookie)
			resp = e.serve(r)
			if tt.withSession != 0 {
				if resp.StatusCode != tt.withSession || e.up.requests.Load() != before {
					t.Errorf("with a session: status %d, upstream requests %d; want %d and none",
						resp.StatusCode, e.up.requests.Load()-before, tt.withSession)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("with a session: status %d, want 200 (proxied)", resp.StatusCode)
			}
			if got := e.up.lastRequest(t).URL.EscapedPath(); got != u.EscapedPath() {
				t.Errorf("Jupyter got path %q, want it unchanged (%q)", got, u.EscapedPath())
			}
		})
	}
}

// TestAbuseOpenRedirect: whatever next says, login leads to a path on
// this origin, and the login page never echoes an unsafe next.
func TestAbuseOpenRedirect(t *testing.T) {
	e := newEnv(t, nil)
	vectors := []string{
		"//x", "///x", `\\x`, `/\x`, `/\/x`, "https:x", "https://x", "http:/x", "//x/%2e%2e",
		"/\t/x", "\t//x", "/%09/x", "%2f%2fx", "/%2f/x", "/%2F%2Fx", "/%5c/x", "/%5C%5Cx",
		"/%252f%252fx", "%252f%252fx", " //x", "//x@y", "/x\r\nLocation: //x", "javascript:alert(1)",
		"data:text/html,x", "\\/x", "/.%2f/x", "/%2e//x", "//%09x", "\u3002//x",
	}
	for i, next := range vectors {
		t.Run(strconv.Quote(next), func(t *testing.T) {
			before := e.up.requests.Load()
			r := loginRequest(testPassword, next)
			r.RemoteAddr = "192.0.2." + strconv.Itoa(10+i) + ":1"
			e.clock.Advance(time.Second)
			resp := e.serve(r)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || loc != "/" {
				t.Errorf("login: status %d, Location %q; want 303 to /", resp.StatusCode, loc)
			}

			page := httptest.NewRequest(http.MethodGet, loginPath+"?next="+url.QueryEscape(next), nil)
			b := body(t, e.serve(page))
			if !strings.Contains(b, `name="next" value="/"`) {
				t.Errorf("login page keeps an unsafe next:\n%s", b)
			}
			if got := e.up.requests.Load() - before; got != 0 {
				t.Errorf("Jupyter received %d requests", got)
			}
		})
	}
}
