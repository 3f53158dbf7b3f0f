package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// BenchmarkProxyAPIStatus is the gateway's own cost per proxied API
// request (session check, Host, allowlist, CSRF, rewrite, access log),
// with a real upstream on loopback and the agent's log level (Info, to
// nowhere); `go test -bench ProxyAPIStatus -cpuprofile` profiles it
// (docs/benchmarks.md, "the two proxy gaps").
func BenchmarkProxyAPIStatus(b *testing.B) {
	e := newEnv(b, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	cookie := e.login(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
		r.Header.Set("Cookie", cookie)
		rec := httptest.NewRecorder()
		e.g.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// TestProxyBodiesIntactWithPooledBuffers: responses larger than one copy
// buffer come through byte for byte, many at once, while the proxy
// reuses its buffers from the pool.
func TestProxyBodiesIntactWithPooledBuffers(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(bytes.Repeat([]byte{byte(n)}, 100_000+n))
	}))
	t.Cleanup(big.Close)
	e := newEnv(t, func(o *Options) { o.Upstream, _ = url.Parse(big.URL) })
	cookie := e.login(t)
	var wg sync.WaitGroup
	for n := range 16 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "/files/x?n="+strconv.Itoa(n), nil)
			r.Header.Set("Cookie", cookie)
			resp := e.serve(r)
			got, _ := io.ReadAll(resp.Body)
			if want := bytes.Repeat([]byte{byte(n)}, 100_000+n); !bytes.Equal(got, want) {
				t.Errorf("response %d: %d bytes, not the %d the upstream sent", n, len(got), len(want))
			}
		})
	}
	wg.Wait()
	if b := (copyBuffers{}).Get(); len(b) != 32<<10 {
		t.Errorf("a pooled buffer has %d bytes, want 32 KiB", len(b))
	}
}
