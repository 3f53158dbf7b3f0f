package portal

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/gateway"
)

// stateChanges are every page route that changes something.
var stateChanges = []string{
	"/logout", "/tokens", "/tokens/1/revoke",
	"/servers/alice/start", "/servers/alice/stop", "/servers/alice/save", "/servers/alice/extend", "/servers/alice/open",
}

// Every state change needs the session's CSRF token and must come from
// the portal's own pages; nothing reaches the servers otherwise.
func TestCSRFOnEveryStateChange(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = ""
	alice := tp.signIn(t, "alice", alicePassword)
	// One character changed; a token that began with "x" stayed right
	// (1 in 64 runs), and its logout case then signed alice out.
	wrong := "x" + alice.csrf[1:]
	if wrong == alice.csrf {
		wrong = "y" + alice.csrf[1:]
	}
	cases := []struct {
		name string
		mod  func(r *http.Request, form url.Values)
	}{
		{"no csrf token", func(r *http.Request, form url.Values) { form.Del("csrf") }},
		{"wrong csrf token", func(r *http.Request, form url.Values) { form.Set("csrf", wrong) }},
		{"cross-site", func(r *http.Request, form url.Values) { r.Header.Set("Sec-Fetch-Site", "cross-site") }},
		{"foreign origin", func(r *http.Request, form url.Values) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "https://evil.example")
		}},
	}
	for _, path := range stateChanges {
		for _, c := range cases {
			t.Run(path+" "+c.name, func(t *testing.T) {
				form := url.Values{"csrf": {alice.csrf}}
				r := formPost(path, nil)
				c.mod(r, form)
				r.Body = io.NopCloser(strings.NewReader(form.Encode()))
				r.ContentLength = int64(len(form.Encode()))
				r.Header.Set("Cookie", alice.cookie)
				resp := tp.do(r)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("status %d, want 403", resp.StatusCode)
				}
			})
		}
	}
	if calls := tp.servers.Calls(); len(calls) != 0 {
		t.Errorf("refused requests reached the servers: %q", calls)
	}
	// The session still works: nothing above ended it.
	get := httptest.NewRequest(http.MethodGet, "/", nil)
	get.Header.Set("Cookie", alice.cookie)
	if resp := tp.do(get); resp.StatusCode != http.StatusOK {
		t.Errorf("after the refusals, GET / = %d", resp.StatusCode)
	}
}

// A Host that is not the portal's gets 421 on every route, page or API,
// before anything else.
func TestHostCheck(t *testing.T) {
	tp := newTestPortal(t, func(c *config.Config) {
		c.Portal.URL = "https://notebooks.example.com"
		c.Portal.ParsedURL, _ = url.Parse(c.Portal.URL)
	})
	routes := append([]string{"/", "/login", "/team", "/audit", "/tokens", "/api/v1/me", "/api/v1/servers", "/api/v1/servers/alice/start"}, stateChanges...)
	for _, path := range routes {
		for _, host := range []string{"evil.example", "notebooks.example.com.evil.example", "127.0.0.1.nip.io:8700"} {
			r := formPost(path, url.Values{})
			r.Host = host
			if resp := tp.do(r); resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("POST %s Host %s: %d, want 421", path, host, resp.StatusCode)
			}
		}
		for _, host := range []string{"notebooks.example.com", "NOTEBOOKS.example.com.", "127.0.0.1:8700", "localhost:8700"} {
			r := httptest.NewRequest(http.MethodGet, "/login", nil)
			r.Host = host
			if resp := tp.do(r); resp.StatusCode == http.StatusMisdirectedRequest {
				t.Errorf("GET /login Host %s: 421, want it answered", host)
			}
		}
	}
	if len(tp.servers.Calls()) != 0 {
		t.Errorf("misdirected requests reached the servers: %q", tp.servers.Calls())
	}
}

