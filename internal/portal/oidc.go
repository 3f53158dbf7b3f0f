package portal

import "net/http"

// OIDC signs people in with an OpenID Connect provider (oidcflow.go).
type OIDC struct{}

func (p *Portal) oidcLogin(w http.ResponseWriter, r *http.Request) {
	p.message(w, http.StatusNotFound, "No identity provider", "This portal signs people in with passwords only.", "An admin can configure portal.oidc.")
}

func (p *Portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	p.oidcLogin(w, r)
}
