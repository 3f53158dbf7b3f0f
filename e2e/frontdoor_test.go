package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// TestForeignHostRefused: DNS rebinding against a real server. A page whose
// name (attacker.example) was made to resolve to the server sends a login
// POST with its own name as Host and a matching Origin, as a browser
// would: the front door answers 421 and logs nobody in; so it does for a
// logged-in browser's API call and websocket under that name. The server's
// own names work: the URL's host and localhost.
func TestForeignHostRefused(t *testing.T) {
	w := newWorld(t, "")
	s := w.up("hedy")
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)

	send := func(b *browser, method, path, host, body string, header map[string]string) *http.Response {
		t.Helper()
		return sendAs(t, b, s.URL, method, path, host, body, header)
	}
	form := url.Values{"password": {s.Password}, "next": {"/tree"}}.Encode()
	formHeader := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	for _, host := range []string{"attacker.example:" + port, "attacker.example", "127.0.0.1.attacker.example:" + port} {
		b := newBrowser(t, s.URL, "")
		resp := send(b, http.MethodPost, "/spinbook/login", host, form, formHeader)
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("login POST with Host %s: %s, want 421", host, resp.Status)
		}
		if c := resp.Header.Get("Set-Cookie"); c != "" {
			t.Errorf("login POST with Host %s set a cookie: %q", host, c)
		}
	}

	// A logged-in browser: its cookie goes to the rebound name too.
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the server's own Host: %s", resp.Status)
	}
	cookie := b.Jar.Cookies(u)
	if len(cookie) == 0 {
		t.Fatal("no session cookie after login")
	}
	withCookie := map[string]string{"Cookie": cookie[0].Name + "=" + cookie[0].Value, "Content-Type": "application/json"}
	foreign := "attacker.example:" + port
	if resp := send(newBrowser(t, s.URL, ""), http.MethodPost, "/api/kernels", foreign, "{}", withCookie); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("POST /api/kernels with a session and Host %s: %s, want 421", foreign, resp.Status)
	}
	if resp := send(newBrowser(t, s.URL, ""), http.MethodGet, "/api/contents", foreign, "", withCookie); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/contents with a session and Host %s: %s, want 421", foreign, resp.Status)
	}
	conn, resp, err := websocket.Dial(t.Context(), "ws://"+u.Host+"/api/events/subscribe", &websocket.DialOptions{
		Host:       foreign,
		HTTPHeader: http.Header{"Origin": {"http://" + foreign}, "Cookie": {withCookie["Cookie"]}},
	})
	if err == nil {
		conn.CloseNow()
	}
	if resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("websocket with Host %s: %v, want 421", foreign, err)
	}

	// The server's own names.
	for _, host := range []string{u.Host, "localhost:" + port, "LocalHost.:" + port} {
		if resp := send(newBrowser(t, s.URL, ""), http.MethodPost, "/spinbook/login", host, form, formHeader); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("login POST with Host %s: %s, want 303", host, resp.Status)
		}
	}
	// Health answers any Host: load balancers and kubelets send their own.
	st := w.status("hedy")
	if st.HealthURL == "" {
		t.Fatalf("status without a health URL: %+v", st)
	}
	req, _ := http.NewRequest(http.MethodGet, st.HealthURL, nil)
	req.Host = "10.0.0.1:8081"
	hresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		t.Errorf("health with a foreign Host: %s, want 200", hresp.Status)
	}
}

// TestAccessHostsAnswered: a name listed in access.hosts is one of the
// server's own, in any case and with a trailing dot; a longer name
// containing it is not.
func TestAccessHostsAnswered(t *testing.T) {
	w := newWorld(t, "access:\n  hosts: [notebooks.example.test]\n")
	s := w.up("ida")
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	form := url.Values{"password": {s.Password}, "next": {"/tree"}}.Encode()
	formHeader := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for host, want := range map[string]int{
		"notebooks.example.test:" + port:                  http.StatusSeeOther,
		"NOTEBOOKS.example.test.:" + port:                 http.StatusSeeOther,
		"notebooks.example.test.attacker.example:" + port: http.StatusMisdirectedRequest,
	} {
		if resp := sendAs(t, newBrowser(t, s.URL, ""), s.URL, http.MethodPost, "/spinbook/login", host, form, formHeader); resp.StatusCode != want {
			t.Errorf("login POST with Host %s: %s, want %d", host, resp.Status, want)
		}
	}
}

// sendAs sends a request to the server at base with Host host and the
// Origin a page on host would send.
func sendAs(t *testing.T, b *browser, base, method, path, host, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(base, "/")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Origin", "http://"+host)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatalf("%s %s with Host %s: %v", method, path, host, err)
	}
	resp.Body.Close()
	return resp
}
