package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// abusePorts keeps these tests' servers clear of the other e2e worlds.
const abusePorts = "19600-19799"

// startTerminal opens a terminal through the front door and returns its name.
func startTerminal(t *testing.T, b *browser) string {
	t.Helper()
	resp := b.do(t, http.MethodPost, "/api/terminals", nil, map[string]string{"Origin": b.origin()})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/terminals: %s", resp.Status)
	}
	var term struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&term); err != nil || term.Name == "" {
		t.Fatalf("POST /api/terminals: no terminal name (%v)", err)
	}
	return term.Name
}

// TestAbuseRealServer sends the abuse suite's attacks to every route of a
// real agent and Jupyter and checks the answers. (That Jupyter receives
// nothing is counted at a recording upstream in internal/gateway's
// TestAbuse; here the real server must answer the same.)
func TestAbuseRealServer(t *testing.T) {
	// 127.0.0.16/28: one address per login below, so that none is slowed
	// by the login rate limit.
	w := newWorldPorts(t, "access:\n  allow: [127.0.0.1/32, 127.0.0.16/28]\n", abusePorts)
	s := w.up("mallory")
	b := newBrowser(t, s.URL, "127.0.0.1")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	kernel, terminal := startKernel(t, b), startTerminal(t, b)
	u, _ := url.Parse(s.URL)
	health := strings.TrimSuffix(s.HealthURL, "/healthz")

	routes := []struct {
		name, method, path string
		ws                 bool
	}{
		{"login page", http.MethodGet, "/spinbook/login", false},
		{"login post", http.MethodPost, "/spinbook/login", false},
		{"static", http.MethodGet, "/static/base/js/namespace.js", false},
		{"notebook page", http.MethodGet, "/tree", false},
		{"REST API", http.MethodGet, "/api/contents", false},
		{"REST API write", http.MethodPost, "/api/contents", false},
		{"kernel websocket", http.MethodGet, "/api/kernels/" + kernel + "/channels", true},
		{"terminal websocket", http.MethodGet, "/terminals/websocket/" + terminal, true},
	}
	cookie := ""
	for _, c := range b.Jar.Cookies(b.base) {
		if c.Name == "spinbook-mallory" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after login")
	}

	// send makes a request with a raw connection from source, so that
	// nothing (no cookie jar, no client) adds or cleans anything.
	send := func(t *testing.T, source, method, path string, header http.Header) int {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", u.Host)
		if err != nil {
			t.Fatalf("dial from %s: %v", source, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n", method, path, u.Host)
		for k, vs := range header {
			for _, v := range vs {
				req += k + ": " + v + "\r\n"
			}
		}
		if _, err := c.Write([]byte(req + "\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	upgrade := http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-WebSocket-Version": {"13"},
		"Sec-WebSocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
	with := func(h http.Header, kv ...string) http.Header {
		out := http.Header{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(out, kv[i])
				continue
			}
			out[kv[i]] = []string{kv[i+1]}
		}
		return out
	}

	type attack struct {
		name    string
		source  string
		header  func(ws bool) http.Header
		applies func(method string, ws bool, own bool) bool
		want    int
	}
	base := func(ws bool) http.Header {
		h := http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"same-origin"}}
		if ws {
			h = with(upgrade, "Cookie", cookie, "Origin", b.origin())
		}
		return h
	}
	all := func(string, bool, bool) bool { return true }
	proxied := func(_ string, _ bool, own bool) bool { return !own }
	wsOnly := func(_ string, ws bool, _ bool) bool { return ws }
	writes := func(method string, _ bool, _ bool) bool { return method == http.MethodPost }
	attacks := []attack{
		{name: "not allowlisted (127.0.0.2)", source: "127.0.0.2", header: base, applies: all, want: http.StatusForbidden},
		{name: "spoofed forwarding headers", source: "127.0.0.2", applies: all, want: http.StatusForbidden,
			header: func(ws bool) http.Header {
				return with(base(ws), "X-Forwarded-For", "127.0.0.1", "X-Real-IP", "127.0.0.1",
					"Forwarded", "for=127.0.0.1", "X_Forwarded_For", "127.0.0.1")
			}},
		{name: "no session", source: "127.0.0.1", applies: proxied, want: http.StatusUnauthorized,
			header: func(ws bool) http.Header { return with(base(ws), "Cookie", "") }},
		{name: "forged session", source: "127.0.0.1", applies: proxied, want: http.StatusUnauthorized,
			header: func(ws bool) http.Header {
				return with(base(ws), "Cookie", "spinbook-mallory="+strings.Repeat("A", 43))
			}},
		{name: "foreign Origin", source: "127.0.0.1", applies: wsOnly, want: http.StatusForbidden,
			header: func(ws bool) http.Header { return with(base(ws), "Origin", "http://evil.example") }},
		{name: "null Origin", source: "127.0.0.1", applies: wsOnly, want: http.StatusForbidden,
			header: func(ws bool) http.Header { return with(base(ws), "Origin", "null") }},
		{name: "missing Origin", source: "127.0.0.1", applies: wsOnly, want: http.StatusForbidden,
			header: func(ws bool) http.Header { return with(base(ws), "Origin", "") }},
		{name: "Origin evil.com.<host>", source: "127.0.0.1", applies: wsOnly, want: http.StatusForbidden,
			header: func(ws bool) http.Header { return with(base(ws), "Origin", "http://evil.com."+u.Host) }},
		{name: "cross-site write", source: "127.0.0.1", applies: writes, want: http.StatusForbidden,
			header: func(ws bool) http.Header { return with(base(ws), "Sec-Fetch-Site", "cross-site") }},
		{name: "write with a foreign Origin", source: "127.0.0.1", applies: writes, want: http.StatusForbidden,
			header: func(ws bool) http.Header {
				return with(base(ws), "Sec-Fetch-Site", "", "Origin", "http://evil.example")
			}},
	}
	for _, a := range attacks {
		for _, r := range routes {
			own := strings.HasPrefix(r.path, "/spinbook/")
			if !a.applies(r.method, r.ws, own) {
				continue
			}
			t.Run(a.name+"/"+r.name, func(t *testing.T) {
				if got := send(t, a.source, r.method, r.path, a.header(r.ws)); got != a.want {
					t.Errorf("%s %s: status %d, want %d", r.method, r.path, got, a.want)
				}
			})
		}
	}

	t.Run("path tricks without a session", func(t *testing.T) {
		for _, p := range []string{"/%2e%2e/api/contents", "//api/contents", "/api;/contents", "/api%2Fcontents",
			"/logout/../api/contents", "/api/kernels/" + kernel + "%2Fchannels"} {
			if got := send(t, "127.0.0.1", http.MethodGet, p, nil); got != http.StatusUnauthorized {
				t.Errorf("GET %s: status %d, want 401", p, got)
			}
		}
	})
	t.Run("open redirect through next", func(t *testing.T) {
		for i, next := range []string{"//x", "///x", `\\x`, `/\x`, "https:x", "/\t/x", "/%2f%2fx", "%2F%2Fx", "/%5cx"} {
			login := newBrowser(t, s.URL, fmt.Sprintf("127.0.0.%d", 16+i))
			form := url.Values{"password": {s.Password}, "next": {next}}
			resp := login.do(t, http.MethodPost, "/spinbook/login", strings.NewReader(form.Encode()), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Origin": login.origin(),
			})
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
				t.Errorf("next=%q: %s Location %q, want 303 to /", next, resp.Status, resp.Header.Get("Location"))
			}
		}
	})
	t.Run("request sizes are bounded", func(t *testing.T) {
		if got := send(t, "127.0.0.1", http.MethodGet, "/api/contents", http.Header{
			"Cookie": {cookie}, "X-Big": {strings.Repeat("a", 70<<10)},
		}); got != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("70 KiB of headers: status %d, want 431", got)
		}
		form := url.Values{"password": {strings.Repeat("p", 8<<10)}}
		resp := b.do(t, http.MethodPost, "/spinbook/login", strings.NewReader(form.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": b.origin(),
		})
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("an 8 KiB login form: %s, want 413", resp.Status)
		}
	})
	t.Run("health answers without a session", func(t *testing.T) {
		resp, err := http.Get(health + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("health: %s", resp.Status)
		}
	})
	// Still logged in and working after all that.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, kernel, b.origin())
	if err != nil {
		t.Fatalf("own kernel websocket after the attacks: %v", err)
	}
	defer conn.CloseNow()
	if got := execute(ctx, t, conn, "print(6*7)"); got != "42\n" {
		t.Fatalf("print(6*7) printed %q", got)
	}
	term, _, err := websocket.Dial(ctx, "ws://"+u.Host+"/terminals/websocket/"+terminal, &websocket.DialOptions{
		HTTPClient: b.Client, HTTPHeader: http.Header{"Origin": {b.origin()}},
	})
	if err != nil {
		t.Fatalf("own terminal websocket: %v", err)
	}
	term.CloseNow()
}

