package gateway

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestControl: paths under /spinbook/api/ go to Options.Control once the
// client is on the allowlist — no session, no cross-site check, since the
// handler checks its own bearer token — and never to Jupyter.
func TestControl(t *testing.T) {
	var calls atomic.Int64
	control := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusTeapot)
	})
	e := newEnv(t, func(o *Options) { o.Control = control })

	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
	}{
		{"status without a session", http.MethodGet, nil},
		{"save without a session", http.MethodPost, map[string]string{"Authorization": "Bearer x"}},
		{"save with a foreign Origin", http.MethodPost, map[string]string{"Origin": "http://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			r := httptest.NewRequest(tc.method, "/spinbook/api/save", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if resp := e.serve(r); resp.StatusCode != http.StatusTeapot || calls.Load() != before+1 {
				t.Errorf("%s = %d, want the control handler's answer", tc.name, resp.StatusCode)
			}
		})
	}

	t.Run("client not on the allowlist", func(t *testing.T) {
		before := calls.Load()
		r := httptest.NewRequest(http.MethodPost, "/spinbook/api/save", nil)
		r.RemoteAddr = "198.51.100.9:1234"
		if resp := e.serve(r); resp.StatusCode != http.StatusForbidden || calls.Load() != before {
			t.Errorf("from outside the allowlist = %d (handler called %d times), want 403 and no call", resp.StatusCode, calls.Load()-before)
		}
	})

	t.Run("without a Control handler", func(t *testing.T) {
		bare := newEnv(t, nil)
		cookie := bare.login(t)
		r := httptest.NewRequest(http.MethodGet, "/spinbook/api/status", nil)
		r.Header.Set("Cookie", cookie)
		if resp := bare.serve(r); resp.StatusCode != http.StatusNotFound || bare.up.requests.Load() != 0 {
			t.Errorf("GET /spinbook/api/status with no Control = %d (upstream saw %d), want 404 and nothing forwarded",
				resp.StatusCode, bare.up.requests.Load())
		}
	})
	if e.up.requests.Load() != 0 {
		t.Errorf("Jupyter saw %d control requests", e.up.requests.Load())
	}
}
