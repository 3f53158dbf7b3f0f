package portal

import (
	"crypto/rand"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/portal/oidctest"
)

// oidcPortal is a portal served over HTTP that signs people in at a real
// OpenID provider (oidctest) with allowed_groups [data] and admin_groups
// [data-admins]: alice is an admin, bob a user, carol not let in.
func oidcPortal(t *testing.T) (*testPortal, *oidctest.Provider, *httptest.Server, string) {
	t.Helper()
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	clientSecret := "canary-client-secret-" + rand.Text()
	op := oidctest.Start(t, oidctest.Client{ID: "spinbook-portal", Secret: clientSecret, RedirectURIs: []string{srv.URL + "/oidc/callback"}})
	oc := config.OIDC{Issuer: op.Issuer, ClientID: "spinbook-portal", ClientSecret: "${env:OIDC_SECRET}", UserClaim: "email", GroupsClaim: "groups",
		AllowedGroups: []string{"data"}, AdminGroups: []string{"data-admins"}}
	o, err := NewOIDC(t.Context(), oc, clientSecret, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tp := newTestPortal(t, func(c *config.Config) { c.Portal.Users = nil; c.Portal.OIDC = oc })
	tp.p.Close() // started without OIDC: start afresh with it
	tp.oidc, tp.dir = o, t.TempDir()
	tp.out.Reset()
	tp.start(t)
	handler = tp.p
	return tp, op, srv, clientSecret
}

// signInOIDC signs account in through the provider as a browser would and
// returns the browser's client, and the callback URL it delivered.
func signInOIDC(t *testing.T, op *oidctest.Provider, srv *httptest.Server, account string) (*http.Client, *url.URL, *http.Response) {
	return signInOIDCDelivered(t, op, srv, account, nil)
}

// signInOIDCDelivered is signInOIDC with the provider's redirect delivered
// by another client (nil: the browser that began).
func signInOIDCDelivered(t *testing.T, op *oidctest.Provider, srv *httptest.Server, account string, deliver *http.Client) (*http.Client, *url.URL, *http.Response) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(srv.URL + "/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(auth, op.Issuer) {
		t.Fatalf("/oidc/login: %d to %q, want 302 to the provider", resp.StatusCode, auth)
	}
	u, _ := url.Parse(auth)
	if q := u.Query(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Errorf("the authorization request lacks PKCE S256, nonce or state: %s", auth)
	}
	back, err := op.Login(t.Context(), auth, account, op.Password(t, account))
	if err != nil {
		t.Fatalf("login at the provider: %v", err)
	}
	if deliver == nil {
		deliver = hc
	}
	resp, err = deliver.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	return hc, back, resp
}

func TestOIDCSignIn(t *testing.T) {
	tp, op, srv, clientSecret := oidcPortal(t)
	for _, c := range []struct {
		account string
		want    int
		page    string // on /, after
	}{
		{"alice", http.StatusSeeOther, "alice (admin)"},
		{"bob", http.StatusSeeOther, "bob"},
		{"carol", http.StatusForbidden, ""},
	} {
		t.Run(c.account, func(t *testing.T) {
			hc, back, resp := signInOIDC(t, op, srv, c.account)
			body := readBody(t, resp)
			if resp.StatusCode != c.want {
				t.Fatalf("callback: %d, want %d: %.300s", resp.StatusCode, c.want, body)
			}
			if c.want != http.StatusSeeOther {
				if !strings.Contains(body, "not in a group") {
					t.Errorf("the refusal does not say why: %.300s", body)
				}
				return
			}
			home, err := hc.Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			page := readBody(t, home)
			if home.StatusCode != 200 || !strings.Contains(page, c.page) {
				t.Errorf("GET / after sign-in: %d, want it to show %q", home.StatusCode, c.page)
			}
			if c.account == "bob" && strings.Contains(page, "(admin)") {
				t.Errorf("bob is shown as an admin")
			}
			// The callback works once: replayed, even by the same browser, it is refused.
			again, err := hc.Get(back.String())
			if err != nil {
				t.Fatal(err)
			}
			again.Body.Close()
			if again.StatusCode != http.StatusBadRequest {
				t.Errorf("replayed callback: %d, want 400", again.StatusCode)
			}
		})
	}
	// A callback delivered to another browser (login CSRF) is refused.
	other := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, back, resp := signInOIDCDelivered(t, op, srv, "bob", other)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback %s in a browser that did not start it: %d, want 400", back.Path, resp.StatusCode)
	}
	if strings.Contains(tp.logs.String(), clientSecret) {
		t.Errorf("the OIDC client secret is in the log")
	}
	for _, a := range []string{"alice", "bob", "carol"} {
		if strings.Contains(tp.logs.String(), op.Password(t, a)) {
			t.Errorf("%s's password is in the portal's log", a)
		}
	}
	if strings.Contains(tp.out.String(), "password") {
		t.Errorf("with OIDC, the portal made an admin login: %q", tp.out.String())
	}
}

func TestOIDCClaims(t *testing.T) {
	o := &OIDC{cfg: config.OIDC{UserClaim: "email", GroupsClaim: "groups", AllowedGroups: []string{"data"}, AdminGroups: []string{"admins"}}}
	for _, c := range []struct {
		name   string
		claims map[string]any
		user   string
		admin  bool
		refuse bool
	}{
		{"member", map[string]any{"email": "Alice@Example.com", "groups": []any{"data"}}, "alice", false, false},
		{"admin outside allowed", map[string]any{"email": "root@example.com", "groups": []any{"admins"}}, "root", true, false},
		{"not allowed", map[string]any{"email": "eve@example.com", "groups": []any{"other"}}, "", false, true},
		{"no groups", map[string]any{"email": "eve@example.com"}, "", false, true},
		{"unverified email", map[string]any{"email": "eve@example.com", "email_verified": false, "groups": []any{"data"}}, "", false, true},
		{"name not a user name", map[string]any{"email": "jean.luc@example.com", "groups": []any{"data"}}, "", false, true},
		{"no email", map[string]any{"groups": []any{"data"}}, "", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			user, admin, err := o.mapClaims(c.claims)
			if (err != nil) != c.refuse || user != c.user || admin != c.admin {
				t.Errorf("mapClaims = %q, %t, %v; want %q, %t, refused %t", user, admin, err, c.user, c.admin, c.refuse)
			}
		})
	}
}
