package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// faultRemote is the fault suite's team repository: a real git server
// (gittest) behind a listener the test can take down and bring back on the
// same address, and whose receive-pack can be throttled so that a push is
// still in flight when the test strikes.
type faultRemote struct {
	git   *gittest.Server
	token string // the token the server accepts while nothing is revoked
	addr  string // host:port, the same across Down and Up
	// inject, when set, is put on every request as its basic-auth token,
	// for servers (containers) that reach the remote over plain HTTP on a
	// non-loopback address and so are given no token of their own.
	inject string

	// throttle is the receive-pack body rate in bytes per second; 0 is
	// unlimited. received counts receive-pack body bytes taken in.
	throttle atomic.Int64
	received atomic.Int64

	mu  sync.Mutex
	srv *http.Server
}

// newFaultRemote serves a new repository (gitSeed on main) on host (an IP
// address the servers reach). injectToken makes the front add the token
// itself (see faultRemote.inject).
func newFaultRemote(t *testing.T, host string, injectToken bool) *faultRemote {
	t.Helper()
	token := "canary-" + newID()
	r := &faultRemote{git: gittest.New(t, token, "main", gitSeed), token: token}
	if injectToken {
		r.inject = token
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

// URL is the repository's URL.
func (r *faultRemote) URL() string { return "http://" + r.addr + "/team.git" }

func (r *faultRemote) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.serveHTTP)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// Down takes the remote off the network: connections are refused and the
// ones open are cut.
func (r *faultRemote) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// Up brings the remote back on its address.
func (r *faultRemote) Up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	waitFor(t, "the remote's address to be free again", 10*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", r.addr)
		return err == nil
	})
	r.serve(ln)
}

// Revoke makes the server refuse the token spinbook has; Restore accepts
// it again.
func (r *faultRemote) Revoke()  { r.git.SetToken("canary-revoked-" + newID()) }
func (r *faultRemote) Restore() { r.git.SetToken(r.token) }

func (r *faultRemote) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if r.inject != "" {
		req.SetBasicAuth("e2e", r.inject)
	}
	if strings.HasSuffix(req.URL.Path, "/git-receive-pack") {
		req.Body = &throttledBody{ReadCloser: req.Body, r: r}
	}
	r.git.ServeHTTP(w, req)
}

// throttledBody reads a receive-pack body no faster than r.throttle.
type throttledBody struct {
	io.ReadCloser
	r *faultRemote
}

func (b *throttledBody) Read(p []byte) (int, error) {
	if rate := b.r.throttle.Load(); rate > 0 {
		// At most a tenth of a second's worth per read, a tenth of a
		// second apart: the rate, without a timer per byte.
		p = p[:min(len(p), int(max(rate/10, 1)))]
		time.Sleep(100 * time.Millisecond) // pacing the server side, not waiting for the test
	}
	n, err := b.ReadCloser.Read(p)
	b.r.received.Add(int64(n))
	if errors.Is(err, io.EOF) {
		return n, io.EOF
	}
	return n, err
}

// reachable reports whether commit is reachable from a branch of the
// remote repository.
func (r *faultRemote) reachable(t *testing.T, commit string) bool {
	t.Helper()
	out, err := gitIn(r.git.Bare, "for-each-ref", "--contains", commit, "refs/heads/")
	return err == nil && strings.TrimSpace(out) != ""
}
