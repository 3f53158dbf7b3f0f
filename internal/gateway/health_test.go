package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Behaviour 10: the health listener.
func TestHealth(t *testing.T) {
	tests := []struct {
		name     string
		ready    func(context.Context) bool
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "healthz", method: http.MethodGet, path: "/healthz", ready: never, wantCode: http.StatusOK, wantBody: `{"status":"ok"}`},
		{name: "ready", method: http.MethodGet, path: "/readyz", ready: always, wantCode: http.StatusOK, wantBody: `{"status":"ready"}`},
		{name: "starting", method: http.MethodGet, path: "/readyz", ready: never, wantCode: http.StatusServiceUnavailable, wantBody: `{"status":"starting"}`},
		{name: "nil ready", method: http.MethodGet, path: "/readyz", wantCode: http.StatusOK, wantBody: `{"status":"ready"}`},
		{name: "head", method: http.MethodHead, path: "/healthz", ready: always, wantCode: http.StatusOK},
		{name: "root", method: http.MethodGet, path: "/", ready: always, wantCode: http.StatusNotFound, wantBody: `{"status":"not found"}`},
		{name: "jupyter path", method: http.MethodGet, path: "/api/status", ready: always, wantCode: http.StatusNotFound, wantBody: `{"status":"not found"}`},
		{name: "login path", method: http.MethodGet, path: "/spinbook/login", ready: always, wantCode: http.StatusNotFound, wantBody: `{"status":"not found"}`},
		{name: "subpath", method: http.MethodGet, path: "/healthz/x", ready: always, wantCode: http.StatusNotFound, wantBody: `{"status":"not found"}`},
		{name: "post", method: http.MethodPost, path: "/healthz", ready: always, wantCode: http.StatusMethodNotAllowed, wantBody: `{"status":"method not allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			NewHealth(tt.ready).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			resp := rec.Result()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.method != http.MethodHead && string(b) != tt.wantBody+"\n" {
				t.Errorf("body %q, want %q", b, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
}

func TestHealthPassesRequestContext(t *testing.T) {
	type key struct{}
	var got any
	h := NewHealth(func(ctx context.Context) bool {
		got = ctx.Value(key{})
		return true
	})
	r := httptest.NewRequestWithContext(context.WithValue(t.Context(), key{}, "v"), http.MethodGet, "/readyz", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got != "v" {
		t.Errorf("ready got context value %v, want the request's", got)
	}
}

func always(context.Context) bool { return true }
func never(context.Context) bool  { return false }
