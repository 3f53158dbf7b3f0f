package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestOnActivityCountsPeopleNotPolling: navigations and writes are
// activity; Jupyter's polling of its REST API and websocket opens are not.
func TestOnActivityCountsPeopleNotPolling(t *testing.T) {
	var n atomic.Int64
	e := newEnv(t, func(o *Options) { o.OnActivity = func() { n.Add(1) } })
	cookie := e.login(t)
	tests := []struct {
		name, method, path string
		html, upgrade      bool
		want               bool
	}{
		{"open the tree", http.MethodGet, "/tree", true, false, true},
		{"open a notebook", http.MethodGet, "/notebooks/a.ipynb", true, false, true},
		{"save a notebook", http.MethodPut, "/api/contents/a.ipynb", false, false, true},
		{"start a kernel", http.MethodPost, "/api/kernels", false, false, true},
		{"poll kernels", http.MethodGet, "/api/kernels", false, false, false},
		{"poll sessions", http.MethodGet, "/api/sessions", false, false, false},
		{"poll terminals", http.MethodGet, "/api/terminals", false, false, false},
		{"poll contents", http.MethodGet, "/api/contents/sub/dir", false, false, false},
		{"poll status", http.MethodGet, "/api/status", false, false, false},
		{"poll metrics", http.MethodGet, "/api/metrics/v1", false, false, false},
		{"lab workspace poll", http.MethodGet, "/lab/api/workspaces/default", false, false, false},
		{"static asset", http.MethodGet, "/static/base/images/logo.png", false, false, false},
		{"websocket open", http.MethodGet, "/api/kernels/k1/channels", false, true, false},
		// JupyterLab 4 and Notebook 7 on jupyter_server 2, as their logs
		// show an open page's requests.
		{"lab: open the app", http.MethodGet, "/lab", true, false, true},
		{"lab: open a notebook", http.MethodGet, "/lab/tree/a.ipynb", true, false, true},
		{"notebook 7: open a notebook", http.MethodGet, "/notebooks/a.ipynb", true, false, true},
		{"lab: event stream", http.MethodGet, "/api/events/subscribe", false, true, false},
		{"lab: identity", http.MethodGet, "/api/me", false, false, false},
		{"lab: kernelspecs", http.MethodGet, "/api/kernelspecs", false, false, false},
		{"lab: kernel logo", http.MethodGet, "/kernelspecs/python3/logo-svg.svg", false, false, false},
		{"lab: file browser listing", http.MethodGet, "/api/contents", false, false, false},
		{"lab: checkpoints listing", http.MethodGet, "/api/contents/a.ipynb/checkpoints", false, false, false},
		{"lab: layout saved", http.MethodPut, "/lab/api/workspaces/default", false, false, false},
		{"lab: settings", http.MethodGet, "/lab/api/settings", false, false, false},
		{"lab: translations", http.MethodGet, "/lab/api/translations/default", false, false, false},
		{"lab: theme", http.MethodGet, "/lab/api/themes/@jupyterlab/theme-light-extension/index.css", false, false, false},
		{"lab: lsp status", http.MethodGet, "/lsp/status", false, false, false},
		{"lab: bundle", http.MethodGet, "/static/lab/main.efd36b46f3b45eb8.js", false, false, false},
		{"lab: prebuilt extension", http.MethodGet, "/lab/extensions/@jupyter-notebook/lab-extension/static/remoteEntry.js", false, false, false},
		{"notebook 7: bundle", http.MethodGet, "/static/notebook/main.a7084e35c3230587.js", false, false, false},
		{"lab: change a setting", http.MethodPut, "/lab/api/settings/@jupyterlab/apputils-extension:themes", false, false, true},
		{"lab: start a session", http.MethodPost, "/api/sessions", false, false, true},
		{"lab: rename a session", http.MethodPatch, "/api/sessions/s1", false, false, true},
		{"lab: save a checkpoint", http.MethodPost, "/api/contents/a.ipynb/checkpoints", false, false, true},
		{"lab: interrupt a kernel", http.MethodPost, "/api/kernels/k1/interrupt", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := n.Load()
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader("{}"))
			r.Header.Set("Cookie", cookie)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			if tt.html {
				r.Header.Set("Accept", "text/html,application/xhtml+xml")
			}
			if tt.upgrade {
				r.Header.Set("Upgrade", "websocket")
				r.Header.Set("Connection", "Upgrade")
				r.Header.Set("Origin", "http://"+r.Host)
			}
			e.serve(r).Body.Close()
			if got := n.Load() > before; got != tt.want {
				t.Errorf("%s %s: activity %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
	t.Run("no session, no activity", func(t *testing.T) {
		before := n.Load()
		e.serve(httptest.NewRequest(http.MethodGet, "/tree", nil)).Body.Close()
		if n.Load() != before {
			t.Error("a request without a session counted as activity")
		}
	})
}

// TestBannerInHTMLPages: the banner goes into uncompressed HTML pages,
// escaped, with a Content-Length that matches; anything else passes as is.
func TestBannerInHTMLPages(t *testing.T) {
	var acceptEncoding atomic.Value
	page := `<!DOCTYPE html><html><head><title>t</title></head><body class="notebook">content</body></html>`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptEncoding.Store(r.Header.Get("Accept-Encoding"))
		switch r.URL.Path {
		case "/gz":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "not really brotli")
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"body":"<body>"}`)
		default:
			w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			w.Header().Set("Etag", `"abc"`)
			if r.Header.Get("If-None-Match") == `"abc"` { // as Tornado answers a reload
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, page)
		}
	}))
	t.Cleanup(up.Close)
	var text atomic.Value
	text.Store("")
	e := newEnv(t, func(o *Options) {
		o.Upstream, _ = url.Parse(up.URL)
		o.Banner = func() string { return text.Load().(string) }
	})
	cookie := e.login(t)
	get := func(path string, header ...string) (*http.Response, string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Cookie", cookie)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		if path != "/gz" { // a fetch that takes a compressed page as it is
			r.Header.Set("Accept", "text/html")
		}
		r.Header.Set("Accept-Encoding", "gzip, br")
		resp := e.serve(r)
		return resp, body(t, resp)
	}

	if _, b := get("/tree"); b != page {
		t.Errorf("with no warning the page changed: %q", b)
	}
	if resp, _ := get("/tree", "If-None-Match", `"abc"`); resp.StatusCode != http.StatusNotModified {
		t.Errorf("a reload with no warning = %s, want Jupyter's 304", resp.Status)
	}
	if ae := acceptEncoding.Load(); ae == "gzip, br" {
		t.Errorf("a navigation reached Jupyter with the browser's Accept-Encoding %q; want it dropped (Go's transport then decompresses), so the page can take a banner", ae)
	}

	text.Store(`This server stops at 10:00:00 UTC <soon> & saves`)
	resp, b := get("/tree")
	want := `<body class="notebook"><div id="spinbook-banner"`
	if !strings.Contains(b, want) || !strings.Contains(b, "This server stops at 10:00:00 UTC &lt;soon&gt; &amp; saves "+bannerHide+"</div>content") {
		t.Errorf("page with a warning = %q, want the escaped banner right after <body>, with its Hide button", b)
	}
	if !strings.Contains(bannerHide, `onclick="this.parentNode.remove()"`) || !strings.Contains(bannerHide, ">Hide</button>") {
		t.Errorf("the banner's button %q does not take the banner off the page", bannerHide)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(b)) {
		t.Errorf("Content-Length %s, body %d bytes", cl, len(b))
	}
	if resp.Header.Get("Etag") != "" {
		t.Error("the rewritten page keeps Jupyter's ETag")
	}
	// A reload revalidates the page the browser cached before the warning;
	// Jupyter's 304 would keep that page, without the banner.
	if resp, b := get("/tree", "If-None-Match", `"abc"`); resp.StatusCode != http.StatusOK || !strings.Contains(b, want) {
		t.Errorf("a reload in the warning = %s %q, want 200 with the banner", resp.Status, b)
	}

	if _, b := get("/gz"); b != "not really brotli" {
		t.Errorf("a compressed page was rewritten: %q", b)
	}
	if _, b := get("/json"); b != `{"body":"<body>"}` {
		t.Errorf("JSON was rewritten: %q", b)
	}
}