// Signing in gives a new session id each time; signing out ends the
// session on the server, so a replayed cookie is worth nothing.
func TestSessionRotationAndReplay(t *testing.T) {
	tp := newTestPortal(t, func(c *config.Config) {
		c.Portal.URL = "https://notebooks.example.com"
		c.Portal.ParsedURL, _ = url.Parse(c.Portal.URL)
	})
	if tp.p.cookieName != "__Host-spinbook-portal" {
		t.Errorf("cookie under https: %q, want __Host-spinbook-portal", tp.p.cookieName)
	}
	first := tp.signIn(t, "alice", alicePassword)
	// Signing in again from the same browser replaces its session.
	r := formPost("/login", url.Values{"user": {"alice"}, "password": {alicePassword}})
	r.Header.Set("Cookie", first.cookie)
	resp := tp.do(r)
	var second string
	for _, c := range resp.Cookies() {
		if c.Name == tp.p.cookieName {
			second = c.Name + "=" + c.Value
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				t.Errorf("cookie attributes: %+v", c)
			}
		}
	}
	if second == "" || second == first.cookie {
		t.Fatalf("sign-in did not rotate the session id")
	}
	get := func(cookie string) int {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", cookie)
		return tp.do(r).StatusCode
	}
	if code := get(first.cookie); code != http.StatusSeeOther {
		t.Errorf("the replaced session still works: %d", code)
	}
	b := browser{cookie: second}
	b.csrf = csrfField.FindStringSubmatch(pageBody(t, tp, "/", second))[1]
	out := formPost("/logout", url.Values{"csrf": {b.csrf}})
	out.Header.Set("Cookie", second)
	if resp := tp.do(out); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if code := get(second); code != http.StatusSeeOther {
		t.Errorf("a signed-out session replayed: %d, want 303 to sign in", code)
	}
}

func pageBody(t *testing.T, tp *testPortal, path, cookie string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Header.Set("Cookie", cookie)
	return readBody(t, tp.do(r))
}

// Sign-in failures are limited per address; the limit answers 429 even
// for the right password.
func TestSignInRateLimit(t *testing.T) {
	tp := newTestPortal(t, nil)
	got := 0
	for i := 0; i < 10 && got != http.StatusTooManyRequests; i++ {
		got = tp.do(formPost("/login", url.Values{"user": {"alice"}, "password": {"wrong"}})).StatusCode
	}
	if got != http.StatusTooManyRequests {
		t.Fatalf("10 wrong passwords were never limited (last %d)", got)
	}
	resp := tp.do(formPost("/login", url.Values{"user": {"alice"}, "password": {alicePassword}}))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("right password while limited: %d, want 429 with Retry-After", resp.StatusCode)
	}
	// Another address is not held up.
	r := formPost("/login", url.Values{"user": {"alice"}, "password": {alicePassword}})
	r.RemoteAddr = "192.0.2.99:1234"
	if resp := tp.do(r); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another address: %d, want 303", resp.StatusCode)
	}
}

