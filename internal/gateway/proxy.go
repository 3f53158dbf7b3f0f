package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// newProxy returns the reverse proxy to Jupyter. It streams (websockets
// and server-sent events need no extra code) and answers 502 when Jupyter
// does not.
func (g *Gateway) newProxy(transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      transport,
		FlushInterval:  -1,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		BufferPool:     copyBuffers{},
	}
}

// copyBuffers lends the proxy its 32 KiB copy buffers: without a pool it
// allocates and zeroes one for every response, which was a tenth of the
// CPU of a small proxied API call (BenchmarkProxyAPIStatus).
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// rewrite turns the client's request into Jupyter's: same Host (so that
// Jupyter's own Origin check agrees with ours), no gateway session cookie,
// no client credentials or forwarding claims, and Jupyter's token.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(g.upstream)
	pr.Out.Host = pr.In.Host

	h := pr.Out.Header
	stripSessionCookies(h)
	for name := range h {
		if isForwardingHeader(name) {
			delete(h, name)
		}
	}
	delete(h, "Authorization")
	h["Authorization"] = []string{g.authz}
	if isUpgrade(pr.In) && kernelChannelID(pr.In.URL.Path) != "" {
		// No permessage-deflate on kernel websockets: the front door
		// reads their frames (kernelws.go).
		delete(h, "Sec-Websocket-Extensions")
	}
	scrubForLogs(pr.Out)
	if g.banner != nil && isNavigation(pr.In) {
		// Pages then come to the gateway uncompressed (the transport asks
		// for gzip itself and unpacks it), so a banner can go in.
		delete(h, "Accept-Encoding")
	}

	// What SetXForwarded would say, but with the client as ClientIP sees
	// it rather than the socket peer (which may be a trusted proxy).
	if client := g.ClientIP(pr.In); client.IsValid() {
		h["X-Forwarded-For"] = []string{client.String()}
	}
	h["X-Forwarded-Host"] = []string{pr.In.Host}
	proto := "http"
	if g.secure || pr.In.TLS != nil {
		proto = "https"
	}
	h["X-Forwarded-Proto"] = []string{proto}
}

// scrubForLogs removes what Jupyter would write to its log although it may
// be a secret: it logs the URI and the Referer of every failed request
// (and on a 5xx every header). So the Referer loses its query and
// fragment, and a "token" query parameter (Jupyter's own credential
// name; the agent authenticates with a header) is dropped.
func scrubForLogs(out *http.Request) {
	if refs := out.Header["Referer"]; len(refs) > 0 {
		u, err := url.Parse(refs[0])
		if err != nil || len(refs) > 1 {
			delete(out.Header, "Referer")
		} else {
			u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
			out.Header["Referer"] = []string{u.String()}
		}
	}
	if q := out.URL.RawQuery; q != "" {
		out.URL.RawQuery = dropQueryParam(q, "token")
	}
}

// dropQueryParam removes every name=value pair of query whose name,
// unescaped, is name (ignoring case); other pairs keep their bytes.
func dropQueryParam(query, name string) string {
	var kept []string
	dropped := false
	for _, pair := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if strings.EqualFold(strings.TrimSpace(k), name) {
			dropped = true
			continue
		}
		kept = append(kept, pair)
	}
	if !dropped {
		return query
	}
	return strings.Join(kept, "&")
}

// isForwardingHeader reports whether a header named name claims something
// about the client or the way it came: X-Forwarded-*, Forwarded,
// X-Real-IP, X-Scheme. '_' counts as '-', since some servers (CGI, WSGI)
// read "X_Forwarded_For" as "X-Forwarded-For".
func isForwardingHeader(name string) bool {
	const prefix = "x-forwarded" // also X-Forwarded, X-ForwardedFor
	return headerEqual(name, "forwarded") || headerEqual(name, "x-real-ip") || headerEqual(name, "x-scheme") ||
		len(name) >= len(prefix) && headerEqual(name[:len(prefix)], prefix)
}

// headerEqual reports whether name equals lower (a lower-case name)
// ignoring case and reading '_' as '-'.
func headerEqual(name, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// stripSessionCookies removes every spinbook session cookie (this
// gateway's and those of other servers on the host) from the Cookie header
// and keeps the rest, such as Jupyter's _xsrf.
func stripSessionCookies(h http.Header) {
	lines := h["Cookie"]
	found := false
	for _, line := range lines {
		if hasSessionCookie(line) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var b strings.Builder
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || isSessionCookie(name) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{b.String()}
}

func hasSessionCookie(line string) bool {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if isSessionCookie(name) {
			return true
		}
	}
	return false
}

// modifyResponse filters Jupyter's cookies and, when there is a banner
// to show, puts it into HTML pages.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	if err := modifyResponse(resp); err != nil {
		return err
	}
	if err := g.observeResponse(resp); err != nil {
		return err
	}
	if resp.Request == nil {
		return nil
	}
	text, _ := resp.Request.Context().Value(bannerKey{}).(string)
	return injectBanner(resp, text)
}

// modifyResponse keeps Jupyter from setting a spinbook session cookie:
// cookies are shared by every port of a host, so a server could otherwise
// plant one for the gateway of another.
func modifyResponse(resp *http.Response) error {
	set := resp.Header["Set-Cookie"]
	if len(set) == 0 {
		return nil
	}
	kept := set[:0:0]
	for _, c := range set {
		name, _, _ := strings.Cut(c, "=")
		if !isSessionCookie(strings.TrimSpace(name)) {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		delete(resp.Header, "Set-Cookie")
		return nil
	}
	resp.Header["Set-Cookie"] = kept
	return nil
}

// proxyError answers when Jupyter cannot be reached. The log line names
// the path and the cause, but not the URL: its query may hold a secret.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errSessionEnded) {
		g.loginRequired(w, r)
		return
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	level := slog.LevelWarn
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug // the client went away
	}
	g.log.LogAttrs(r.Context(), level, "jupyter not answering",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("err", err.Error()),
	)
	g.writeMessage(w, http.StatusBadGateway, pageUpstream, "")
}
