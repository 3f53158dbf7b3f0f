package portal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
)

// who is the person behind a request.
type who struct {
	User  string
	Admin bool
	// Session is the browser's session; nil for an API token.
	Session *session
}

// mayAct reports whether w may act on user's server.
func (w who) mayAct(user string) bool { return w.Admin || w.User == user }

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionOf returns the request's live session, sliding its expiry.
func (p *Portal) sessionOf(r *http.Request) (*session, error) {
	c, err := r.Cookie(p.cookieName)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	now := p.now()
	s, ok, err := p.store.touchSession(r.Context(), c.Value, now, now.Add(sessionTTL))
	if err != nil || !ok {
		return nil, err
	}
	return &s, nil
}

// page wraps a page handler: it needs a session; without one a browser
// goes to the sign-in page.
func (p *Portal) page(h func(http.ResponseWriter, *http.Request, who)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := p.sessionOf(r)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if s == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		h(w, r, who{User: s.User, Admin: s.Admin, Session: s})
	}
}

// change wraps a handler that changes state: it must come from the
// portal's own pages (the cross-site check) and carry the session's CSRF
// token in the form field "csrf".
func (p *Portal) change(h func(http.ResponseWriter, *http.Request, who)) http.HandlerFunc {
	return p.page(func(w http.ResponseWriter, r *http.Request, id who) {
		if err := p.csrf.Check(r); err != nil {
			p.log.Warn("cross-site request refused", "client", p.clientIP(r), "path", r.URL.Path)
			p.message(w, http.StatusForbidden, "Cross-site request refused", "This request came from another site.", "Use the portal's own pages.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			p.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.", "Go back and try again.")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(id.Session.CSRF)) != 1 {
			p.log.Warn("csrf token missing or wrong", "client", p.clientIP(r), "path", r.URL.Path, "user", id.User)
			p.message(w, http.StatusForbidden, "Form expired", "This form is from an old or foreign page.", "Reload the page and try again.")
			return
		}
		h(w, r, id)
	})
}

// startSession signs user in: any session the browser had ends, and a
// new one, with a new id, starts.
func (p *Portal) startSession(w http.ResponseWriter, r *http.Request, user string, admin bool) error {
	if c, err := r.Cookie(p.cookieName); err == nil && c.Value != "" {
		if err := p.store.deleteSession(r.Context(), hashHex(c.Value)); err != nil {
			return err
		}
	}
	_ = p.store.pruneSessions(r.Context(), p.now())
	id := randomString(32)
	if err := p.store.createSession(r.Context(), id, session{User: user, Admin: admin, CSRF: randomString(32)}, p.now().Add(sessionTTL)); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookieName, Value: id, Path: "/", Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

// loginPage offers the ways to sign in.
func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, err := p.sessionOf(r); err == nil && s != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	msg := ""
	if r.URL.Query().Has("signed_out") {
		msg = "You are signed out."
	}
	p.render(w, http.StatusOK, "login", loginData{Message: msg, OIDC: p.oidc != nil, Passwords: len(p.users) > 0})
}

type loginData struct {
	Message    string
	Error      bool
	OIDC       bool
	Passwords  bool
	User       string
	RetryAfter int
}

// passwordLogin checks a user name and password from the config (or the
// generated admin), rate limited per client address.
func (p *Portal) passwordLogin(w http.ResponseWriter, r *http.Request) {
	if err := p.csrf.Check(r); err != nil {
		p.message(w, http.StatusForbidden, "Cross-site request refused", "This sign-in came from another site.", "Open the portal's own page to sign in.")
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(10 * time.Second))
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		p.message(w, http.StatusBadRequest, "Bad request", "The sign-in form could not be read.", "Go back and try again.")
		return
	}
	user := strings.TrimSpace(r.PostForm.Get("user"))
	client := p.clientIP(r)
	if ok, wait := p.limiter.allow(client, p.now()); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p.log.Warn("sign-in rate limited", "client", client)
		p.metrics.throttled.WithLabelValues("sign_in").Inc()
		p.render(w, http.StatusTooManyRequests, "login", loginData{Message: fmt.Sprintf("Too many attempts. Wait %d seconds and try again.", secs), Error: true, OIDC: p.oidc != nil, Passwords: true, User: user})
		return
	}
	u, known := p.users[user]
	hash := p.dummyHash
	if known {
		hash = u.PasswordHash
	}
	ok := p.checkPassword(r.Context(), hash, r.PostForm.Get("password")) && known
	if !ok {
		p.limiter.failed(client, p.now())
		p.log.Warn("sign-in failed", "client", client)
		p.record(r, who{User: "-"}, "sign in", validOr(user), "wrong user name or password")
		p.render(w, http.StatusUnauthorized, "login", loginData{Message: "Wrong user name or password.", Error: true, OIDC: p.oidc != nil, Passwords: true, User: user})
		return
	}
	if err := p.startSession(w, r, user, u.Admin); err != nil {
		p.fail(w, r, err)
		return
	}
	p.record(r, who{User: user}, "sign in", user, "ok (password)")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// validOr is name if it is a valid user name, else "?" (a log or audit