// Behind a trusted proxy the limit holds each client, by the proxy's
// X-Forwarded-For, not the proxy itself; a peer that is not a trusted proxy
// cannot choose its address with the header; and unset,
// portal.trusted_proxies is access.trusted_proxies.
func TestSignInRateLimitBehindAProxy(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*config.Config)
	}{
		{"portal.trusted_proxies", func(c *config.Config) {
			c.Portal.TrustedProxies = []string{"10.0.0.0/8"}
			c.Portal.TrustedPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}},
		{"access.trusted_proxies", func(c *config.Config) {
			c.Access.TrustedProxies = []string{"10.0.0.0/8"}
			c.Access.TrustedPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp := newTestPortal(t, tt.mod)
			login := func(peer, forwarded, password string) int {
				r := formPost("/login", url.Values{"user": {"alice"}, "password": {password}})
				r.RemoteAddr = peer
				if forwarded != "" {
					r.Header.Set("X-Forwarded-For", forwarded)
				}
				return tp.do(r).StatusCode
			}
			got := 0
			for i := 0; i < 10 && got != http.StatusTooManyRequests; i++ {
				got = login("10.1.2.3:5000", "198.51.100.7", "wrong")
			}
			if got != http.StatusTooManyRequests {
				t.Fatalf("10 wrong passwords from one client behind the proxy were never limited (last %d)", got)
			}
			if got := login("10.1.2.3:5000", "198.51.100.8", alicePassword); got != http.StatusSeeOther {
				t.Errorf("another client through the same proxy: %d, want 303", got)
			}
			// Not a trusted proxy: its header is no way around the limit.
			for i := 0; i < 10 && got != http.StatusTooManyRequests; i++ {
				got = login("192.0.2.50:5000", fmt.Sprintf("203.0.113.%d", i), "wrong")
			}
			if got != http.StatusTooManyRequests {
				t.Errorf("an untrusted peer escaped the limit by changing X-Forwarded-For (last %d)", got)
			}
		})
	}
	// [] believes no one, whatever access says.
	tp := newTestPortal(t, func(c *config.Config) {
		c.Access.TrustedPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.Portal.TrustedProxies = []string{}
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	if got := tp.p.clientIP(r); got != "10.1.2.3" {
		t.Errorf("clientIP with portal.trusted_proxies [] = %s, want the peer", got)
	}
}

// Passwords, API tokens, session ids and open tokens never reach the log,
// and a token is on a page only the once it is made.
func TestCanaries(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = ""
	tp.do(formPost("/login", url.Values{"user": {"alice"}, "password": {bobPassword}}))         // wrong
	tp.do(formPost("/login", url.Values{"user": {carolPassword}, "password": {alicePassword}})) // a password typed as the name
	alice := tp.signIn(t, "alice", alicePassword)
	tok := tp.makeToken(t, alice)
	api := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	api.Header.Set("Authorization", "Bearer "+tok)
	tp.do(api)
	open := formPost("/servers/alice/open", url.Values{"csrf": {alice.csrf}})
	open.Header.Set("Cookie", alice.cookie)
	openPage := readBody(t, tp.do(open))
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(openPage)
	if m == nil {
		t.Fatalf("no open token on the open page")
	}
	audit := pageBody(t, tp, "/audit", alice.cookie)
	tokens := pageBody(t, tp, "/tokens", alice.cookie)
	sessionID := strings.SplitN(alice.cookie, "=", 2)[1]
	for name, canary := range map[string]string{"alice's password": alicePassword, "bob's password": bobPassword, "carol's password": carolPassword,
		"API token": tok, "session id": sessionID, "open token": m[1]} {
		if strings.Contains(tp.logs.String(), canary) {
			t.Errorf("%s in the log", name)
		}
		if strings.Contains(audit, canary) || strings.Contains(tokens, canary) {
			t.Errorf("%s on the audit or tokens page", name)
		}
	}
	// The database holds hashes only.
	var n int
	if err := tp.p.store.db.QueryRow("SELECT COUNT(*) FROM tokens WHERE hash = ?", tok).Scan(&n); err != nil || n != 0 {
		t.Errorf("the token is stored in clear (%d, %v)", n, err)
	}
	if err := tp.p.store.db.QueryRow("SELECT COUNT(*) FROM sessions WHERE key = ?", sessionID).Scan(&n); err != nil || n != 0 {
		t.Errorf("the session id is stored in clear (%d, %v)", n, err)
	}
}

// The portal restarts without losing sessions or tokens, and the
// generated admin's password is printed once only.
func TestRestartAndFirstAdmin(t *testing.T) {
	tp := newTestPortal(t, func(c *config.Config) { c.Portal.Users = nil })
	m := regexp.MustCompile(`user admin, password (\S+)`).FindStringSubmatch(tp.out.String())
	if m == nil {
		t.Fatalf("the first start printed no admin login: %q", tp.out.String())
	}
	admin := tp.signIn(t, "admin", m[1])
	tok := tp.makeToken(t, admin)
	tp.p.Close()
	tp.out.Reset()
	tp.start(t)
	if strings.Contains(tp.out.String(), m[1]) || strings.Contains(tp.out.String(), "password ") && strings.Contains(tp.out.String(), "shown only now") {
		t.Errorf("a restart printed a password again: %q", tp.out.String())
	}
	if !strings.Contains(pageBody(t, tp, "/team", admin.cookie), "<h1>Team</h1>") {
		t.Errorf("the admin's session did not survive the restart")
	}
	api := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	api.Header.Set("Authorization", "Bearer "+tok)
	if b := readBody(t, tp.do(api)); !strings.Contains(b, `"admin":true`) {
		t.Errorf("the token did not survive the restart: %s", b)
	}
}

// API start with Accept: text/event-stream streams progress, then one
// done event with the status object.
func TestAPIStartStreams(t *testing.T) {
	tp := newTestPortal(t, nil)
	alice := tp.signIn(t, "alice", alicePassword)
	tok := tp.makeToken(t, alice)
	srv := httptest.NewServer(tp.p)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/api/v1/servers/alice/start", strings.NewReader(`{"size":"small"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var events []string
	var last string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, e)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			last = d
		}
	}
	want := []string{"progress", "progress", "done"}
	if strings.Join(events, ",") != strings.Join(want, ",") {
		t.Errorf("events %q, want %q", events, want)
	}
	if !strings.Contains(last, `"state":"running"`) || !strings.Contains(last, `"user":"alice"`) {
		t.Errorf("done data %s, want alice's status object", last)
	}
}

