package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Upgraded connections (kernel and terminal websockets, Jupyter's event
// stream) belong to the session that opened them: when that session ends
// — logout, a new login, expiry — the gateway closes them, so that an
// open websocket is no way around a logout. A message the browser sends
// on one counts as using the session, as a request does, so a cell that
// a person watches for hours does not lose its websocket.

// upgradeCtxKey keys, in an upgrade request's context, its upgradeInfo.
type upgradeCtxKey struct{}

// upgradeInfo is what the gateway knows of an upgrade request as it
// proxies it: the session that sent it and the path it asked for (the
// outgoing request's path may carry Jupyter's base URL).
type upgradeInfo struct {
	session [sha256.Size]byte
	path    string
}

// errSessionEnded answers an upgrade whose session ended while Jupyter
// accepted it.
var errSessionEnded = errors.New("the session ended")

// withSession returns r, an upgrade, carrying its session's key.
func withSession(r *http.Request, key [sha256.Size]byte) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), upgradeCtxKey{}, upgradeInfo{session: key, path: r.URL.Path}))
}

// An upgradedConn is Jupyter's side of one upgraded connection, as the
// proxy reads and writes it: what the browser sends passes through Write,
// what Jupyter sends through Read. It follows the frames both ways for a
// kernel websocket, the browser's only for any other.
type upgradedConn struct {
	io.ReadWriteCloser
	g       *Gateway
	session [sha256.Size]byte
	kernel  string // the kernel's id when its traffic is followed
	v1      bool   // the kernel websocket speaks kernelWSProtocol

	toJupyter   frameStream // used by Write only
	fromJupyter frameStream // used by Read only
	lastUse     time.Time   // when a message last extended the session; Write only

	closeOnce sync.Once
	timer     *time.Timer // checks the session's expiry; guarded by g.conns.mu
}

// Write passes the browser's bytes on to Jupyter, after following them.
func (c *upgradedConn) Write(p []byte) (int, error) {
	c.toJupyter.feed(p)
	n, err := c.ReadWriteCloser.Write(p)
	if n > 0 {
		c.g.obs.Proxied("to_jupyter", int64(n))
	}
	return n, err
}

// Read passes Jupyter's bytes on to the browser, following them.
func (c *upgradedConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	if n > 0 && c.kernel != "" {
		c.fromJupyter.feed(p[:n])
	}
	if n > 0 {
		c.g.obs.Proxied("to_client", int64(n))
	}
	return n, err
}

// CloseWrite half-closes Jupyter's side when it can, as the proxy would
// without this wrapper.
func (c *upgradedConn) CloseWrite() error {
	if cw, ok := c.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return http.ErrNotSupported
}

// Close ends the connection; the proxy then closes the browser's side.
func (c *upgradedConn) Close() error {
	err := error(nil)
	c.closeOnce.Do(func() {
		err = c.ReadWriteCloser.Close()
		c.g.conns.remove(c)
		if c.kernel != "" {
			c.g.kernels.closed(c.kernel)
		}
	})
	return err
}

// sessionUseEvery is how often, at most, messages on an upgraded
// connection extend its session.
const sessionUseEvery = time.Minute

// fromBrowser handles a message the browser sent.
func (c *upgradedConn) fromBrowser(opcode byte, payload []byte, opaque bool) {
	now := c.g.now()
	if every := min(sessionUseEvery, c.g.sessions.ttl/8); now.Sub(c.lastUse) >= every {
		c.lastUse = now
		c.g.sessions.extend(c.session, now)
	}
	if c.kernel == "" {
		return
	}
	if m, ok := decodeKernelMsg(opcode, payload, opaque, c.v1); ok {
		c.g.kernels.fromClient(c.kernel, m)
	} else {
		c.g.activity() // a message too large to read: someone is at work
	}
}

// fromKernel handles a message Jupyter sent to the browser.
func (c *upgradedConn) fromKernel(opcode byte, payload []byte, opaque bool) {
	if m, ok := decodeKernelMsg(opcode, payload, opaque, c.v1); ok {
		c.g.kernels.fromKernel(c.kernel, m)
	} else {
		c.g.activity() // a large output
	}
}

// checkSession closes the connection's session's connections when that
// session has expired, and otherwise looks again when it would expire.
func (c *upgradedConn) checkSession() {
	exp, ok := c.g.sessions.expiry(c.session, c.g.now())
	if !ok {
		c.g.conns.closeSession(c.session) // the store reported the end; this is for a session already gone
		return
	}
	c.g.conns.mu.Lock()
	defer c.g.conns.mu.Unlock()
	if _, live := c.g.conns.conns[c]; live {
		c.timer = time.AfterFunc(exp.Sub(c.g.now())+time.Second, c.checkSession)
	}
}

// A connRegistry holds the open upgraded connections.
type connRegistry struct {
	mu    sync.Mutex
	conns map[*upgradedConn]struct{}
}

func (r *connRegistry) add(c *upgradedConn, expires time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = map[*upgradedConn]struct{}{}
	}
	r.conns[c] = struct{}{}
	c.timer = time.AfterFunc(expires+time.Second, c.checkSession)
}

func (r *connRegistry) remove(c *upgradedConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	if c.timer != nil {
		c.timer.Stop()
	}
}

// closeSession closes every connection of the session key.
func (r *connRegistry) closeSession(key [sha256.Size]byte) {
	var closing []*upgradedConn
	r.mu.Lock()
	for c := range r.conns {
		if c.session == key {
			closing = append(closing, c)
		}
	}
	r.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
}

// trackUpgrade wraps the body of resp, a 101 from Jupyter, so that the
// gateway follows the connection and can close it. Every proxied upgrade
// carries its session (withSession); were one without, it would pass as
// is. It fails when the session has ended meanwhile.
func (g *Gateway) trackUpgrade(resp *http.Response) error {
	req := resp.Request
	info, ok := req.Context().Value(upgradeCtxKey{}).(upgradeInfo)
	rwc, isRWC := resp.Body.(io.ReadWriteCloser)
	if !ok || !isRWC || !strings.EqualFold(req.Header.Get("Upgrade"), resp.Header.Get("Upgrade")) {
		return nil // the proxy refuses it, or it is not ours to follow
	}
	exp, live := g.sessions.expiry(info.session, g.now())
	if !live {
		return errSessionEnded
	}
	c := &upgradedConn{ReadWriteCloser: rwc, g: g, session: info.session}
	if id := kernelChannelID(info.path); id != "" && g.kernels.opened(id) {
		c.kernel = id
		c.v1 = resp.Header.Get("Sec-WebSocket-Protocol") == kernelWSProtocol
		c.fromJupyter = frameStream{keep: maxKernelMessage, onMessage: c.fromKernel}
		c.toJupyter.keep = maxKernelMessage
	}
	c.toJupyter.onMessage = c.fromBrowser
	g.conns.add(c, exp.Sub(g.now()))
	resp.Body = c
	return nil
}

// observeResponse follows what a proxied response tells of the kernels:
// a restart drops a kernel's queued executions.
func (g *Gateway) observeResponse(resp *http.Response) error {
	req := resp.Request
	if req == nil {
		return nil
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return g.trackUpgrade(resp)
	}
	if req.Method == http.MethodPost && resp.StatusCode < 300 {
		if id := kernelRestartID(strings.TrimPrefix(req.URL.Path, strings.TrimSuffix(g.upstream.Path, "/"))); id != "" {
			g.kernels.restarted(id)
		}
	}
	return nil
}
