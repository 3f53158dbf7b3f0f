package gateway

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// portalLoginPath is where the portal's "Open" posts an open token.
const portalLoginPath = "/spinbook/portal-login"

// portalLogin exchanges an open token, posted as the form field "token",
// for a session, and sends the browser to "/". The post comes from the
// portal, another site, so it is exempt from the cross-site check: the
// token itself, bound to this server, short-lived and single-use, is
// what authenticates it. Failures count against the client's login rate
// limit, as wrong passwords do.
func (g *Gateway) portalLogin(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	if g.portalKey == nil {
		g.writeMessage(w, http.StatusNotFound, pageNotFound, "")
		return
	}
	if !g.readLoginForm(w, r, maxLoginBody+4096) { // a token is up to 4 KiB
		return
	}
	now := g.now()
	if ok, wait := g.limiter.allow(client, now); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		g.obs.LoginThrottled()
		g.log.Warn("portal login rate limited", "client", addrString(client), "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		g.writeMessage(w, http.StatusTooManyRequests, pageOpenRateLimited, "")
		return
	}
	scheme := "http"
	if g.secure || r.TLS != nil {
		scheme = "https"
	}
	c, err := verifyOpenToken(g.portalKey, r.PostForm.Get("token"), g.user, r.Host, scheme, now)
	if err == nil && !g.usedTokens.take(c.ID, time.Unix(c.Expires, 0), now) {
		err = errTokenReplayed
	}
	if err != nil {
		g.limiter.failed(client, now)
		g.obs.LoginFailed()
		g.log.Warn("portal login refused", "client", addrString(client), "reason", err.Error())
		g.writeMessage(w, http.StatusUnauthorized, pageOpenRefused, "")
		return
	}
	g.limiter.succeeded(client)
	g.sessions.remove(r.Header["Cookie"], g.cookieName)
	g.setSessionCookie(w, g.sessions.create(now))
	g.log.Info("login", "client", addrString(client), "via", "portal")
	redirect(w, "/", http.StatusSeeOther)
}
