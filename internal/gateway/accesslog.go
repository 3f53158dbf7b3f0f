package gateway

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// logRequest writes the access log line for r. It names the path but not
// the query, and no header but the user agent: queries, cookies,
// Authorization and Referer can all carry secrets.
func (g *Gateway) logRequest(r *http.Request, client netip.Addr, status int, d time.Duration) {
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("client", addrString(client)),
		slog.String("user_agent", r.UserAgent()),
	)
}

// A statusWriter remembers the status code of the response it writes.
type statusWriter struct {
	http.ResponseWriter
	code     int
	hijacked bool
	proxied  bool  // the proxy writes the response
	written  int64 // bytes of body written
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Hijack takes over the connection, as the proxy does for a websocket.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer (to
// flush a streamed response).
func (w *statusWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}

// status is the code sent: 101 for a connection handed over to a
// websocket, 200 if the handler wrote nothing.
func (w *statusWriter) status() int {
	switch {
	case w.code != 0:
		return w.code
	case w.hijacked:
		return http.StatusSwitchingProtocols
	}
	return http.StatusOK
}
