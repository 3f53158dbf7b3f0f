package e2e

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestFrontDoorOnJupyterServer2: JupyterLab 4 and Notebook 7 behind the
// front door. The page a person opens carries the idle banner inside its
// body; its bundle comes from the gateway's static fast path with
// jupyter_server's immutable caching; and what an open page sends by
// itself (as the real pages' request logs show: REST polling, the event
// stream, jupyter-lsp's status, settings, translations, the layout save,
// assets) does not postpone the idle stop.
func TestFrontDoorOnJupyterServer2(t *testing.T) {
	for _, name := range []string{flavourLab4, flavourNotebook7} {
		t.Run(name, func(t *testing.T) {
			f := jupyterFlavour(t, name)
			// Warned from the start: stop_after is shorter than warn_before.
			w := newWorldPorts(t, f.config+"idle: {stop_after: 5m, warn_before: 1h}\n", idlePorts)
			s := w.up("lana")
			b := loggedIn(t, s)

			page := b.page(t, f.page)
			body := strings.Index(strings.ToLower(page), "<body")
			banner := strings.Index(page, `id="spinbook-banner"`)
			if body < 0 || banner < body || !strings.Contains(page, "spinbook extend") {
				t.Fatalf("%s has no idle banner inside its body:\n%.1500s", f.page, page)
			}

			bundle := regexp.MustCompile(`src="(/static/(lab|notebook)/main\.[0-9a-f]+\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
			if bundle == nil {
				t.Fatalf("%s names no main bundle:\n%.1500s", f.page, page)
			}
			resp := b.do(t, http.MethodGet, bundle[1], nil, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
				t.Errorf("GET %s = %s, Cache-Control %q; want 200, immutable", bundle[1], resp.Status, resp.Header.Get("Cache-Control"))
			}

			before := w.idleStatus("lana")
			if before.StopsAt == nil || before.Warning == "" {
				t.Fatalf("status = %+v, want a stop time and a warning", before)
			}
			for _, r := range []struct{ method, path, body string }{
				{http.MethodGet, "/api/kernels", ""},
				{http.MethodGet, "/api/sessions", ""},
				{http.MethodGet, "/api/terminals", ""},
				{http.MethodGet, "/api/contents?content=1&hash=0", ""},
				{http.MethodGet, "/api/me", ""},
				{http.MethodGet, "/api/kernelspecs", ""},
				{http.MethodGet, "/kernelspecs/python3/logo-svg.svg", ""},
				{http.MethodGet, "/lsp/status", ""},
				{http.MethodGet, "/lab/api/settings", ""},
				{http.MethodGet, "/lab/api/translations/default", ""},
				{http.MethodGet, "/lab/api/workspaces/default", ""},
				{http.MethodPut, "/lab/api/workspaces/default", `{"data": {}, "metadata": {"id": "default"}}`},
				{http.MethodGet, bundle[1], ""},
			} {
				h := map[string]string{"Origin": b.origin(), "Content-Type": "application/json"}
				var rd *strings.Reader
				if r.body != "" {
					rd = strings.NewReader(r.body)
				}
				var resp *http.Response
				if rd != nil {
					resp = b.do(t, r.method, r.path, rd, h)
				} else {
					resp = b.do(t, r.method, r.path, nil, h)
				}
				if resp.StatusCode >= 400 {
					t.Errorf("%s %s = %s", r.method, r.path, resp.Status)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			events, _, err := websocket.Dial(ctx, "ws://"+b.base.Host+"/api/events/subscribe", &websocket.DialOptions{
				HTTPClient: b.Client, HTTPHeader: http.Header{"Origin": {b.origin()}},
			})
			if err != nil {
				t.Fatalf("/api/events/subscribe: %v", err)
			}
			events.Close(websocket.StatusNormalClosure, "")

			after := w.idleStatus("lana")
			if after.StopsAt == nil || !after.StopsAt.Equal(*before.StopsAt) || after.Warning == "" {
				t.Errorf("an open page's own requests moved the stop from %v to %v (warning %q)", before.StopsAt, after.StopsAt, after.Warning)
			}
			// A person's page visit still does.
			b.page(t, f.page)
			if moved := w.idleStatus("lana"); moved.StopsAt == nil || !moved.StopsAt.After(*before.StopsAt) {
				t.Errorf("opening %s did not postpone the stop (%v, before %v)", f.page, moved.StopsAt, before.StopsAt)
			}
		})
	}
}
