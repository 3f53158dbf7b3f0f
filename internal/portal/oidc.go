package portal

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/spinbook/spinbook/internal/config"
)

// OIDC signs people in with an OpenID Connect provider: the authorization
// code flow with PKCE (S256), state bound to the browser by a cookie, a
// nonce in the ID token, and the ID token verified by go-oidc against the
// provider's published keys, issuer and client id.
type OIDC struct {
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	cfg      config.OIDC

	mu      sync.Mutex
	pending map[string]pendingLogin // by state; in memory: a restart asks people to start again
}

// A pendingLogin is a sign-in sent to the provider and not yet back.
type pendingLogin struct {
	nonce, verifier string
	expires         time.Time
}

// loginWindow is how long a person has at the provider.
const loginWindow = 10 * time.Minute

// oidcCookie binds a sign-in's state to the browser that began it.
const oidcCookie = "spinbook-portal-oidc"

// NewOIDC discovers the provider at cfg.Issuer. portalURL is the portal's
// origin; the provider must know portalURL/oidc/callback as a redirect URI.
// clientSecret is cfg.ClientSecret resolved.
func NewOIDC(ctx context.Context, cfg config.OIDC, clientSecret, portalURL string) (*OIDC, error) {
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("portal.oidc.issuer %s: discovery: %w", cfg.Issuer, err)
	}
	scopes := []string{oidc.ScopeOpenID, "email", "profile"}
	if cfg.GroupsClaim == "groups" && (len(cfg.AllowedGroups) > 0 || len(cfg.AdminGroups) > 0) {
		scopes = append(scopes, "groups")
	}
	return &OIDC{
		conf: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: clientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  strings.TrimSuffix(portalURL, "/") + "/oidc/callback",
			Scopes:       scopes,
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		cfg:      cfg,
		pending:  make(map[string]pendingLogin),
	}, nil
}

// oidcLogin sends the browser to the provider.
func (p *Portal) oidcLogin(w http.ResponseWriter, r *http.Request) {
	o := p.oidc
	if o == nil {
		p.message(w, http.StatusNotFound, "No identity provider", "This portal signs people in with passwords only.", "An admin can configure portal.oidc.")
		return
	}
	state, nonce, verifier := randomString(24), randomString(24), oauth2.GenerateVerifier()
	now := p.now()
	o.mu.Lock()
	for k, v := range o.pending {
		if now.After(v.expires) {
			delete(o.pending, k)
		}
	}
	if len(o.pending) >= 10000 {
		o.mu.Unlock()
		p.message(w, http.StatusServiceUnavailable, "Busy", "Too many sign-ins are under way.", "Try again in a few minutes.")
		return
	}
	o.pending[state] = pendingLogin{nonce: nonce, verifier: verifier, expires: now.Add(loginWindow)}
	o.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: state, Path: "/oidc/", MaxAge: int(loginWindow / time.Second),
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, o.conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback takes the provider's answer: the state must be the one this
// browser began with (its cookie), and is used once; the code is exchanged
// with the PKCE verifier; the ID token must verify and carry the nonce.
// Then the claims decide who the person is and whether they may come in.
func (p *Portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := p.oidc
	if o == nil {
		p.oidcLogin(w, r)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(oidcCookie)
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/oidc/", MaxAge: -1, Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		p.log.Warn("oidc callback without this browser's state", "client", p.clientIP(r))
		p.message(w, http.StatusBadRequest, "Sign-in expired", "This sign-in was not started in this browser, or was used already.", "Start again from the sign-in page.")
		return
	}
	o.mu.Lock()
	pl, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if !ok || p.now().After(pl.expires) {
		p.message(w, http.StatusBadRequest, "Sign-in expired", "This sign-in took too long, or the portal restarted meanwhile.", "Start again from the sign-in page.")
		return
	}
	if e := q.Get("error"); e != "" {
		p.log.Warn("oidc provider refused", "client", p.clientIP(r), "error", truncate(e, 64))
		p.message(w, http.StatusUnauthorized, "Not signed in", "The identity provider did not sign you in ("+truncate(e, 64)+").", "Start again from the sign-in page.")
		return
	}
	user, admin, err := o.identify(r.Context(), q.Get("code"), pl)
	if err != nil {
		var refused *refusal
		if errors.As(err, &refused) {
			p.log.Warn("oidc sign-in refused", "client", p.clientIP(r), "why", refused.Log)
			p.record(r, who{User: "-"}, "sign in", validOr(refused.User), "refused: "+refused.Log)
			p.message(w, http.StatusForbidden, "Not allowed in", refused.Page, "Ask the portal's admin.")
			return
		}
		p.log.Error("oidc sign-in", "client", p.clientIP(r), "err", err)
		p.message(w, http.StatusBadGateway, "Sign-in failed", "The portal could not complete the sign-in with the identity provider.", "Try again; if it persists, the portal's log says why.")
		return
	}
	if err := p.store.setSetting(r.Context(), user, "admin", fmt.Sprint(admin)); err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.startSession(w, r, user, admin); err != nil {
		p.fail(w, r, err)
		return
	}
	p.record(r, who{User: user}, "sign in", user, "ok (oidc)")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// A refusal is a sign-in the provider vouched for that the portal turns
// down: Page tells the person, Log the admin.
type refusal struct {
	User, Page, Log string
}

func (r *refusal) Error() string { return r.Log }

// identify exchanges code and reads the person's user name and groups from
// the verified ID token.
func (o *OIDC) identify(ctx context.Context, code string, pl pendingLogin) (user string, admin bool, err error) {
	tok, err := o.conf.Exchange(ctx, code, oauth2.VerifierOption(pl.verifier))
	if err != nil {
		return "", false, fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return "", false, errors.New("the token response has no id_token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return "", false, fmt.Errorf("verify ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.nonce)) != 1 {
		return "", false, errors.New("the ID token's nonce is not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", false, fmt.Errorf("ID token claims: %w", err)
	}
	return o.mapClaims(claims)
}

// mapClaims turns ID-token claims into a spinbook user name (user_claim:
// email, its local part; or preferred_username) and admin, checking
// allowed_groups.
func (o *OIDC) mapClaims(claims map[string]any) (string, bool, error) {
	v, _ := claims[o.cfg.UserClaim].(string)
	name := v
	if o.cfg.UserClaim == "email" {
		if verified, ok := claims["email_verified"].(bool); ok && !verified {
			return "", false, &refusal{Page: "Your email address is not verified at the identity provider.", Log: "email not verified"}
		}
		local, _, ok := strings.Cut(v, "@")
		if !ok {
			return "", false, &refusal{Page: "The identity provider gave no email address.", Log: "no email claim"}
		}
		name = local
	}
	name = strings.ToLower(name)
	if err := config.ValidateUser(name); err != nil {
		return "", false, &refusal{Page: "Your account's name cannot be a spinbook user name (1 to 28 lowercase letters, digits and '-').",
			Log: fmt.Sprintf("claim %s does not make a valid user name", o.cfg.UserClaim)}
	}
	var groups []string
	switch g := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok {
				groups = append(groups, s)
			}
		}
	case string:
		groups = []string{g}
	}
	in := func(list []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(list, g) })
	}
	admin := in(o.cfg.AdminGroups)
	if len(o.cfg.AllowedGroups) > 0 && !in(o.cfg.AllowedGroups) && !admin {
		return "", false, &refusal{User: name, Page: "You are not in a group this portal admits.", Log: "not in allowed_groups"}
	}
	return name, admin, nil
}
