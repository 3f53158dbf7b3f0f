package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticFromGo: with StaticDir set, GETs of files under /static/ are
// answered by the gateway itself (Jupyter sees nothing), only with a
// session, never from outside the directory, and anything else still goes
// to Jupyter.
func TestStaticFromGo(t *testing.T) {
	root := t.TempDir()
	static := filepath.Join(root, "static")
	os.MkdirAll(filepath.Join(static, "base", "js"), 0o755)
	os.MkdirAll(filepath.Join(static, "custom"), 0o755)
	os.WriteFile(filepath.Join(static, "base", "js", "app.js"), []byte("console.log('app')"), 0o644)
	os.WriteFile(filepath.Join(static, "custom", "custom.css"), []byte("/* from the package */"), 0o644)
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("outside-the-static-dir"), 0o644)
	os.Symlink(filepath.Join(root, "secret.txt"), filepath.Join(static, "link.txt"))

	e := newEnv(t, func(o *Options) { o.StaticDir = static })
	cookie := e.login(t)
	get := func(method, target string, withSession bool) (*http.Response, string) {
		t.Helper()
		r := httptest.NewRequest(method, target, nil)
		if withSession {
			r.Header.Set("Cookie", cookie)
		}
		resp := e.serve(r)
		return resp, body(t, resp)
	}

	tests := []struct {
		name       string
		method     string
		target     string
		session    bool
		wantStatus int
		wantBody   string // "" = don't care
		fromGo     bool   // upstream must see nothing
	}{
		{"versioned file", http.MethodGet, "/static/base/js/app.js?v=123", true, 200, "console.log('app')", true},
		{"plain file", http.MethodGet, "/static/base/js/app.js", true, 200, "console.log('app')", true},
		{"head", http.MethodHead, "/static/base/js/app.js", true, 200, "", true},
		{"no session", http.MethodGet, "/static/base/js/app.js", false, 401, "", true},
		{"missing file goes to Jupyter", http.MethodGet, "/static/base/js/other.js", true, 200, "hello from jupyter", false},
		{"custom goes to Jupyter", http.MethodGet, "/static/custom/custom.css", true, 200, "hello from jupyter", false},
		{"directory goes to Jupyter", http.MethodGet, "/static/base/", true, 200, "hello from jupyter", false},
		{"post goes to Jupyter", http.MethodPost, "/static/base/js/app.js", true, 200, "hello from jupyter", false},
		{"dot-dot", http.MethodGet, "/static/../secret.txt", true, 200, "hello from jupyter", false},
		{"encoded dot-dot", http.MethodGet, "/static/%2e%2e/secret.txt", true, 200, "hello from jupyter", false},
		{"symlink out", http.MethodGet, "/static/link.txt", true, 200, "hello from jupyter", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.requests.Load()
			resp, got := get(tt.method, tt.target, tt.session)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.target, resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != "" && got != tt.wantBody {
				t.Fatalf("%s %s body = %q, want %q", tt.method, tt.target, got, tt.wantBody)
			}
			if strings.Contains(got, "outside-the-static-dir") {
				t.Fatalf("%s %s served a file outside the static dir", tt.method, tt.target)
			}
			if reached := e.up.requests.Load() != before; reached == tt.fromGo {
				t.Fatalf("%s %s: reached Jupyter = %v, want %v", tt.method, tt.target, reached, !tt.fromGo)
			}
		})
	}

	resp, _ := get(http.MethodGet, "/static/base/js/app.js?v=1", true)
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=31536000" {
		t.Errorf("versioned Cache-Control = %q", cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("Content-Type = %q, want JavaScript", ct)
	}
	resp, _ = get(http.MethodGet, "/static/base/js/app.js", true)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("unversioned Cache-Control = %q, want no-cache (revalidate, as Jupyter does)", cc)
	}
	r := httptest.NewRequest(http.MethodGet, "/static/base/js/app.js", nil)
	r.Header.Set("Cookie", cookie)
	r.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp := e.serve(r); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", resp.StatusCode)
	}
}

func TestStaticDirMustExist(t *testing.T) {
	e := newEnv(t, nil) // its upstream; the other options below are valid
	_, err := New(Options{
		User: "alice", Upstream: e.g.upstream, CheckPassword: func(string) bool { return false },
		StaticDir: filepath.Join(t.TempDir(), "nope"),
	})
	if err == nil || !strings.Contains(err.Error(), "static dir") {
		t.Fatalf("New with a missing static dir = %v, want an error naming it", err)
	}
}