// The bodies the API refuses, with the status and a message saying what
// to do.
func TestAPIBadInput(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = ""
	alice := tp.signIn(t, "alice", alicePassword)
	tok := tp.makeToken(t, alice)
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/servers/alice/start", `{"size":"huge"}`, 400},
		{"/api/v1/servers/alice/start", `{"sise":"small"}`, 400},
		{"/api/v1/servers/alice/start", `not json`, 400},
		{"/api/v1/servers/alice/extend", `{"for":"forever"}`, 400},
		{"/api/v1/servers/alice/extend", `{"for":"10000h"}`, 400},
		{"/api/v1/servers/alice/reboot", `{}`, 404},
		{"/api/v1/servers/ALICE/start", `{}`, 404},
		{"/api/v1/nothing", ``, 404},
	} {
		r := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		r.Header.Set("Authorization", "Bearer "+tok)
		resp := tp.do(r)
		body := readBody(t, resp)
		if resp.StatusCode != c.want || !strings.Contains(body, `"error":`) {
			t.Errorf("POST %s %s: %d %s, want %d with an error", c.path, c.body, resp.StatusCode, body, c.want)
		}
	}
	if len(tp.servers.Calls()) != 0 {
		t.Errorf("refused calls reached the servers: %q", tp.servers.Calls())
	}
}

// Open hands the browser a token that alice's own front door takes (a
// real gateway with the portal's public key), and nobody else's.
func TestOpenIntoGateway(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = ""
	alice := tp.signIn(t, "alice", alicePassword)
	open := formPost("/servers/alice/open", url.Values{"csrf": {alice.csrf}})
	open.Header.Set("Cookie", alice.cookie)
	resp := tp.do(open)
	page := readBody(t, resp)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:8801") {
		t.Errorf("the open page's policy does not let its form post to the server: %q", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q", rp)
	}
	if !strings.Contains(page, `action="http://127.0.0.1:8801/spinbook/portal-login"`) {
		t.Fatalf("open page posts elsewhere:\n%s", page)
	}
	tok := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)[1]

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "jupyter") }))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	front := func(user string) *gateway.Gateway {
		g, err := gateway.New(gateway.Options{User: user, Upstream: up, CheckPassword: func(string) bool { return false },
			PortalKey: tp.key.Public().(ed25519.PublicKey), PortalOnly: true,
			Allow:  []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
			Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	post := func(g *gateway.Gateway) int {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8801/spinbook/portal-login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, r)
		return rec.Code
	}
	if code := post(front("bob")); code != http.StatusUnauthorized {
		t.Errorf("bob's front door took alice's token: %d", code)
	}
	g := front("alice")
	if code := post(g); code != http.StatusSeeOther {
		t.Errorf("alice's front door: %d, want 303 into the server", code)
	}
	if code := post(g); code != http.StatusUnauthorized {
		t.Errorf("the token worked twice: %d", code)
	}
}
