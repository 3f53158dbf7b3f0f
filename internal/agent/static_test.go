package agent

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/gateway"
)

// countingTransport counts the requests that reach Jupyter.
type countingTransport struct {
	http.RoundTripper
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// TestStaticMatchesRealJupyterServer2: in front of the venv's JupyterLab 4
// (and so Notebook 7, whose extension it loads), the gateway serves
// jupyter_server 2's static routes itself — /static/lab/, /static/notebook/,
// /lab/extensions/, /static/ — with exactly the bytes, Cache-Control and
// Expires (present or not) that Jupyter sends for the same URL, and leaves
// what it does not have to Jupyter.
func TestStaticMatchesRealJupyterServer2(t *testing.T) {
	venv := testVenv(t)
	cmd, found, err := findJupyter(nil, venv, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := probe(t.Context(), cmd, found, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prefixes := map[string]gateway.StaticRoute{}
	for _, r := range in.Static {
		prefixes[r.Prefix] = r
	}
	for _, p := range []string{"/static/", "/static/lab/", "/static/notebook/", "/lab/extensions/"} {
		if _, ok := prefixes[p]; !ok {
			t.Fatalf("probe learned no static route %s: %+v", p, in.Static)
		}
	}

	j, err := startJupyter(in, t.TempDir(), t.TempDir(), randomHex(16), nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.stop(5 * time.Second) })
	direct := &http.Client{Transport: j.transport(), Timeout: 10 * time.Second}
	t.Cleanup(direct.CloseIdleConnections)
	fetchDirect := func(target string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://jupyter"+target, nil)
		req.Header.Set("Authorization", "token "+j.token)
		resp, err := direct.Do(req)
		if err != nil {
			return nil
		}
		return resp
	}
	waitUntil(t, "Jupyter to answer", 60*time.Second, func() bool {
		resp := fetchDirect("/api/status")
		if resp == nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	upstream := &countingTransport{RoundTripper: j.transport()}
	gw, err := gateway.New(gateway.Options{
		User: "alice", Upstream: &url.URL{Scheme: "http", Host: "jupyter"}, Transport: upstream,
		UpstreamToken: j.token, CheckPassword: func(p string) bool { return p == "pw" }, Static: in.Static,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, _ := http.NewRequest(http.MethodPost, front.URL+"/spinbook/login", strings.NewReader("password=pw&next=/lab"))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	login.Header.Set("Origin", front.URL)
	if resp, err := browser.Do(login); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %v %v", resp, err)
	}

	// URLs as the pages name them: the bundles with ?v=, other files with
	// and without.
	one := func(route, pattern string) string {
		t.Helper()
		var found string
		for _, dir := range prefixes[route].Dirs {
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && found == "" && !d.IsDir() && regexp.MustCompile(pattern).MatchString(p) {
					rel, _ := filepath.Rel(dir, p)
					found = route + filepath.ToSlash(rel)
				}
				return nil
			})
		}
		if found == "" {
			t.Fatalf("no file matching %s under %s", pattern, route)
		}
		return found
	}
	labMain := one("/static/lab/", `/main\.[0-9a-f]+\.js$`)
	nbMain := one("/static/notebook/", `/main\.[0-9a-f]+\.js$`)
	extEntry := one("/lab/extensions/", `/static/remoteEntry\.[0-9a-f]+\.js$`)
	extPackage := one("/lab/extensions/", `/package\.json$`)
	favicon := "/static/favicons/favicon.ico"
	targets := []string{
		labMain + "?v=1", labMain, "/static/lab/package.json",
		nbMain + "?v=1", nbMain,
		extEntry + "?v=1", extEntry, extPackage, extPackage + "?v=1",
		favicon, favicon + "?v=1",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			want := fetchDirect(target)
			if want == nil {
				t.Fatal("Jupyter did not answer")
			}
			wantBody, _ := io.ReadAll(want.Body)
			want.Body.Close()
			before := upstream.n.Load()
			resp, err := browser.Get(front.URL + target)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if upstream.n.Load() != before {
				t.Errorf("the request reached Jupyter; want it served by the gateway")
			}
			if resp.StatusCode != want.StatusCode || !bytes.Equal(body, wantBody) {
				t.Fatalf("gateway %d (%d bytes), Jupyter %d (%d bytes)", resp.StatusCode, len(body), want.StatusCode, len(wantBody))
			}
			if got, w := resp.Header.Get("Cache-Control"), want.Header.Get("Cache-Control"); got != w {
				t.Errorf("Cache-Control %q, Jupyter sends %q", got, w)
			}
			if got, w := resp.Header.Get("Expires") != "", want.Header.Get("Expires") != ""; got != w {
				t.Errorf("Expires %q, Jupyter sends %q", resp.Header.Get("Expires"), want.Header.Get("Expires"))
			}
		})
	}
	t.Run("a file it does not have goes to Jupyter", func(t *testing.T) {
		before := upstream.n.Load()
		resp, err := browser.Get(front.URL + "/static/lab/no-such-file.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if upstream.n.Load() == before || resp.StatusCode != http.StatusNotFound {
			t.Errorf("= %d, reached Jupyter %v; want Jupyter's 404", resp.StatusCode, upstream.n.Load() != before)
		}
	})
}
