// Package gateway is the front door of a notebook server: it admits clients
// by network, logs them in with a password, and proxies what they ask for to
// a Jupyter server that only the gateway can reach.
//
// Every request passes the same checks, in this order: the Host must be one
// of the server's own names (421 otherwise; see host.go), the client address
// must be on the allowlist, a state-changing request must not come from
// another site, a websocket upgrade must carry the server's own Origin, and
// anything outside the gateway's own pages (under /spinbook/) needs a
// session. Only then is the request forwarded, with the gateway's session
// cookie, client credentials, forwarding claims and what Jupyter would log
// (a Referer's query) removed, and Jupyter's token added.
//
// A websocket belongs to the session that opened it and closes when that
// session ends (logout, a new login, expiry); a message the browser sends
// on it uses the session as a request does (upgrade.go). On kernel
// websockets the gateway reads just enough of each message to know which
// kernels have a cell running (kernelws.go, KernelTraffic).
//
// ListenTLS and RedirectHTTP serve the front door with TLS, plain HTTP on
// the same port being redirected to it.
package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DefaultSessionTTL is how long a session lasts without being used.
const DefaultSessionTTL = 12 * time.Hour

// Options configure a Gateway. Zero values are safe defaults where noted.
type Options struct {
	// User is the server's user. It is shown on the login page and is part
	// of the session cookie's name, so that two servers on one host (on
	// different ports) do not overwrite each other's cookie. Letters,
	// digits, '.', '_' and '-' only.
	User string

	// Upstream is Jupyter's base URL, e.g. http://jupyter. Its path is
	// prepended to every request's path, so Jupyter's base_url must be "/"
	// unless Upstream's path says otherwise. When Transport dials a socket,
	// the host is only a label. Required.
	Upstream *url.URL

	// Transport is how the gateway reaches Jupyter; the agent passes one
	// that dials a Unix socket. Nil means http.DefaultTransport.
	Transport http.RoundTripper

	// UpstreamToken is sent to Jupyter with every proxied request as
	// "Authorization: token <UpstreamToken>". It is never logged and never
	// sent to the client.
	UpstreamToken string

	// CheckPassword reports whether password is the user's password. It
	// should take constant time (the agent compares an argon2id hash). At
	// most two calls run at once. Required.
	CheckPassword func(password string) bool

	// Allow lists the client networks admitted. Empty means loopback only
	// (127.0.0.0/8 and ::1/128).
	Allow []netip.Prefix

	// TrustedProxies lists the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// Hosts are the names clients reach the server by (the host of its
	// URL, a load balancer's or ingress's name, access.hosts), without
	// port. A request whose Host is none of these, nor "localhost" nor an
	// IP address, is answered 421 Misdirected Request: see host.go.
	// Compared without case and trailing dot.
	Hosts []string

	// Secure says TLS is in front of the gateway: cookies get the Secure
	// attribute and the __Host- prefix, and websocket Origins must be https.
	Secure bool

	// SessionTTL is how long a session lasts without being used. Zero means
	// DefaultSessionTTL. Each authenticated request starts it again.
	SessionTTL time.Duration

	// Logger receives the access log and security events. Nil discards.
	Logger *slog.Logger

	// Observer is told of every request, login failure and proxied byte,
	// for metrics (observe.go). Nil observes nothing.
	Observer Observer

	// Now tells the time. Nil means time.Now.
	Now func() time.Time

	// Control serves the agent's control API: every request under
	// ControlPrefix, once the client passed the allowlist, with no
	// session or cross-site checks — the handler authenticates each
	// request itself (a bearer token, compared in constant time). Those
	// paths never reach Jupyter; with Control nil they answer 404.
	Control http.Handler

	// OnActivity, when set, is called for each proxied request a person
	// makes — page navigations and writes — and on kernel websockets for
	// each cell run and each cell's end (and each message too large to
	// read), but not for Jupyter's own polling (GETs of its REST API) nor
	// for other traffic on open websockets. The agent counts it as
	// activity for idle stops.
	OnActivity func()

	// Banner, when set, returns a short text shown in a fixed banner at
	// the top of each HTML page proxied from Jupyter (such as a coming
	// idle stop); "" shows none. It is asked before the request is
	// reported to OnActivity, so it tells what the page's visitor was
	// warned of.
	Banner func() string

	// Static are the URL prefixes Jupyter serves files under and the
	// directories it serves them from (the agent learns them from the
	// Jupyter install): the gateway then answers those GETs itself, after
	// the session check, several times faster than Jupyter and with
	// Jupyter's cache headers; what it does not find still goes to Jupyter.
	Static []StaticRoute

	// PortalKey is the team portal's Ed25519 public key: with it, the
	// front door takes the portal's open tokens at /spinbook/portal-login
	// (portaltoken.go). Nil: that route answers 404.
	PortalKey ed25519.PublicKey

	// PortalOnly turns the password login off: people get in only through
	// the portal's Open. Requires PortalKey.
	PortalOnly bool
}

