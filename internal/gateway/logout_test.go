package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestLogoutGET: a GET of /logout, where Jupyter's Logout button leads,
// ends no session, whoever sent it: it is a page whose form posts to the
// logout. Only a navigation from this origin (the button) gets the script
// that submits the form at once; any other site gets the form alone, and a
// cross-site POST is refused.
func TestLogoutGET(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		header   map[string]string
		wantCode int
		wantAuto bool
	}{
		{"jupyter's button", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK, true},
		{"another site's link", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusOK, false},
		{"another site's image", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"}, http.StatusOK, false},
		{"a sibling subdomain", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusOK, false},
		{"typed or bookmarked", http.MethodGet, map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK, false},
		{"no fetch metadata", http.MethodGet, nil, http.StatusOK, false},
		{"head", http.MethodHead, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK, false},
		{"cross-site post", http.MethodPost, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, false},
		{"cross-site post by origin", http.MethodPost, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, false},
		{"cross-site post to our path", http.MethodPost, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, false},
		{"put", http.MethodPut, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cookie := e.login(t)
			path := "/logout"
			if tt.name == "cross-site post to our path" {
				path = logoutPath
			}
			r := httptest.NewRequest(tt.method, path, nil)
			r.Header.Set("Cookie", cookie)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			resp := e.serve(r)
			page := body(t, resp)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if got := apiStatus(e, cookie); got != http.StatusOK {
				t.Errorf("the session after %s %s: API status %d, want 200 (still logged in)", tt.method, path, got)
			}
			if c := resp.Header.Get("Set-Cookie"); c != "" {
				t.Errorf("Set-Cookie %q", c)
			}
			if tt.wantCode != http.StatusOK || tt.method == http.MethodHead {
				return
			}
			if !strings.Contains(page, `<form id="logout" method="post" action="/spinbook/logout">`) {
				t.Errorf("no logout form in the page:\n%s", page)
			}
			if got := strings.Contains(page, "<script>"); got != tt.wantAuto {
				t.Errorf("page submits itself: %v, want %v", got, tt.wantAuto)
			}
		})
	}
}

// TestLogoutPageScriptAllowed: the policy of the logout page admits its
// script, by hash, and no other.
func TestLogoutPageScriptAllowed(t *testing.T) {
	e := newEnv(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/logout", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	resp := e.serve(r)
	m := regexp.MustCompile(`<script>(.*?)</script>`).FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatal("no script in the page")
	}
	sum := sha256.Sum256([]byte(m[1]))
	want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasSuffix(csp, "; "+want) || !strings.HasPrefix(csp, pagePolicy) || strings.Count(csp, "script-src") != 1 {
		t.Errorf("policy %q, want %q plus %q", csp, pagePolicy, want)
	}
}
