package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// TestHostName: the name part of a Host header, as the gateway compares it.
func TestHostName(t *testing.T) {
	tests := []struct {
		host   string
		want   string
		wantOK bool
	}{
		{"example.com", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com.", "example.com", true},
		{"example.com:8888", "example.com", true},
		{"EXAMPLE.com.:443", "example.com", true},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1:8888", "127.0.0.1", true},
		{"[::1]", "::1", true},
		{"[::1]:8888", "::1", true},
		{"[2001:DB8::1]:8888", "2001:db8::1", true},
		{"my_host.internal:80", "my_host.internal", true},
		{"", "", false},
		{"::1", "", false},              // IPv6 without brackets
		{"[::1", "", false},             // unclosed
		{"[fe80::1%25eth0]", "", false}, // zones have no business in a Host
		{"example.com:", "", false},
		{"example.com:http", "", false},
		{"example.com:80:80", "", false},
		{"exa mple.com", "", false},
		{"user@example.com", "", false},
		{"example..com", "", false},
		{"-example.com", "", false},
		{"[127.0.0.1]", "", false},
	}
	for _, tt := range tests {
		got, ok := hostName(tt.host)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("hostName(%q) = %q, %v; want %q, %v", tt.host, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestNewValidatesHosts: Options.Hosts are names, not URLs.
func TestNewValidatesHosts(t *testing.T) {
	for _, h := range []string{"", "http://example.com", "example.com:8888", "example.com/x", "*.example.com"} {
		_, err := New(Options{Upstream: &url.URL{Scheme: "http", Host: "j"}, CheckPassword: func(string) bool { return false }, Hosts: []string{h}})
		if err == nil || !strings.Contains(err.Error(), "hosts:") {
			t.Errorf("Hosts %q: err %v, want a hosts problem", h, err)
		}
	}
}

// TestForeignHostRefused: DNS rebinding. A page whose name was rebound to
// the server sends the server's own kind of requests, with a matching
// Origin and even a valid session cookie, but with its own name as Host:
// every route of the front door answers 421 and nothing reaches Jupyter,
// the control API or the password check.
func TestForeignHostRefused(t *testing.T) {
	static := filepath.Join(t.TempDir(), "static")
	os.MkdirAll(static, 0o755)
	os.WriteFile(filepath.Join(static, "app.js"), []byte("app"), 0o644)
	var controlCalls atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.Hosts = []string{"example.com", "notebooks.example.org"}
		o.Static = []StaticRoute{{Prefix: "/static/", Dirs: []string{static}}}
		o.Control = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { controlCalls.Add(1) })
	})
	cookie := e.login(t)

	form := "password=" + url.QueryEscape(testPassword) + "&next=%2F"
	tests := []struct {
		name   string
		method string
		target string
		body   string
		header map[string]string
	}{
		{"login post", http.MethodPost, "/spinbook/login", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"login page", http.MethodGet, "/spinbook/login", "", nil},
		{"own logout", http.MethodPost, "/spinbook/logout", "", nil},
		{"jupyter logout", http.MethodPost, "/logout", "", nil},
		{"jupyter logout get", http.MethodGet, "/logout", "", nil},
		{"own page", http.MethodGet, "/spinbook/other", "", nil},
		{"control api", http.MethodPost, "/spinbook/api/save", "{}", map[string]string{"Authorization": "Bearer x"}},
		{"static", http.MethodGet, "/static/app.js", "", nil},
		{"proxied page", http.MethodGet, "/tree", "", map[string]string{"Accept": "text/html"}},
		{"proxied api write", http.MethodPut, "/api/contents/a.ipynb", "{}", map[string]string{"Content-Type": "application/json"}},
		{"proxied api read", http.MethodGet, "/api/contents", "", nil},
		{"websocket", http.MethodGet, "/api/kernels/k/channels", "", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}},
	}
	hosts := []string{"attacker.example", "attacker.example:8888", "example.com.attacker.example", "notebooks.example.org.evil", "xexample.com", ""}
	for _, tt := range tests {
		for _, host := range hosts {
			t.Run(tt.name+"/"+host, func(t *testing.T) {
				before, checks, controls := e.up.requests.Load(), e.checks.Load(), controlCalls.Load()
				r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
				r.Host = host
				// What the rebound page's own requests carry.
				r.Header.Set("Origin", "http://"+host)
				r.Header.Set("Sec-Fetch-Site", "same-origin")
				r.Header.Set("Cookie", cookie)
				for k, v := range tt.header {
					r.Header.Set(k, v)
				}
				resp := e.serve(r)
				if resp.StatusCode != http.StatusMisdirectedRequest {
					t.Errorf("status %d, want 421", resp.StatusCode)
				}
				if got := e.up.requests.Load() - before; got != 0 {
					t.Errorf("Jupyter received %d requests, want 0", got)
				}
				if got := e.checks.Load() - checks; got != 0 {
					t.Errorf("%d password checks, want 0", got)
				}
				if got := controlCalls.Load() - controls; got != 0 {
					t.Errorf("control API called %d times, want 0", got)
				}
				if c := resp.Header.Get("Set-Cookie"); c != "" {
					t.Errorf("Set-Cookie %q on a refused request", c)
				}
			})
		}
	}
	if !strings.Contains(e.logs.String(), `"msg":"foreign host refused"`) {
		t.Errorf("no log line for the refused hosts")
	}
}

