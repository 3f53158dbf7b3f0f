// Package portal is the team's web portal (`spinbook portal`): people sign
// in (OpenID Connect, or a password from the config), then start, stop,
// save, extend and open their own server from a page or the JSON API under
// /api/v1/, and admins see and stop everyone's. The portal drives one
// backend through Servers, which package cli implements with the very code
// of up, down, save, extend, status and ls; the backend stays the truth
// about what runs, so the portal can restart at any time. What only the
// portal knows — sessions, API tokens (hashed), the audit log, settings,
// runs for cost — is in a SQLite file in its state dir.
//
// Every request passes, in this order: the Host check (421 unless it
// names the portal: see Options.Hosts), then for pages a session cookie,
// and on every state change the cross-site check (Origin / Sec-Fetch-Site)
// and the session's CSRF token; for /api/v1/ a personal API token
// (cookies are not accepted there, so there is nothing to forge). Then
// the request's user must own the server it names, or be an admin; a
// server a person may not see answers 404.
package portal

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/gateway"
)

// Servers is what the portal does to servers, as the command line does it.
// Each result is the JSON object the command prints with --json (up and
// status: a status object; down: down's; save: save's; extend: extend's;
// List: ls's elements), so that the API and the command line agree.
// Progress messages go to progress.
type Servers interface {
	Start(ctx context.Context, user, size string, progress func(string)) (json.RawMessage, error)
	Stop(ctx context.Context, user string, purge, force bool, progress func(string)) (json.RawMessage, error)
	Save(ctx context.Context, user, message string) (json.RawMessage, error)
	Extend(ctx context.Context, user string, d time.Duration) (json.RawMessage, error)
	Status(ctx context.Context, user string) (json.RawMessage, error)
	List(ctx context.Context) ([]json.RawMessage, error)
}

// ErrRefused is wrapped by a Servers error that refused to act and left
// the server as it was (its work could not be saved first; it does not
// run): the API answers 409.
var ErrRefused = errors.New("refused")

// Options configure a Portal.
type Options struct {
	// Config is the whole config: its portal section, and sizes.
	Config *config.Config
	// Servers acts on servers. Required.
	Servers Servers
	// StateDir holds portal.db and portal.key. Required.
	StateDir string
	// Key signs open tokens (LoadKey). Required.
	Key ed25519.PrivateKey
	// Out receives what the portal says once to its operator: a generated
	// admin login. Nil discards.
	Out io.Writer
	// Logger receives the access log and security events. Nil discards.
	Logger *slog.Logger
	// Now tells the time. Nil means time.Now.
	Now func() time.Time
	// OIDC signs people in with an identity provider; nil when the config
	// has none (see NewOIDC).
	OIDC *OIDC
}

// A Portal is the portal's http.Handler.
type Portal struct {
	cfg     *config.Config
	servers Servers
	store   *store
	key     ed25519.PrivateKey
	log     *slog.Logger
	now     func() time.Time
	oidc    *OIDC

	hosts      map[string]struct{}
	trusted    []netip.Prefix // proxies whose X-Forwarded-For is believed
	secure     bool           // https URL: Secure, __Host- cookies
	cookieName string         // the session cookie
	users      map[string]config.PortalUser
	dummyHash  string        // checked for unknown users, so they take as long
	limiter    *limiter      // sign-in failures
	apiLimiter *limiter      // API calls with a bad token
	checking   chan struct{} // argon2id checks in flight
	csrf       *http.CrossOriginProtection
	mux        *http.ServeMux
	metrics    *portalMetrics

	opsMu sync.Mutex
	ops   map[string]*operation // by user: the start or stop in progress or last done
}

// sessionTTL is how long a portal session lasts unused.
const sessionTTL = 12 * time.Hour