// defaultAllow admits loopback clients only.
var defaultAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// A Gateway is an http.Handler that guards one Jupyter server.
// It is safe for concurrent use.
type Gateway struct {
	user       string
	cookieName string
	secure     bool
	allow      []netip.Prefix
	trusted    []netip.Prefix
	hosts      map[string]struct{} // Options.Hosts, normalized
	check      func(string) bool
	authz      string // the Authorization value sent upstream
	log        *slog.Logger
	now        func() time.Time

	csrf     *http.CrossOriginProtection
	proxy    *httputil.ReverseProxy
	upstream *url.URL
	sessions *sessionStore
	limiter  *loginLimiter
	checking chan struct{} // semaphore: CheckPassword calls in flight
	control  http.Handler
	activity func()        // Options.OnActivity; never nil
	banner   func() string // Options.Banner; nil for none
	obs      Observer      // Options.Observer; a no-op for none
	static   []staticMount // Options.Static, longest prefix first
	kernels  *kernelTracker
	conns    connRegistry // upgraded connections (websockets)

	portalKey  ed25519.PublicKey // Options.PortalKey
	portalOnly bool
	usedTokens usedTokens // open tokens taken, until they expire
}

// ControlPrefix starts the paths of the control API (Options.Control).
const ControlPrefix = "/spinbook/api/"

// New returns a Gateway for opts, or an error that lists every invalid option.
func New(opts Options) (*Gateway, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	g := &Gateway{
		user:       opts.User,
		cookieName: cookieName(opts.User, opts.Secure),
		secure:     opts.Secure,
		allow:      opts.Allow,
		trusted:    opts.TrustedProxies,
		hosts:      make(map[string]struct{}),
		check:      opts.CheckPassword,
		authz:      "token " + opts.UpstreamToken,
		log:        opts.Logger,
		now:        opts.Now,
		csrf:       http.NewCrossOriginProtection(),
		upstream:   opts.Upstream,
		checking:   make(chan struct{}, 2),
		control:    opts.Control,
		activity:   opts.OnActivity,
		banner:     opts.Banner,
		portalKey:  opts.PortalKey,
		portalOnly: opts.PortalOnly,
		obs:        opts.Observer,
	}
	if g.obs == nil {
		g.obs = nopObserver{}
	}
	// The portal's Open posts from the portal's site; the open token
	// authenticates that post (portallogin.go).
	g.csrf.AddInsecureBypassPattern("POST " + portalLoginPath)
	static, err := openStatic(opts.Static)
	if err != nil {
		return nil, fmt.Errorf("gateway options: %w", err)
	}
	g.static = static
	for _, h := range opts.Hosts {
		n, _ := normalizeHost(h) // checked by validate
		g.hosts[n] = struct{}{}
	}
	if g.activity == nil {
		g.activity = func() {}
	}
	if len(g.allow) == 0 {
		g.allow = defaultAllow
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	ttl := opts.SessionTTL
	if ttl == 0 {
		ttl = DefaultSessionTTL
	}
	g.sessions = newSessionStore(ttl)
	g.sessions.ended = g.conns.closeSession
	g.kernels = newKernelTracker(g.now, g.activity)
	g.limiter = newLoginLimiter()
	g.proxy = g.newProxy(opts.Transport)
	return g, nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Upstream == nil {
		errs = append(errs, errors.New("upstream: required"))
	} else if (o.Upstream.Scheme != "http" && o.Upstream.Scheme != "https") || o.Upstream.Host == "" {
		errs = append(errs, fmt.Errorf("upstream %q: want an http or https URL with a host", o.Upstream.Redacted()))
	}
	if o.CheckPassword == nil {
		errs = append(errs, errors.New("check password: required"))
	}
	if !validUser(o.User) {
		errs = append(errs, fmt.Errorf("user %q: want letters, digits, '.', '_' or '-'", o.User))
	}
	for _, p := range o.Allow {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allow: invalid prefix %v", p))
		}
	}
	for _, h := range o.Hosts {
		if _, err := NormalizeHost(h); err != nil {
			errs = append(errs, fmt.Errorf("hosts: %w", err))
		}
	}
	for _, p := range o.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("trusted proxies: invalid prefix %v", p))
		}
	}
	if o.PortalKey != nil && len(o.PortalKey) != ed25519.PublicKeySize {
		errs = append(errs, fmt.Errorf("portal key: want %d bytes, got %d", ed25519.PublicKeySize, len(o.PortalKey)))
	}
	if o.PortalOnly && o.PortalKey == nil {
		errs = append(errs, errors.New("portal only: needs the portal key, or nobody could get in"))
	}
	if o.SessionTTL < 0 {
		errs = append(errs, fmt.Errorf("session ttl %v: must not be negative", o.SessionTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway options: %w", err)
	}
	return nil
}

// validUser reports whether user can be part of a cookie name and a page
// title without escaping. The empty user is valid.
func validUser(user string) bool {
	if len(user) > 64 {
		return false
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// cookieName is the session cookie's name for user: spinbook-<user>, with
// the __Host- prefix when the gateway is behind TLS.
func cookieName(user string, secure bool) string {
	name := "spinbook"
	if user != "" {
		name += "-" + user
	}
	if secure {
		name = "__Host-" + name
	}
	return name
}

// Sessions reports how many sessions are live.
func (g *Gateway) Sessions() int {
	return g.sessions.live(g.now())
}

// ServeHTTP is the front door: it checks, in order, the Host, the client's address,
// cross-site requests, websocket Origins and the session, then serves the
// gateway's own pages or proxies to Jupyter. Every request is logged once.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	client := g.ClientIP(r)
	sw := &statusWriter{ResponseWriter: w}
	g.serve(sw, r, client)
	d := g.now().Sub(start)
	g.logRequest(r, client, sw.status(), d)
	g.obs.Request(RouteClass(r), sw.status(), d)
	if sw.proxied && sw.written > 0 {
		g.obs.Proxied("to_client", sw.written)
	}
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	if !g.hostAllowed(r) {
		g.misdirected(w, r, client)
		return
	}
	if !g.allowed(client) {
		g.log.Warn("client not on allowlist", "client", addrString(client))
		g.writeMessage(w, http.StatusForbidden, pageNotAllowed, addrString(client))
		return
	}
	if g.control != nil && strings.HasPrefix(r.URL.Path, ControlPrefix) {
		g.control.ServeHTTP(w, r)
		return
	}
	if err := g.csrf.Check(r); err != nil {
		g.log.Warn("cross-site request refused", "client", addrString(client), "method", r.Method, "path", r.URL.Path)
		g.writeMessage(w, http.StatusForbidden, pageCrossSite, "")
		return
	}
	if isUpgrade(r) && !g.sameOrigin(r) {
		g.log.Warn("websocket origin refused", "client", addrString(client), "path", r.URL.Path)
		g.writeMessage(w, http.StatusForbidden, pageBadOrigin, "")
		return
	}

	switch p := r.URL.Path; {
	case p == "/spinbook" || strings.HasPrefix(p, "/spinbook/"):
		g.serveOwn(w, r, client)
		return
	case p == "/logout":
		// Jupyter's own Logout button navigates here with a GET, which
		// must not change anything (any site can make a browser send
		// one): it gets a page whose form posts to the logout.
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.logoutPage(w, r)
		case http.MethodPost:
			g.logout(w, r, client)
		default:
			g.methodNotAllowed(w, "GET, HEAD, POST")
		}
		return
	}

	session, ok := g.sessions.touchKey(r.Header["Cookie"], g.cookieName, g.now())
	if !ok {
		g.loginRequired(w, r)
		return
	}
	if isUpgrade(r) {
		r = withSession(r, session) // its websocket closes when the session ends
	}
	if g.serveStatic(w, r) {
		return
	}
	r = g.withBanner(r) // as things stood before this request
	if isUserRequest(r) {
		g.activity()
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.proxied = true // its bytes count as proxied
	}
	g.proxy.ServeHTTP(w, r)
}

// serveOwn answers the gateway's own routes, under /spinbook/.
func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	switch r.URL.Path {
	case loginPath:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.loginPage(w, r)
		case http.MethodPost:
			g.login(w, r, client)
		default:
			g.methodNotAllowed(w, "GET, HEAD, POST")
		}
	case portalLoginPath:
		if r.Method != http.MethodPost {
			g.methodNotAllowed(w, "POST")
			return
		}
		g.portalLogin(w, r, client)
	case logoutPath:
		if r.Method != http.MethodPost {
			g.methodNotAllowed(w, "POST")
			return
		}
		g.logout(w, r, client)
	default:
		g.writeMessage(w, http.StatusNotFound, pageNotFound, "")
	}
}

