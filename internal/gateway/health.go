package gateway

import (
	"context"
	"net/http"
)

// NewHealth returns the handler for the health listener, which runs on its
// own port without authentication and never reaches Jupyter:
//
//	GET /healthz  200 {"status":"ok"} while the process serves at all
//	GET /readyz   200 {"status":"ready"} if ready reports true,
//	              503 {"status":"starting"} otherwise
//
// Other paths are 404 and other methods 405. ready is called on every
// /readyz request, so it must be cheap (a cached value); nil means always
// ready.
func NewHealth(ready func(ctx context.Context) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")

		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			writeStatus(w, http.StatusNotFound, `{"status":"not found"}`)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeStatus(w, http.StatusMethodNotAllowed, `{"status":"method not allowed"}`)
			return
		}
		switch {
		case r.URL.Path == "/healthz":
			writeStatus(w, http.StatusOK, `{"status":"ok"}`)
		case ready == nil || ready(r.Context()):
			writeStatus(w, http.StatusOK, `{"status":"ready"}`)
		default:
			writeStatus(w, http.StatusServiceUnavailable, `{"status":"starting"}`)
		}
	})
}

func writeStatus(w http.ResponseWriter, code int, body string) {
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
}