// TestLoginRateLimitPerAddress: wrong passwords from one address are
// throttled, with a page that says so; another allowed address logs in.
func TestLoginRateLimitPerAddress(t *testing.T) {
	w := newWorldPorts(t, "access:\n  allow: [127.0.0.2/32, 127.0.0.3/32]\n", abusePorts)
	s := w.up("trudy")
	attacker := newBrowser(t, s.URL, "127.0.0.2")
	var last *http.Response
	for i := range 6 {
		last = attacker.login(t, fmt.Sprintf("guess-%d", i))
		if i < 5 && last.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %s, want 401", i+1, last.Status)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("guess 6: %s Retry-After %q, want 429 with Retry-After", last.Status, last.Header.Get("Retry-After"))
	}
	if resp := attacker.login(t, s.Password); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right password while throttled: %s, want 429", resp.Status)
	}
	other := newBrowser(t, s.URL, "127.0.0.3")
	if resp := other.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another allowed address: %s, want 303", resp.Status)
	}
	if resp := other.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another allowed address, API: %s", resp.Status)
	}
}

// TestSessionLifecycle: cookie flags, a new id at every login, logout
// replay, and a password change (a new hash in the config, `up` again)
// that ends every old session.
func TestSessionLifecycle(t *testing.T) {
	hashOf := func(password string) string {
		cmd := exec.Command(bin, "password")
		cmd.Stdin = strings.NewReader(password + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("spinbook password: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	oldHash, newHash := hashOf("old password 1"), hashOf("new password 2")
	w := newWorldPorts(t, "access:\n  password_hash: "+oldHash+"\n", abusePorts)
	s := w.up("peggy")
	if s.Password != "" {
		t.Fatalf("up printed a password although the config has a hash")
	}

	b := newBrowser(t, s.URL, "")
	resp := b.login(t, "old password 1")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	var first *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "spinbook-peggy" {
			first = c
		}
	}
	if first == nil || !first.HttpOnly || first.SameSite != http.SameSiteLaxMode || first.Path != "/" || first.Secure || first.Domain != "" {
		t.Fatalf("session cookie %+v, want spinbook-peggy, HttpOnly, SameSite=Lax, Path=/", first)
	}
	old := newBrowser(t, s.URL, "")
	old.Jar.SetCookies(old.base, []*http.Cookie{{Name: first.Name, Value: first.Value}})

	t.Run("rotation at login", func(t *testing.T) {
		resp := b.login(t, "old password 1")
		var second *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "spinbook-peggy" {
				second = c
			}
		}
		if second == nil || second.Value == first.Value {
			t.Fatal("a second login kept the session id")
		}
		if resp := old.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the id from before the second login: %s, want 401", resp.Status)
		}
	})

	t.Run("logout replay", func(t *testing.T) {
		kept := newBrowser(t, s.URL, "")
		kept.Jar.SetCookies(kept.base, b.Jar.Cookies(b.base))
		// A GET of /logout, from another site or anyone, only shows the form.
		if resp := b.do(t, http.MethodGet, "/logout", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /logout: %s, want the logout form", resp.Status)
		}
		if resp := kept.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("the session after a GET of /logout: %s, want still logged in", resp.Status)
		}
		if resp := b.do(t, http.MethodPost, "/logout", nil, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site POST /logout: %s, want 403", resp.Status)
		}
		if resp := b.do(t, http.MethodPost, "/logout", nil, map[string]string{"Origin": b.origin()}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %s", resp.Status)
		}
		if resp := kept.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the cookie replayed after logout: %s, want 401", resp.Status)
		}
	})

	t.Run("password change ends old sessions", func(t *testing.T) {
		if resp := b.login(t, "old password 1"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %s", resp.Status)
		}
		if resp := b.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the change: %s", resp.Status)
		}
		data, _ := os.ReadFile(w.config)
		os.WriteFile(w.config, []byte(strings.Replace(string(data), oldHash, newHash, 1)), 0o644)
		r := w.run("up", "--user", "peggy")
		if r.code != 0 || !strings.Contains(r.stderr, "restarting the server") {
			t.Fatalf("up after a password change must say it restarts the server: %s", r)
		}
		again := w.status("peggy")
		replay := newBrowser(t, again.URL, "")
		replay.Jar.SetCookies(replay.base, b.Jar.Cookies(b.base))
		if resp := replay.do(t, http.MethodGet, "/api/status", nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the old session after the change: %s, want 401", resp.Status)
		}
		if resp := replay.login(t, "old password 1"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the old password: %s, want 401", resp.Status)
		}
		if resp := replay.login(t, "new password 2"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the new password: %s, want 303", resp.Status)
		}
		if r := w.run("up", "--user", "peggy"); r.code != 0 || strings.Contains(r.stderr, "restarting") || !strings.Contains(r.stdout, "already running") {
			t.Errorf("up again with the same config must not restart: %s", r)
		}
	})
}

