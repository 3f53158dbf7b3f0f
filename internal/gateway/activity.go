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
// person using the server rather than Jupyter's own polling: writes and
// page navigations count; GETs of Jupyter's REST APIs (/api/kernels,
// /api/sessions, /api/terminals, /api/contents, /api/status, /api/metrics,
// JupyterLab's /lab/api/...) and websocket opens do not, since an open tab
// sends them on its own.
func isUserRequest(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true
	}
	if isUpgrade(r) {
		return false
	}
	p := r.URL.Path
	for _, prefix := range []string{"/api/", "/lab/api/", "/static/", "/lab/static/", "/nbextensions/", "/custom/", "/kernelspecs/"} {
		if strings.HasPrefix(p, prefix) {
			return false
		}
	}
	return p != "/api" && !strings.HasSuffix(p, "/favicon.ico")
}

// bannerKey keys the banner text of a request in its context.
type bannerKey struct{}

// withBanner returns r carrying the banner for its page, when r asks for
// a page and there is a banner to show.
func (g *Gateway) withBanner(r *http.Request) *http.Request {
	if g.banner == nil || !isNavigation(r) {
		return r
	}
	text := g.banner()
	if text == "" {
		return r
	}
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
		html.EscapeString(text) + `</div>`
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