// line never carries what someone typed as their name, which may be a
// password).
func validOr(name string) string {
	if config.ValidateUser(name) == nil {
		return name
	}
	return "?"
}

// checkPassword verifies password against hash, at most two at a time
// (each argon2id check takes tens of MiB).
func (p *Portal) checkPassword(ctx context.Context, hash, password string) bool {
	select {
	case p.checking <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-p.checking }()
	h, err := secret.ParsePasswordHash(hash)
	return err == nil && password != "" && h.Verify(password)
}

// logout ends the session on the server too.
func (p *Portal) logout(w http.ResponseWriter, r *http.Request, id who) {
	if err := p.store.deleteSession(r.Context(), id.Session.Key); err != nil {
		p.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookieName, Value: "", Path: "/", MaxAge: -1, Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	p.record(r, id, "sign out", id.User, "ok")
	http.Redirect(w, r, "/login?signed_out=1", http.StatusSeeOther)
}

// firstAdmin makes sure someone can sign in: with no OIDC and no users in
// the config, the portal has a generated admin, "admin", whose password it
// prints once, on the start that makes it, and keeps only hashed.
func (p *Portal) firstAdmin(ctx context.Context, out io.Writer) error {
	if p.oidc != nil || len(p.users) > 0 {
		return nil
	}
	hash, ok, err := p.store.setting(ctx, "", "generated_admin_hash")
	if err != nil {
		return err
	}
	if !ok {
		password := randomString(15)
		if hash, err = secret.HashPassword(password); err != nil {
			return err
		}
		if err := p.store.setSetting(ctx, "", "generated_admin_hash", hash); err != nil {
			return err
		}
		if out != nil {
			fmt.Fprintf(out, "portal admin login (shown only now): user admin, password %s\n", password)
			fmt.Fprintln(out, "  to choose your own, put users under portal.users in the config (hashes from `spinbook password`)")
		}
	} else if out != nil {
		fmt.Fprintln(out, "sign in as admin with the password printed when the portal first started (to reset it: spinbook portal --reset-admin)")
	}
	p.users["admin"] = config.PortalUser{PasswordHash: hash, Admin: true}
	return nil
}

// ResetAdmin forgets the generated admin's password, so that the next
// start makes and prints a new one.
func ResetAdmin(ctx context.Context, stateDir string) error {
	st, err := openStore(ctx, storePath(stateDir))
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.db.ExecContext(ctx, "DELETE FROM settings WHERE user = '' AND key = 'generated_admin_hash'")
	return err
}

var (
	dummyOnce sync.Once
	dummy     string
	dummyErr  error
)

// dummyHash is a hash of a random password, checked when the user name is
// unknown, so that an unknown name takes as long as a wrong password.
func dummyHash() (string, error) {
	dummyOnce.Do(func() { dummy, dummyErr = secret.HashPassword(randomString(16)) })
	return dummy, dummyErr
}

// LoadKey returns the portal's Ed25519 key from stateDir/portal.key,
// making it (0600) on first use. Its public half goes into every server's
// agent spec; open tokens are signed with it.
func LoadKey(stateDir string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("portal state dir: %w", err)
	}
	path := stateDir + "/portal.key"
	data, err := readPrivate(path)
	if err == nil {
		seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("portal key %s: not a base64 Ed25519 seed; move it away to make a new one (servers started with the old one then need a restart)", path)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, errNoFile) {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make portal key: %w", err)
	}
	if err := atomicfile.Write(path, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write portal key: %w", err)
	}
	return key, nil
}

// PublicKey is key's public half as AgentSpec.PortalKey carries it.
func PublicKey(key ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

// A limiter limits failures per client address: a burst, then one every
// so often.
type limiter struct {
	every time.Duration
	burst int

	mu sync.Mutex
	by map[string]*rate.Limiter
}

// newLimiter is for sign-ins: 5 failures, then one every 12 seconds.
func newLimiter() *limiter { return newLimiterRate(12*time.Second, 5) }

func newLimiterRate(every time.Duration, burst int) *limiter {
	return &limiter{every: every, burst: burst, by: make(map[string]*rate.Limiter)}
}

func (l *limiter) get(client string) *rate.Limiter {
	if len(l.by) > 10000 {
		clear(l.by) // bounded memory; a flood only resets everyone's budget
	}
	lim, ok := l.by[client]
	if !ok {
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.by[client] = lim
	}
	return lim
}

// allow reports whether client may try now, and else how long to wait.
func (l *limiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.get(client)
	if lim.TokensAt(now) >= 1 {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// failed spends one of client's attempts.
func (l *limiter) failed(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(client).AllowN(now, 1)
}
