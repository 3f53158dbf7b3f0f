package portal

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// The identities of the authorization table.
const (
	anonymous    = "anonymous"
	asUser       = "user"       // alice, acting on her own server
	otherUser    = "other user" // bob, acting on alice's
	asAdmin      = "admin"      // carol
	apiToken     = "API token"  // alice's token
	revokedToken = "revoked token"
)

var identities = []string{anonymous, asUser, otherUser, asAdmin, apiToken, revokedToken}

// route is one page or API call, with the status each identity gets.
type route struct {
	method, path string
	form         url.Values // for page posts, besides csrf
	body         string     // for API posts
	want         map[string]int
}

// TestAuthorization runs every page route and API call as every kind of
// caller. Alice's server runs throughout, so "not found" is about who
// asks, never about what exists.
func TestAuthorization(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = "small"
	tp.servers.running["bob"] = ""
	alice := tp.signIn(t, "alice", alicePassword)
	bob := tp.signIn(t, "bob", bobPassword)
	carol := tp.signIn(t, "carol", carolPassword)
	token := tp.makeToken(t, alice)
	revoked := tp.makeToken(t, alice)
	tp.revoke(t, "alice", alice) // the newest: revoked

	login := http.StatusSeeOther // a page sends the anonymous to /login
	pages := []route{
		{method: "GET", path: "/", want: map[string]int{asUser: 200, otherUser: 200, asAdmin: 200}},
		{method: "GET", path: "/team", want: map[string]int{asUser: 403, otherUser: 403, asAdmin: 200}},
		{method: "GET", path: "/audit", want: map[string]int{asUser: 200, otherUser: 200, asAdmin: 200}},
		{method: "GET", path: "/tokens", want: map[string]int{asUser: 200, otherUser: 200, asAdmin: 200}},
		{method: "POST", path: "/tokens", form: url.Values{"name": {"x"}}, want: map[string]int{asUser: 200, otherUser: 200, asAdmin: 200}},
		{method: "POST", path: "/tokens/999/revoke", want: map[string]int{asUser: 404, otherUser: 404, asAdmin: 404}},
		{method: "POST", path: "/servers/alice/save", want: map[string]int{asUser: 303, otherUser: 404, asAdmin: 303}},
		{method: "POST", path: "/servers/alice/extend", form: url.Values{"for": {"2h"}}, want: map[string]int{asUser: 303, otherUser: 404, asAdmin: 303}},
		{method: "POST", path: "/servers/alice/open", want: map[string]int{asUser: 200, otherUser: 404, asAdmin: 403}},
		{method: "GET", path: "/servers/alice/events", want: map[string]int{asUser: 404, otherUser: 404, asAdmin: 404}},
		{method: "POST", path: "/servers/alice/start", form: url.Values{"size": {"small"}}, want: map[string]int{asUser: 303, otherUser: 404, asAdmin: 303}},
		{method: "POST", path: "/servers/bob/stop", want: map[string]int{asUser: 404, otherUser: 303, asAdmin: 303}},
		{method: "POST", path: "/logout", want: map[string]int{asUser: 303, otherUser: 303, asAdmin: 303}},
	}
	for _, rt := range pages {
		rt.want[anonymous], rt.want[apiToken], rt.want[revokedToken] = login, login, login
	}
	unauth := http.StatusUnauthorized // the API takes tokens only
	apis := []route{
		{method: "GET", path: "/api/v1/me", want: map[string]int{apiToken: 200}},
		{method: "GET", path: "/metrics", want: map[string]int{apiToken: 403}}, // alice is no admin
		{method: "GET", path: "/api/v1/servers", want: map[string]int{apiToken: 200}},
		{method: "GET", path: "/api/v1/servers/alice", want: map[string]int{apiToken: 200}},
		{method: "GET", path: "/api/v1/servers/bob", want: map[string]int{apiToken: 404}},
		{method: "POST", path: "/api/v1/servers/bob/stop", body: `{}`, want: map[string]int{apiToken: 404}},
		{method: "POST", path: "/api/v1/servers/bob/save", body: `{}`, want: map[string]int{apiToken: 404}},
		{method: "POST", path: "/api/v1/servers/alice/save", body: `{"message":"m"}`, want: map[string]int{apiToken: 200}},
		{method: "POST", path: "/api/v1/servers/alice/extend", body: `{"for":"1h"}`, want: map[string]int{apiToken: 200}},
		{method: "POST", path: "/api/v1/servers/alice/start", body: `{"size":"small"}`, want: map[string]int{apiToken: 200}},
	}
	for _, rt := range apis {
		for _, id := range identities {
			if _, ok := rt.want[id]; !ok {
				rt.want[id] = unauth
			}
		}
	}

	browsers := map[string]browser{asUser: alice, otherUser: bob, asAdmin: carol}
	for _, rt := range append(pages, apis...) {
		for _, id := range identities {
			t.Run(rt.method+" "+rt.path+" as "+id, func(t *testing.T) {
				var r *http.Request
				if strings.HasPrefix(rt.path, "/api/") || rt.path == "/metrics" {
					r = httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
				} else if rt.method == "POST" {
					form := url.Values{}
					for k, v := range rt.form {
						form[k] = v
					}
					if b, ok := browsers[id]; ok {
						form.Set("csrf", b.csrf)
					}
					r = formPost(rt.path, form)
				} else {
					r = httptest.NewRequest(rt.method, rt.path, nil)
				}
				switch id {
				case apiToken:
					r.Header.Set("Authorization", "Bearer "+token)
				case revokedToken:
					r.Header.Set("Authorization", "Bearer "+revoked)
				case anonymous:
				default:
					r.Header.Set("Cookie", browsers[id].cookie)
				}
				resp := tp.do(r)
				for _, u := range []string{"alice", "bob"} { // one start or stop at a time
					if o := tp.p.operation(u); o != nil {
						o.wait(t.Context())
					}
				}
				if want := rt.want[id]; resp.StatusCode != want {
					t.Errorf("status %d, want %d; body: %.300s", resp.StatusCode, want, readBody(t, resp))
				}
				if rt.path == "/logout" && resp.StatusCode == 303 && id != anonymous && id != apiToken && id != revokedToken {
					// Signed out for real: sign in again for the next rows.
					switch id {
					case asUser:
						browsers[id] = tp.signIn(t, "alice", alicePassword)
					case otherUser:
						browsers[id] = tp.signIn(t, "bob", bobPassword)
					case asAdmin:
						browsers[id] = tp.signIn(t, "carol", carolPassword)
					}
				}
			})
		}
	}
	// A wait for the starts the table began, so none outlives the test.
	for _, u := range []string{"alice", "bob"} {
		if o := tp.p.operation(u); o != nil {
			o.wait(t.Context())
		}
	}
}