// TestJupyterLogsNoQuerySecrets: Jupyter logs the URI and Referer of a
// failed request; neither may carry a query secret into the server log.
func TestJupyterLogsNoQuerySecrets(t *testing.T) {
	w := newWorldPorts(t, "", abusePorts)
	s := w.up("walter")
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	resp := b.do(t, http.MethodGet, "/api/contents/no-such-file.ipynb?token=uri-secret-1", nil, map[string]string{
		"Referer": b.origin() + "/notebooks/x.ipynb?token=referer-secret-2#frag",
	})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET a missing file: %s, want Jupyter's 404", resp.Status)
	}
	var logs string
	waitFor(t, "Jupyter to log the 404 with its referer", 10*time.Second, func() bool {
		logs = w.run("logs", "--user", "walter").stdout
		return strings.Contains(logs, "referer=")
	})
	for _, secret := range []string{"uri-secret-1", "referer-secret-2", s.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server log holds %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "referer="+b.origin()+"/notebooks/x.ipynb") {
		t.Errorf("Jupyter logged no referer line for the 404; the test proves nothing:\n%s", logs)
	}
	for _, c := range b.Jar.Cookies(b.base) {
		if strings.Contains(logs, c.Value) {
			t.Errorf("the server log holds the cookie %s", c.Name)
		}
	}
}

