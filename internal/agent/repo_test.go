package agent

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
)

// TestControlAPINeedsTheToken: the control API answers only requests that
// carry the control token; a server without a repo has nothing to save.
func TestControlAPINeedsTheToken(t *testing.T) {
	const token = "control-token-5d1e"
	a := New(backend.AgentSpec{User: "alice", Workspace: t.TempDir(), ControlToken: token}, slog.New(slog.DiscardHandler), io.Discard)
	h := a.controlHandler()
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no token", http.MethodPost, "/spinbook/api/save", "", http.StatusUnauthorized},
		{"wrong token", http.MethodPost, "/spinbook/api/save", "Bearer control-token-5d1f", http.StatusUnauthorized},
		{"token as basic auth", http.MethodGet, "/spinbook/api/status", "Basic " + token, http.StatusUnauthorized},
		{"status", http.MethodGet, "/spinbook/api/status", "Bearer " + token, http.StatusOK},
		{"save", http.MethodPost, "/spinbook/api/save", "Bearer " + token, http.StatusOK},
		{"save by GET", http.MethodGet, "/spinbook/api/save", "Bearer " + token, http.StatusMethodNotAllowed},
		{"unknown", http.MethodGet, "/spinbook/api/nope", "Bearer " + token, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"message":"m"}`))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.want {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, rec.Code, tc.want, rec.Body)
			}
			if tc.name == "save" {
				var resp SaveResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Repo {
					t.Errorf("save without a repo = %s, want repo false", rec.Body)
				}
			}
		})
	}

	t.Run("no control token configured", func(t *testing.T) {
		a := New(backend.AgentSpec{User: "alice", Workspace: t.TempDir()}, slog.New(slog.DiscardHandler), io.Discard)
		r := httptest.NewRequest(http.MethodGet, "/spinbook/api/status", nil)
		r.Header.Set("Authorization", "Bearer ")
		rec := httptest.NewRecorder()
		a.controlHandler().ServeHTTP(rec, r)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("with no control token, an empty bearer = %d, want 401", rec.Code)
		}
	})
}
