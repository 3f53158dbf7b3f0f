package gateway

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// isUserRequest reports whether r, a request about to be proxied, is a
// person using the server rather than what an open page sends by itself:
// writes and page navigations count; GETs under pollingPrefixes, websocket
// opens (kernels, terminals, JupyterLab's /api/events/subscribe) and
// JupyterLab's saves of its layout do not.
func isUserRequest(r *http.Request) bool {
	p := r.URL.Path
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// JupyterLab PUTs its layout to /lab/api/workspaces/NAME when a
		// page loads and whenever the layout shifts.
		return !(r.Method == http.MethodPut && strings.HasPrefix(p, "/lab/api/workspaces/"))
	}
	if isUpgrade(r) {
		return false
	}
	for _, prefix := range pollingPrefixes {
		if strings.HasPrefix(p, prefix) {
			return false
		}
	}
	return p != "/api" && !strings.HasSuffix(p, "/favicon.ico")
}

// pollingPrefixes are the paths whose GETs an open page of notebook 6,
// Notebook 7 or JupyterLab 4 sends on its own, as seen in their request
// logs: the REST API it polls every few seconds (/api/kernels, sessions,
// terminals, kernelspecs, me, status, metrics, and /api/contents, the file
// browser's listing), JupyterLab's settings, translations, themes and
// workspaces (/lab/api/), jupyter-lsp's /lsp/status, and the assets pages
// load, lazily too (/static/, /lab/extensions/, kernel logos).
var pollingPrefixes = []string{
	"/api/", "/lab/api/", "/lsp/",
	"/static/", "/lab/static/", "/lab/extensions/", "/nbextensions/", "/custom/", "/kernelspecs/",
}

// bannerKey keys the banner text of a request in its context.
type bannerKey struct{}

// withBanner returns r carrying the banner for its page, when r asks for
// a page and there is a banner to show; r then asks Jupyter for the whole
// page, not whether the browser's cached copy is still fresh.
func (g *Gateway) withBanner(r *http.Request) *http.Request {
	if g.banner == nil || !isNavigation(r) {
		return r
	}
	text := g.banner()
	if text == "" {
		return r
	}
	// A reload revalidates the page cached before the warning, and
	// Jupyter's 304 would leave the browser on it, without the banner.
	r.Header.Del("If-None-Match")
	r.Header.Del("If-Modified-Since")
	return r.WithContext(context.WithValue(r.Context(), bannerKey{}, text))
}

// maxBannerPage is the largest HTML page a banner is put into; larger
// pages pass unchanged.
const maxBannerPage = 8 << 20

// isNavigation reports whether r asks for a page (HTML).
func isNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && !isUpgrade(r) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// bannerHide is the banner's button that takes it off the page: fixed at
// the top, the banner covers JupyterLab's and Notebook 7's menu bar (File,
// Save, Log Out) and document tabs. It hides the banner only until the
// next page load; the warning stands. (Jupyter's Content-Security-Policy,
// frame-ancestors only, allows the inline handler.)
const bannerHide = `<button type="button" onclick="this.parentNode.remove()" ` +
	`style="margin-left:12px;font:inherit;color:#b45309;background:#fff;border:0;border-radius:3px;padding:0 8px;cursor:pointer">Hide</button>`

// injectBanner puts text in a fixed banner at the top of resp, when it is
// an uncompressed HTML page of at most maxBannerPage bytes; any other
// response passes unchanged. Content-Length follows the new body.
func injectBanner(resp *http.Response, text string) error {
	if text == "" || resp.StatusCode != http.StatusOK || resp.Request == nil || resp.Request.Method != http.MethodGet {
		return nil
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/html") {
		return nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil // never rewrite a compressed body
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxBannerPage+1))
	if err != nil {
		return err
	}
	if len(head) > maxBannerPage {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	banner := `<div id="spinbook-banner" role="alert" style="position:fixed;top:0;left:0;right:0;z-index:2147483647;` +
		`background:#b45309;color:#fff;font:14px/1.4 system-ui,sans-serif;padding:6px 12px;text-align:center">` +
		html.EscapeString(text) + ` ` + bannerHide + `</div>`
	at := 0
	if i := bytes.Index(bytes.ToLower(head), []byte("<body")); i >= 0 {
		if j := bytes.IndexByte(head[i:], '>'); j >= 0 {
			at = i + j + 1
		}
	}
	body := make([]byte, 0, len(head)+len(banner))
	body = append(append(append(body, head[:at]...), banner...), head[at:]...)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Etag")
	resp.Header.Set("Cache-Control", "no-store")
	return nil
}