// New opens the portal's state and returns it; Close it when done.
func New(ctx context.Context, opts Options) (*Portal, error) {
	if opts.Servers == nil || opts.StateDir == "" || opts.Key == nil || opts.Config == nil {
		return nil, errors.New("portal: Config, Servers, StateDir and Key are required")
	}
	p := &Portal{
		cfg:        opts.Config,
		servers:    opts.Servers,
		key:        opts.Key,
		log:        opts.Logger,
		now:        opts.Now,
		oidc:       opts.OIDC,
		hosts:      make(map[string]struct{}),
		users:      make(map[string]config.PortalUser),
		limiter:    newLimiter(),
		apiLimiter: newLimiterRate(time.Second, 30),
		checking:   make(chan struct{}, 2),
		csrf:       http.NewCrossOriginProtection(),
		ops:        make(map[string]*operation),
		trusted:    opts.Config.Portal.TrustedPrefixes,
	}
	if opts.Config.Portal.TrustedProxies == nil {
		p.trusted = opts.Config.Access.TrustedPrefixes
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.metrics = newPortalMetrics(p.fleet, func() time.Time { return p.now() })
	if u := opts.Config.Portal.ParsedURL; u != nil {
		if n, err := gateway.NormalizeHost(u.Hostname()); err == nil {
			p.hosts[n] = struct{}{}
		}
		p.secure = u.Scheme == "https"
	}
	if h, _, err := net.SplitHostPort(opts.Config.Portal.Listen); err == nil && h != "" {
		if n, err := gateway.NormalizeHost(h); err == nil {
			p.hosts[n] = struct{}{}
		}
	}
	p.cookieName = "spinbook-portal"
	if p.secure {
		p.cookieName = "__Host-spinbook-portal"
	}
	st, err := openStore(ctx, storePath(opts.StateDir))
	if err != nil {
		return nil, err
	}
	p.store = st
	for name, u := range opts.Config.Portal.Users {
		p.users[name] = u
	}
	if err := p.firstAdmin(ctx, opts.Out); err != nil {
		st.Close()
		return nil, err
	}
	if p.dummyHash, err = dummyHash(); err != nil {
		st.Close()
		return nil, err
	}
	p.routes()
	return p, nil
}

// Close closes the portal's database.
func (p *Portal) Close() error { return p.store.Close() }

func (p *Portal) routes() {
	m := http.NewServeMux()
	// Pages.
	m.HandleFunc("GET /{$}", p.page(p.myServers))
	m.HandleFunc("GET /login", p.loginPage)
	m.HandleFunc("POST /login", p.passwordLogin)
	m.HandleFunc("GET /oidc/login", p.oidcLogin)
	m.HandleFunc("GET /oidc/callback", p.oidcCallback)
	m.HandleFunc("POST /logout", p.change(p.logout))
	m.HandleFunc("POST /servers/{user}/{action}", p.change(p.serverAction))
	m.HandleFunc("GET /servers/{user}/events", p.page(p.events))
	m.HandleFunc("GET /team", p.page(p.team))
	m.HandleFunc("GET /audit", p.page(p.auditPage))
	m.HandleFunc("GET /tokens", p.page(p.tokensPage))
	m.HandleFunc("POST /tokens", p.change(p.createToken))
	m.HandleFunc("POST /tokens/{id}/revoke", p.change(p.revokeToken))
	m.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	// The API.
	m.HandleFunc("GET /metrics", p.api(p.metricsPage))
	m.HandleFunc("GET /api/v1/me", p.api(p.apiMe))
	m.HandleFunc("GET /api/v1/servers", p.api(p.apiList))
	m.HandleFunc("GET /api/v1/servers/{user}", p.api(p.apiStatus))
	m.HandleFunc("POST /api/v1/servers/{user}/{action}", p.api(p.apiAction))
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such API call: see docs/portal.md for /api/v1/")
	})
	p.mux = m
}

// ServeHTTP checks the Host, sets the headers of every answer, logs the
// request, and routes it.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	sw := &statusWriter{ResponseWriter: w}
	h := sw.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", pagePolicy(""))
	if !gateway.HostAllowed(r.Host, p.hosts) {
		p.log.Warn("foreign host refused", "client", p.clientIP(r), "host", r.Host, "path", r.URL.Path)
		sw.Header().Set("Connection", "close")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiError(sw, http.StatusMisdirectedRequest, "this portal does not answer to the host "+r.Host+": use the address in portal.url")
		} else {
			http.Error(sw, "This portal does not answer to that name: open it by the address in portal.url.", http.StatusMisdirectedRequest)
		}
	} else {
		p.mux.ServeHTTP(sw, r)
	}
	p.log.Info("request", "client", p.clientIP(r), "method", r.Method, "path", r.URL.Path, "status", sw.status(), "ms", p.now().Sub(start).Milliseconds())
}

// pagePolicy is the Content-Security-Policy of the portal's pages: its own
// scripts and styles only; forms post here, and to formTarget when set
// (the server an Open page posts to).
func pagePolicy(formTarget string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'" +
		strings.TrimRight(" "+formTarget, " ") + "; frame-ancestors 'none'; base-uri 'none'"
}

// storePath is the portal's database in its state dir.
func storePath(stateDir string) string { return stateDir + "/portal.db" }

// clientIP is the client's address: the socket peer's, or, when the peer
// is a trusted proxy (portal.trusted_proxies), what its X-Forwarded-For
// says as far as trusted proxies wrote it (gateway.ParseForwardedFor).
func (p *Portal) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return gateway.ParseForwardedFor(peer.Addr(), r.Header["X-Forwarded-For"], p.trusted).String()
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// Flush lets server-sent events through.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// originOf is the scheme://host[:port] of a server URL.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("server URL %q is not an http(s) URL", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}
