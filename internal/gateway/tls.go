package gateway

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sniffTimeout is how long a new connection has to send its first byte
// before ListenTLS drops it.
const sniffTimeout = 10 * time.Second

// ListenTLS returns a listener that serves TLS with cfg on ln and also
// accepts plain HTTP on the same port: it looks at the first byte of each
// connection and hands out a *tls.Conn for a TLS handshake, and the bare
// connection otherwise, so that an http.Server on it sees r.TLS == nil and
// RedirectHTTP can send the client to https. A connection that sends
// nothing for 10 seconds is closed; a slow one never holds up the others.
func ListenTLS(ln net.Listener, cfg *tls.Config) net.Listener {
	l := &tlsListener{
		Listener: ln,
		cfg:      cfg,
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

type tlsListener struct {
	net.Listener
	cfg   *tls.Config
	conns chan net.Conn

	closeOnce sync.Once
	done      chan struct{}
	mu        sync.Mutex
	err       error // why acceptLoop stopped
}

func (l *tlsListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.Close()
			return
		}
		delay = 0
		go l.sniff(c)
	}
}

// sniff reads the first byte of c and passes c on, wrapped in TLS if the
// byte starts a TLS handshake record.
func (l *tlsListener) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 { // TLS record type: handshake
		out = tls.Server(out, l.cfg)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// A peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// RedirectHTTP serves g over TLS and redirects a request that came over
// plain HTTP to the same URL with https, with 307 (the method and body
// are kept; temporary, so that no browser remembers it for a port that may
// serve plain HTTP again under another server). No HSTS header is sent:
// it would cover every port of the host. A Host that is not one of the
// server's names gets 421 here too, never a redirect.
func RedirectHTTP(g *Gateway) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			g.ServeHTTP(w, r)
			return
		}
		if !g.hostAllowed(r) {
			g.misdirected(w, r, g.ClientIP(r))
			return
		}
		hdr := w.Header()
		setPageHeaders(hdr)
		if !validHost(r.Host) {
			hdr.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("this port speaks https\n"))
			return
		}
		hdr.Set("Location", "https://"+r.Host+r.URL.RequestURI())
		hdr.Set("Connection", "close")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
}

// validHost reports whether host (a Host header) is a plain host or
// host:port that cannot change the meaning of a URL it is put into.
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	if strings.ContainsAny(host, "/\\?#@ \t") {
		return false
	}
	for i := 0; i < len(host); i++ {
		if host[i] < 0x21 || host[i] > 0x7e {
			return false
		}
	}
	return true
}