// loginRequired answers a request without a valid session: a browser
// navigation goes to the login page, anything else gets a 401.
func (g *Gateway) loginRequired(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		!isUpgrade(r) && strings.Contains(r.Header.Get("Accept"), "text/html") {
		setPageHeaders(w.Header())
		w.Header().Set("Location", loginPath+"?next="+url.QueryEscape(r.URL.RequestURI()))
		w.WriteHeader(http.StatusFound)
		return
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"message":"login required"}` + "\n"))
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	g.writeMessage(w, http.StatusMethodNotAllowed, pageMethod, "")
}

// isUpgrade reports whether r asks to switch protocols (a websocket).
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// sameOrigin reports whether r carries exactly one Origin header equal to
// the origin r was sent to: the gateway's scheme and r.Host.
func (g *Gateway) sameOrigin(r *http.Request) bool {
	origins := r.Header["Origin"]
	if len(origins) != 1 {
		return false
	}
	o, err := url.Parse(origins[0])
	if err != nil {
		return false
	}
	scheme := "http"
	if g.secure || r.TLS != nil {
		scheme = "https"
	}
	return o.Scheme == scheme && o.Opaque == "" && o.User == nil &&
		o.Host != "" && strings.EqualFold(o.Host, r.Host) &&
		o.Path == "" && o.RawQuery == "" && !o.ForceQuery && o.Fragment == ""
}

// newSessionID returns 32 random bytes, base64url-encoded.
func newSessionID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails; see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// addrString formats a client address for logs and pages; an invalid one
// (a peer that is not an IP) is "unknown".
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}
