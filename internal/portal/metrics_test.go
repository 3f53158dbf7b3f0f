package portal

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestFleetMetrics: an admin's API token scrapes the fleet: servers by
// state, what the running ones cost, what people did (a refused sign-in,
// a start) and the throttles; no secret is in it. The cookie of a signed-in
// admin, a foreign Host and a POST get nothing.
func TestFleetMetrics(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["bob"] = "small"
	tp.do(formPost("/login", url.Values{"user": {"alice"}, "password": {"wrong"}}))
	alice := tp.signIn(t, "alice", alicePassword)
	start := formPost("/servers/alice/start", url.Values{"csrf": {alice.csrf}, "size": {"small"}})
	start.Header.Set("Cookie", alice.cookie)
	tp.do(start)
	if o := tp.p.operation("alice"); o != nil {
		o.wait(t.Context())
	}
	carol := tp.signIn(t, "carol", carolPassword)
	token := tp.makeToken(t, carol)

	scrape := func(mod func(*http.Request)) *http.Response {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		if mod != nil {
			mod(r)
		}
		return tp.do(r)
	}
	resp := scrape(nil)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin's scrape: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := families[name]
		if !ok {
			t.Fatalf("no %s in the scrape", name)
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
		t.Fatalf("no %s%v in the scrape", name, labels)
		return 0
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"spinbook_portal_servers", map[string]string{"state": "ready"}, 2},
		{"spinbook_portal_servers", map[string]string{"state": "failed"}, 0},
		{"spinbook_portal_server_cost_per_hour_dollars", map[string]string{"user": "alice", "size": "small"}, 1.5},
		{"spinbook_portal_actions_total", map[string]string{"action": "sign in", "result": "refused"}, 1},
		{"spinbook_portal_actions_total", map[string]string{"action": "start", "result": "ok"}, 1},
		{"spinbook_portal_throttled_total", map[string]string{"limit": "sign_in"}, 0},
	} {
		if got := value(tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for name, secret := range map[string]string{"a password": alicePassword, "the token": token, "a session": strings.SplitN(alice.cookie, "=", 2)[1]} {
		if strings.Contains(body, secret) {
			t.Errorf("%s is in the scrape", name)
		}
	}

	for name, tt := range map[string]struct {
		mod  func(*http.Request)
		want int
	}{
		"admin's cookie, no token": {func(r *http.Request) { r.Header.Del("Authorization"); r.Header.Set("Cookie", carol.cookie) }, http.StatusUnauthorized},
		"foreign Host":             {func(r *http.Request) { r.Host = "evil.example.com" }, http.StatusMisdirectedRequest},
		"POST":                     {func(r *http.Request) { r.Method = http.MethodPost }, http.StatusMethodNotAllowed},
	} {
		if got := scrape(tt.mod).StatusCode; got != tt.want {
			t.Errorf("%s: %d, want %d", name, got, tt.want)
		}
	}
	tp.revoke(t, "carol", carol)
	if got := scrape(nil).StatusCode; got != http.StatusUnauthorized {
		t.Errorf("a revoked admin token: %d, want 401", got)
	}
}
