package config

import (
	"net/netip"
	"net/url"
	"slices"

	"github.com/spinbook/spinbook/internal/secret"
)

// Portal configures `spinbook portal`, the team's web portal (see
// docs/portal.md). Everything is optional: with nothing set, the portal
// listens on 127.0.0.1:8700 and makes an admin login on its first start.
type Portal struct {
	// Listen is the address the portal serves on. Default: 127.0.0.1:8700.
	Listen string `yaml:"listen"`
	// URL is the portal's address as people open it, such as
	// https://notebooks.example.com; its host is the one name (besides
	// localhost and IP addresses) the portal answers to, and an https URL
	// makes its cookies Secure and __Host-. Default: http://LISTEN.
	URL string `yaml:"url"`
	// OIDC signs people in with the company's identity provider.
	OIDC OIDC `yaml:"oidc"`
	// Users are people who sign in with a password (teams without an
	// identity provider), by user name.
	Users map[string]PortalUser `yaml:"users"`
	// TrustedProxies lists the peers, as CIDRs or IP addresses, whose
	// X-Forwarded-For the portal believes for its sign-in limits, audit and
	// log: the load balancer or ingress in front of it. Unset, it is
	// access.trusted_proxies (the same proxies usually front the servers);
	// [] believes no one.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// ParsedURL is URL parsed; filled by Validate when URL is set.
	ParsedURL *url.URL `yaml:"-"`
	// TrustedPrefixes is TrustedProxies parsed; filled by Validate.
	TrustedPrefixes []netip.Prefix `yaml:"-"`
}

// OIDC is an OpenID Connect identity provider.
type OIDC struct {
	// Issuer is the provider's issuer URL (discovery at
	// ISSUER/.well-known/openid-configuration).
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are the portal's client at the provider;
	// the secret may be a reference such as ${env:OIDC_SECRET}.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// UserClaim names the claim that becomes the spinbook user name:
	// "email" (its local part: alice@example.com -> alice) or
	// "preferred_username". Default: email.
	UserClaim string `yaml:"user_claim"`
	// GroupsClaim names the claim listing the person's groups. Default:
	// groups.
	GroupsClaim string `yaml:"groups_claim"`
	// AllowedGroups: when set, only members of one of them may sign in.
	AllowedGroups []string `yaml:"allowed_groups"`
	// AdminGroups: members are portal admins (see every server, stop any).
	AdminGroups []string `yaml:"admin_groups"`
}

// Enabled reports whether an identity provider is configured.
func (o OIDC) Enabled() bool { return o.Issuer != "" }

// A PortalUser signs in to the portal with a password.
type PortalUser struct {
	// PasswordHash is an argon2id hash from `spinbook password`.
	PasswordHash string `yaml:"password_hash"`
	// Admin makes the user a portal admin.
	Admin bool `yaml:"admin"`
}

// DefaultPortalListen is where the portal listens when portal.listen is
// empty.
const DefaultPortalListen = "127.0.0.1:8700"

func (v *validation) portal() {
	p := &v.c.Portal
	p.TrustedPrefixes = v.prefixes("portal.trusted_proxies", p.TrustedProxies)
	if p.Listen != "" && !isAddrPort(p.Listen) {
		v.problemf("portal.listen", "%q is not HOST:PORT, such as 0.0.0.0:8700", p.Listen)
	}
	if p.URL != "" {
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			v.problemf("portal.url", "%q: want the portal's origin, such as https://notebooks.example.com (no path, query or user)", p.URL)
		} else {
			u.Path = ""
			p.ParsedURL = u
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range p.Users {
			if !yield(k) {
				return
			}
		}
	}) {
		path := "portal.users." + name
		if err := ValidateUser(name); err != nil {
			v.problemf(path, "%v", err)
		}
		if _, err := secret.ParsePasswordHash(p.Users[name].PasswordHash); err != nil {
			v.problemf(path+".password_hash", "not an argon2id hash (make one with `spinbook password`): %v", err)
		}
	}
	o := &p.OIDC
	if !o.Enabled() {
		if o.ClientID != "" || o.ClientSecret != "" || len(o.AllowedGroups) > 0 || len(o.AdminGroups) > 0 {
			v.problemf("portal.oidc.issuer", "required when any other portal.oidc key is set")
		}
		return
	}
	if u, err := url.Parse(o.Issuer); err != nil || u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		v.problemf("portal.oidc.issuer", "%q: want an https URL (http only on this machine, for tests)", o.Issuer)
	}
	if o.ClientID == "" {
		v.problemf("portal.oidc.client_id", "required with portal.oidc.issuer: the client id the provider gave the portal")
	}
	switch o.UserClaim {
	case "":
		o.UserClaim = "email"
	case "email", "preferred_username":
	default:
		v.problemf("portal.oidc.user_claim", "%q: want email or preferred_username", o.UserClaim)
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = "groups"
	}
}
