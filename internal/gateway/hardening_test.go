package gateway

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLoginBackoff: past the burst, each failure in a row doubles the wait
// (up to maxBackoff); a success forgets the failures.
func TestLoginBackoff(t *testing.T) {
	e := newEnv(t, nil)
	attempt := func(password string) *http.Response {
		r := loginRequest(password, "/")
		r.RemoteAddr = "192.0.2.50:1"
		return e.serve(r)
	}
	for i := range clientBurst {
		if got := attempt("guess").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, got)
		}
	}
	// Each wait is the Retry-After of the refused attempt; after it, one
	// more failure, and the next wait is twice as long.
	var waits []string
	for range 8 {
		resp := attempt("guess")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want 429", resp.StatusCode)
		}
		ra := resp.Header.Get("Retry-After")
		waits = append(waits, ra)
		secs, _ := strconv.Atoi(ra)
		e.clock.Advance(time.Duration(secs) * time.Second)
		if got := attempt("guess").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("after waiting %ss: status %d, want 401", ra, got)
		}
	}
	want := []string{"10", "10", "20", "40", "80", "160", "300", "300"}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}

	// The right password, once the wait is over, resets everything.
	e.clock.Advance(maxBackoff)
	if got := attempt(testPassword).StatusCode; got != http.StatusSeeOther {
		t.Fatalf("right password: status %d, want 303", got)
	}
	e.clock.Advance(clientInterval * clientBurst)
	for i := range clientBurst {
		if got := attempt("guess").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("after a success, failure %d: status %d, want 401", i+1, got)
		}
	}
}

// TestLoginBackoffForgotten: failures an hour old no longer count.
func TestLoginBackoffForgotten(t *testing.T) {
	e := newEnv(t, nil)
	attempt := func() int {
		r := loginRequest("guess", "/")
		r.RemoteAddr = "192.0.2.51:1"
		return e.serve(r).StatusCode
	}
	for range clientBurst {
		attempt()
	}
	e.clock.Advance(clientInterval)
	if got := attempt(); got != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", got)
	}
	e.clock.Advance(backoffReset)
	for i := range clientBurst {
		if got := attempt(); got != http.StatusUnauthorized {
			t.Fatalf("an hour later, failure %d: status %d, want 401", i+1, got)
		}
	}
	if n := e.g.limiter.size(); n != 1 {
		t.Errorf("limiter tracks %d clients, want 1", n)
	}
}

// TestLoginNoUsername: the login has no user name; one sent (as password
// managers do) changes neither the work done nor the answer.
func TestLoginNoUsername(t *testing.T) {
	for _, user := range []string{"", "alice", "root", "nobody-at-all"} {
		t.Run(user, func(t *testing.T) {
			e := newEnv(t, nil)
			form := "username=" + user + "&password=guess&next=%2F"
			r := httptest.NewRequest(http.MethodPost, loginPath, strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp := e.serve(r)
			b := body(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, msgWrongPassword) {
				t.Errorf("status %d, want 401 Wrong password", resp.StatusCode)
			}
			if e.checks.Load() != 1 {
				t.Errorf("%d password checks, want 1", e.checks.Load())
			}
		})
	}
}

// TestProxyScrubsWhatJupyterLogs: Jupyter logs the URI and Referer of a
// failed request, so neither carries a query secret to it.
func TestProxyScrubsWhatJupyterLogs(t *testing.T) {
	e := newEnv(t, nil)
	cookie := e.login(t)
	tests := []struct {
		name        string
		target      string
		referer     []string
		wantQuery   string
		wantReferer []string
	}{
		{name: "referer query and fragment", target: "/api/contents",
			referer:     []string{"http://example.com/notebooks/a.ipynb?token=ref-secret#frag"},
			wantReferer: []string{"http://example.com/notebooks/a.ipynb"}},
		{name: "referer with user info", target: "/api/contents",
			referer:     []string{"http://user:pw@example.com/x?y=1"},
			wantReferer: []string{"http://example.com/x"}},
		{name: "unparsable referer", target: "/api/contents", referer: []string{"http://[::1/%zz"}},
		{name: "two referers", target: "/api/contents", referer: []string{"http://a/", "http://b/"}},
		{name: "token in the query", target: "/api/contents?type=notebook&token=q-secret&Token=x&content=1",
			wantQuery: "type=notebook&content=1"},
		{name: "escaped token name", target: "/api/contents?%74oken=q-secret", wantQuery: ""},
		{name: "other query kept byte for byte", target: "/api/contents?a=%2F&b=c%20d&c=", wantQuery: "a=%2F&b=c%20d&c="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.Header.Set("Cookie", cookie)
			if tt.referer != nil {
				r.Header["Referer"] = tt.referer
			}
			if got := e.serve(r).StatusCode; got != http.StatusOK {
				t.Fatalf("status %d", got)
			}
			up := e.up.lastRequest(t)
			if diff := cmp.Diff(tt.wantReferer, up.Header["Referer"]); diff != "" {
				t.Errorf("Referer (-want +got):\n%s", diff)
			}
			if up.URL.RawQuery != tt.wantQuery {
				t.Errorf("query %q, want %q", up.URL.RawQuery, tt.wantQuery)
			}
		})
	}
}

// TestProxyDropsHopByHopHeaders: headers meant for the hop to the gateway,
// and those the client names in Connection, do not reach Jupyter.
func TestProxyDropsHopByHopHeaders(t *testing.T) {
	e := newEnv(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/api/contents", nil)
	r.Header.Set("Cookie", e.login(t))
	r.Header.Set("Connection", "X-Hop-Secret, keep-alive")
	r.Header.Set("X-Hop-Secret", "hop")
	r.Header.Set("Keep-Alive", "timeout=5")
	r.Header.Set("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0")
	r.Header.Set("Proxy-Connection", "keep-alive")
	if got := e.serve(r).StatusCode; got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	up := e.up.lastRequest(t)
	for _, h := range []string{"X-Hop-Secret", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection"} {
		if v := up.Header.Get(h); v != "" {
			t.Errorf("Jupyter got %s: %q", h, v)
		}
	}
}