// TestJupyterErrorLogHasNoCredentials: on a 5xx, Jupyter dumps request
// headers into its log (notebook 6.4: Host, Accept, Referer, User-Agent;
// older ones all of them, which the agent scrubs line by line, see
// agent TestJupyterHeaderDumpScrubbed); the server log still holds no
// cookie value, no token and no Referer query.
func TestJupyterErrorLogHasNoCredentials(t *testing.T) {
	w := newWorldPorts(t, "", abusePorts)
	s := w.up("xavier")
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	b.do(t, http.MethodGet, "/tree", nil, map[string]string{"Accept": "text/html"}) // Jupyter sets its cookies
	// A notebook that is no notebook makes Jupyter fail to save: a 500.
	resp := b.do(t, http.MethodPut, "/api/contents/fail.ipynb", strings.NewReader(`{"type":"notebook","content":{"cells":1}}`),
		map[string]string{
			"Content-Type": "application/json",
			"Origin":       b.origin(),
			"Referer":      b.origin() + "/edit/fail.txt?token=referer-secret-5",
		})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("PUT with bad content: %s, want Jupyter's 500", resp.Status)
	}
	var logs string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		logs = w.run("logs", "--user", "xavier").stdout
		if strings.Contains(logs, `"Referer": "`+b.origin()+`/edit/fail.txt"`) {
			break // the header dump, with the Referer's query gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jupyter dumped no headers for the 500:\n%s", logs)
		}
	}
	for _, c := range b.Jar.Cookies(b.base) {
		if len(c.Value) > 8 && strings.Contains(logs, c.Value) {
			t.Errorf("the server log holds the value of cookie %s", c.Name)
		}
	}
	for _, secret := range []string{"referer-secret-5", s.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server log holds %q", secret)
		}
	}
}
