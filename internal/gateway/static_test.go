package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStaticFromGo: with a /static/ route (notebook 6's), GETs of files under /static/ are
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

	e := newEnv(t, func(o *Options) { o.Static = []StaticRoute{{Prefix: "/static/", Dirs: []string{static}}} })
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
	// Tornado's ten years, as notebook 6 and jupyter_server send it.
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=315360000" {
		t.Errorf("versioned Cache-Control = %q, want max-age=315360000", cc)
	}
	if exp, err := http.ParseTime(resp.Header.Get("Expires")); err != nil || time.Until(exp) < 9*365*24*time.Hour {
		t.Errorf("versioned Expires = %q, want ten years ahead", resp.Header.Get("Expires"))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("Content-Type = %q, want JavaScript", ct)
	}
	resp, _ = get(http.MethodGet, "/static/base/js/app.js", true)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("unversioned Cache-Control = %q, want no-cache (revalidate, as Jupyter does)", cc)
	}
	if exp := resp.Header.Get("Expires"); exp != "" {
		t.Errorf("unversioned Expires = %q, want none", exp)
	}
	r := httptest.NewRequest(http.MethodGet, "/static/base/js/app.js", nil)
	r.Header.Set("Cookie", cookie)
	r.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp := e.serve(r); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", resp.StatusCode)
	}
}

func TestStaticRoutesMustBeUsable(t *testing.T) {
	e := newEnv(t, nil) // its upstream; the other options below are valid
	dir := t.TempDir()
	tests := []struct {
		name  string
		route StaticRoute
		want  string
	}{
		{"missing dir", StaticRoute{Prefix: "/static/", Dirs: []string{filepath.Join(dir, "nope")}}, "static route /static/"},
		{"prefix without slashes", StaticRoute{Prefix: "static", Dirs: []string{dir}}, "must start and end with /"},
		{"unknown cache rule", StaticRoute{Prefix: "/static/", Dirs: []string{dir}, Cache: "forever"}, `unknown cache rule "forever"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{
				User: "alice", Upstream: e.g.upstream, CheckPassword: func(string) bool { return false },
				Static: []StaticRoute{tt.route},
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestStaticRoutesJupyterServer2: jupyter_server 2's routes, each with
// Jupyter's cache rule; the longest prefix alone decides (a /static/lab/
// file is never looked for under /static/), and a route's directories are
// searched in order (the user's labextensions before the system's).
func TestStaticRoutesJupyterServer2(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"server/favicons/favicon.ico":                       "server favicon",
		"server/lab/only-in-server-static.js":               "must not be served for /static/lab/",
		"lab/main.abc.js":                                   "lab main",
		"notebook/main.def.js":                              "notebook main",
		"user-ext/@x/ext/static/remoteEntry.1.js":           "user copy",
		"sys-ext/@x/ext/static/remoteEntry.1.js":            "system copy",
		"sys-ext/@x/ext/static/nested/chunk.js":             "nested chunk",
		"sys-ext/@x/ext/package.json":                       `{"name": "@x/ext"}`,
		"sys-ext/jupyterlab_pygments/static/style/index.js": "pygments",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	routes := []StaticRoute{
		{Prefix: "/static/", Dirs: []string{filepath.Join(root, "server")}},
		{Prefix: "/static/lab/", Dirs: []string{filepath.Join(root, "lab")}, Cache: CacheImmutable},
		{Prefix: "/static/notebook/", Dirs: []string{filepath.Join(root, "notebook")}, Cache: CacheImmutable},
		{Prefix: "/lab/extensions/", Dirs: []string{filepath.Join(root, "user-ext"), filepath.Join(root, "sys-ext")}, Cache: CacheImmutableStatic},
	}
	e := newEnv(t, func(o *Options) { o.Static = routes })
	cookie := e.login(t)

	const immutable = "public, max-age=31536000, immutable"
	tests := []struct {
		target      string
		wantBody    string // "" = goes to Jupyter
		wantCache   string
		wantExpires bool
	}{
		{"/static/lab/main.abc.js?v=abc", "lab main", immutable, true},
		{"/static/lab/main.abc.js", "lab main", immutable, false},
		{"/static/lab/only-in-server-static.js", "", "", false},
		{"/static/notebook/main.def.js", "notebook main", immutable, false},
		{"/static/favicons/favicon.ico", "server favicon", "no-cache", false},
		{"/static/favicons/favicon.ico?v=1", "server favicon", "max-age=315360000", true},
		{"/lab/extensions/@x/ext/static/remoteEntry.1.js?v=1", "user copy", immutable, true},
		{"/lab/extensions/@x/ext/static/nested/chunk.js", "nested chunk", immutable, false},
		{"/lab/extensions/@x/ext/package.json", `{"name": "@x/ext"}`, "no-cache", false},
		{"/lab/extensions/@x/ext/package.json?v=1", `{"name": "@x/ext"}`, "no-cache", true},
		{"/lab/extensions/jupyterlab_pygments/static/style/index.js", "pygments", immutable, false},
		{"/lab/extensions/@x/missing.js", "", "", false},
		{"/lab/extensions/../lab/main.abc.js", "", "", false},
		{"/lab/api/settings", "", "", false},
		{"/lab", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			before := e.up.requests.Load()
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.Header.Set("Cookie", cookie)
			resp := e.serve(r)
			got := body(t, resp)
			fromGo := e.up.requests.Load() == before
			if tt.wantBody == "" {
				if fromGo {
					t.Fatalf("answered by the gateway (%d %q), want it passed to Jupyter", resp.StatusCode, got)
				}
				return
			}
			if !fromGo || resp.StatusCode != http.StatusOK || got != tt.wantBody {
				t.Fatalf("= %d %q (from the gateway: %v), want 200 %q from the gateway", resp.StatusCode, got, fromGo, tt.wantBody)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", cc, tt.wantCache)
			}
			if has := resp.Header.Get("Expires") != ""; has != tt.wantExpires {
				t.Errorf("Expires = %q, want one: %v", resp.Header.Get("Expires"), tt.wantExpires)
			}
			if resp.Header.Get("Etag") != "" {
				t.Errorf("Etag = %q; Jupyter sends none for static files", resp.Header.Get("Etag"))
			}
		})
	}
}