// TestOwnHostsAnswered: the server's own names, in any case, with or
// without port and trailing dot, "localhost" and IP addresses (which no
// DNS can rebind) reach Jupyter.
func TestOwnHostsAnswered(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Hosts = []string{"example.com", "Notebooks.Example.ORG."} })
	cookie := e.login(t)
	for _, host := range []string{
		"example.com", "EXAMPLE.COM:8888", "example.com.", "notebooks.example.org", "notebooks.example.org.:443",
		"localhost", "localhost:8888", "127.0.0.1:8888", "[::1]:8888", "[::1]", "10.1.2.3", "198.51.100.7:80", "[2001:db8::7]:8888",
	} {
		t.Run(host, func(t *testing.T) {
			before := e.up.requests.Load()
			r := httptest.NewRequest(http.MethodPut, "/api/contents/a.ipynb", strings.NewReader("{}"))
			r.Host = host
			r.Header.Set("Origin", "http://"+host)
			r.Header.Set("Cookie", cookie)
			resp := e.serve(r)
			if resp.StatusCode != http.StatusOK || e.up.requests.Load() != before+1 {
				t.Errorf("status %d, upstream requests +%d; want 200 and +1", resp.StatusCode, e.up.requests.Load()-before)
			}
			if up := e.up.lastRequest(t); up.Host != host {
				t.Errorf("upstream Host %q, want %q", up.Host, host)
			}
		})
	}
}

// TestForeignHostRealConnections: over real connections, a rebound name
// gets 421 for a login post, a websocket and the plain-HTTP port of a TLS
// front door (never a redirect to the attacker's name), while the
// server's own name works.
func TestForeignHostRealConnections(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.Hosts = []string{"example.com", "notebooks.example.org"} })
		srv := httptest.NewServer(e.g)
		t.Cleanup(srv.Close)
		addr := srv.Listener.Addr().String()
		_, port, _ := net.SplitHostPort(addr)

		post := func(host string) int {
			t.Helper()
			form := url.Values{"password": {testPassword}, "next": {"/"}}
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/spinbook/login", strings.NewReader(form.Encode()))
			req.Host = host
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "http://"+host)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got := post("attacker.example:" + port); got != http.StatusMisdirectedRequest {
			t.Errorf("login with a foreign Host: %d, want 421", got)
		}
		if got := e.checks.Load(); got != 0 {
			t.Errorf("%d password checks for a foreign Host", got)
		}
		if got := post("notebooks.example.org:" + port); got != http.StatusSeeOther {
			t.Errorf("login with the own Host: %d, want 303", got)
		}

		cookie := e.login(t)
		before := e.up.requests.Load()
		_, resp, err := websocket.Dial(t.Context(), "ws://"+addr+"/api/kernels/k/channels", &websocket.DialOptions{
			Host:       "attacker.example:" + port,
			HTTPHeader: http.Header{"Origin": {"http://attacker.example:" + port}, "Cookie": {cookie}},
		})
		if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("websocket with a foreign Host: %v, %v; want 421", err, resp)
		}
		if got := e.up.requests.Load() - before; got != 0 {
			t.Errorf("Jupyter received %d requests", got)
		}
	})

	t.Run("tls redirect port", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.Secure = true; o.Hosts = []string{"notebooks.example.org"} })
		addr, client := serveTLS(t, e)
		for host, want := range map[string]int{"attacker.example": http.StatusMisdirectedRequest, "notebooks.example.org": http.StatusTemporaryRedirect} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/tree", nil)
			req.Host = host
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("plain http with Host %s: %d, want %d", host, resp.StatusCode, want)
			}
			if loc := resp.Header.Get("Location"); want != http.StatusTemporaryRedirect && loc != "" {
				t.Errorf("Location %q for a foreign Host", loc)
			}
		}
	})
}
