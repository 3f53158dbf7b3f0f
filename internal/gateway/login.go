package gateway

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// The gateway's own routes.
const (
	loginPath  = "/spinbook/login"
	logoutPath = "/spinbook/logout"

	// maxLoginBody bounds a login form; a password fits with room to spare.
	maxLoginBody = 4 << 10

	// loginReadTimeout bounds the time to read a login form.
	loginReadTimeout = 10 * time.Second
)

// loginPage shows the login form; a client that already has a session goes
// straight on to where it was going.
func (g *Gateway) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	next := SanitizeNext(q.Get("next"))
	if g.portalOnly && !g.sessions.touch(r.Header["Cookie"], g.cookieName, g.now()) {
		g.writeMessage(w, http.StatusOK, pagePortalOnly, "")
		return
	}
	if g.sessions.touch(r.Header["Cookie"], g.cookieName, g.now()) {
		redirect(w, next, http.StatusSeeOther)
		return
	}
	msg := ""
	if q.Has("logged_out") {
		msg = msgLoggedOut
	}
	g.writeLogin(w, http.StatusOK, next, msg, false)
}

// login checks a submitted password and, if it is right, starts a session.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	if g.portalOnly {
		g.log.Warn("password login refused: portal only", "client", addrString(client))
		g.writeMessage(w, http.StatusForbidden, pagePortalOnly, "")
		return
	}
	if !g.readLoginForm(w, r, maxLoginBody) {
		return
	}
	next := SanitizeNext(r.PostForm.Get("next"))

	if ok, wait := g.limiter.allow(client, g.now()); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		g.log.Warn("login rate limited", "client", addrString(client), "retry_after_s", secs)
		g.obs.LoginThrottled()
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		g.writeLogin(w, http.StatusTooManyRequests, next, waitMessage(secs), true)
		return
	}

	password := r.PostForm.Get("password")
	ok, err := g.checkPassword(r, password)
	if err != nil {
		// The client went away while waiting for its turn.
		g.writeMessage(w, http.StatusServiceUnavailable, pageBusy, "")
		return
	}
	if !ok {
		g.limiter.failed(client, g.now())
		g.log.Warn("login failed", "client", addrString(client))
		g.obs.LoginFailed()
		g.writeLogin(w, http.StatusUnauthorized, next, msgWrongPassword, true)
		return
	}
	g.limiter.succeeded(client)

	// A new id on every login, and the old session (if any) ends.
	g.sessions.remove(r.Header["Cookie"], g.cookieName)
	g.setSessionCookie(w, g.sessions.create(g.now()))
	g.log.Info("login", "client", addrString(client))
	redirect(w, next, http.StatusSeeOther)
}

// readLoginForm reads a login form of at most max bytes into r.PostForm;
// false when it has answered the request itself. A login form is small
// and quick to send: neither a large nor a trickling body may hold the
// handler.
func (g *Gateway) readLoginForm(w http.ResponseWriter, r *http.Request, max int64) bool {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(loginReadTimeout))
	r.Body = http.MaxBytesReader(w, r.Body, max)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			g.writeMessage(w, http.StatusRequestEntityTooLarge, pageTooLarge, "")
			return false
		}
		g.writeMessage(w, http.StatusBadRequest, pageBadForm, "")
		return false
	}
	return true
}

// checkPassword runs CheckPassword, at most two at a time: each argon2id
// check takes tens of MiB. An empty password is wrong without a check.
func (g *Gateway) checkPassword(r *http.Request, password string) (bool, error) {
	if password == "" {
		return false, nil
	}
	select {
	case g.checking <- struct{}{}:
	case <-r.Context().Done():
		return false, r.Context().Err()
	}
	defer func() { <-g.checking }()
	return g.check(password), nil
}

// logoutPage answers a GET of /logout, where Jupyter's Logout button
// (notebook 6, JupyterLab 4, jupyter_server) sends the browser: a form that
// posts to the logout, so that a GET changes nothing. When the browser
// says the navigation came from this origin (Sec-Fetch-Site: same-origin,
// which no other site can send), that is the button itself, and the page
// submits the form at once, keeping the logout one click; after a GET from
// anywhere else, or from a browser that does not say, the person clicks.
func (g *Gateway) logoutPage(w http.ResponseWriter, r *http.Request) {
	auto := r.Header.Get("Sec-Fetch-Site") == "same-origin"
	title := "Log out — spinbook"
	g.writePage(w, http.StatusOK, "logout", struct {
		Title, User string
		Auto        bool
	}{title, g.user, auto})
}

// logout ends the client's session, on the server too, and sends it to the
// login page. It is reached only by POST, past the cross-site check.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	g.sessions.remove(r.Header["Cookie"], g.cookieName)
	g.clearSessionCookie(w)
	g.log.Info("logout", "client", addrString(client))
	redirect(w, loginPath+"?logged_out=1", http.StatusSeeOther)
}

// redirect sends the client to location, a path on this origin. Unlike
// http.Redirect it does not rewrite location.
func redirect(w http.ResponseWriter, location string, code int) {
	h := w.Header()
	setPageHeaders(h)
	h.Set("Location", location)
	w.WriteHeader(code)
}

func waitMessage(secs int) string {
	unit := " seconds"
	if secs == 1 {
		unit = " second"
	}
	return "Too many attempts. Wait " + strconv.Itoa(secs) + unit + " and try again."
}