// revoke revokes user's newest token on the Tokens page, signed in as b.
func (tp *testPortal) revoke(t *testing.T, user string, b browser) {
	t.Helper()
	ts, err := tp.p.store.tokens(t.Context(), user)
	if err != nil || len(ts) == 0 {
		t.Fatalf("tokens: %v", err)
	}
	// The newest is tok (made last).
	r := formPost("/tokens/"+itoa(ts[0].ID)+"/revoke", url.Values{"csrf": {b.csrf}})
	r.Header.Set("Cookie", b.cookie)
	if resp := tp.do(r); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// A person sees their own server only, by page and by API; an admin sees
// everyone's.
func TestVisibility(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["alice"] = "small"
	tp.servers.running["bob"] = ""
	alice := tp.signIn(t, "alice", alicePassword)
	carol := tp.signIn(t, "carol", carolPassword)
	list := func(tok string) []string {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/servers", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		var out []struct{ User string }
		if err := json.Unmarshal([]byte(readBody(t, tp.do(r))), &out); err != nil {
			t.Fatal(err)
		}
		var users []string
		for _, s := range out {
			users = append(users, s.User)
		}
		sort.Strings(users)
		return users
	}
	if got := list(tp.makeToken(t, alice)); strings.Join(got, ",") != "alice" {
		t.Errorf("alice's API list: %q, want only alice", got)
	}
	if got := list(tp.makeToken(t, carol)); strings.Join(got, ",") != "alice,bob" {
		t.Errorf("the admin's API list: %q, want alice and bob", got)
	}
	if page := pageBody(t, tp, "/", alice.cookie); strings.Contains(page, "bob") {
		t.Errorf("alice's page mentions bob")
	}
	// Her attempt on bob's server is refused, and in the audit log.
	r := httptest.NewRequest(http.MethodPost, "/api/v1/servers/bob/stop", strings.NewReader(`{}`))
	r.Header.Set("Authorization", "Bearer "+tp.makeToken(t, alice))
	if resp := tp.do(r); resp.StatusCode != http.StatusNotFound {
		t.Errorf("alice stopping bob's: %d", resp.StatusCode)
	}
	log, err := tp.p.store.auditLog(t.Context(), "", 10)
	if err != nil || len(log) == 0 || log[0].User != "alice" || log[0].Action != "stop" || log[0].Target != "bob" || !strings.HasPrefix(log[0].Result, "refused") {
		t.Errorf("audit log after the refusal: %+v, %v", log, err)
	}
	team := pageBody(t, tp, "/team", carol.cookie)
	for _, want := range []string{"alice", "bob", "$1.50"} {
		if !strings.Contains(team, want) {
			t.Errorf("the Team page lacks %q", want)
		}
	}
}

// The size picker starts at the size the person chose last, kept in the
// portal's per-user settings across restarts.
func TestLastSizeRemembered(t *testing.T) {
	tp := newTestPortal(t, nil)
	alice := tp.signIn(t, "alice", alicePassword)
	if page := pageBody(t, tp, "/", alice.cookie); strings.Contains(page, "selected") {
		t.Fatalf("a size is preselected before any start")
	}
	r := formPost("/servers/alice/start", url.Values{"csrf": {alice.csrf}, "size": {"small"}})
	r.Header.Set("Cookie", alice.cookie)
	if resp := tp.do(r); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	tp.p.operation("alice").wait(t.Context())
	tp.servers.running = map[string]string{} // stopped meanwhile, by idle
	tp.p.Close()
	tp.start(t)
	if page := pageBody(t, tp, "/", alice.cookie); !strings.Contains(page, "<option selected>small</option>") {
		t.Errorf("after a restart, the picker does not start at small")
	}
}

// An admin's stop keeps the save-first rule: when bob's work cannot be
// saved, his server keeps running, the API says 409, and Team says why.
func TestStopRefusedWhenUnsaved(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["bob"] = ""
	tp.servers.unsaved["bob"] = true
	carol := tp.signIn(t, "carol", carolPassword)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/servers/bob/stop", strings.NewReader(`{}`))
	r.Header.Set("Authorization", "Bearer "+tp.makeToken(t, carol))
	resp := tp.do(r)
	if body := readBody(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "did not reach the remote") {
		t.Errorf("API stop of unsaved work: %d %s, want 409 saying why", resp.StatusCode, body)
	}
	page := formPost("/servers/bob/stop", url.Values{"csrf": {carol.csrf}})
	page.Header.Set("Cookie", carol.cookie)
	tp.do(page)
	tp.p.operation("bob").wait(t.Context())
	team := pageBody(t, tp, "/team", carol.cookie)
	if !strings.Contains(team, "stop failed") || !strings.Contains(team, "did not reach the remote") {
		t.Errorf("the Team page does not say the stop failed and why")
	}
	if _, ok := tp.servers.running["bob"]; !ok {
		t.Errorf("bob's server was stopped with its work unsaved")
	}
}
