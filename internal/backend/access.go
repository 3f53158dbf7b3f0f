package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
)

// AccessDigest is a SHA-256 over the settings of s that decide who gets in:
// the password hash, the allowlist, the trusted proxies, TLS, the host
// names and the portal's key and portal_only (each left out while empty,
// so that servers started before they existed keep their digest). A backend
// keeps it with a running server (Spec.AccessDigest), so that `up` can
// tell when they changed. It is a hash of a hash: it gives nothing away.
func (s AgentSpec) AccessDigest() string {
	data, _ := json.Marshal(struct {
		PasswordHash   string   `json:"password_hash"`
		Allow          []string `json:"allow"`
		TrustedProxies []string `json:"trusted_proxies"`
		TLSCert        string   `json:"tls_cert"`
		TLSKey         string   `json:"tls_key"`
		TLSSelfSigned  bool     `json:"tls_self_signed"`
		Hosts          []string `json:"hosts,omitempty"`
		PortalKey      string   `json:"portal_key,omitempty"`
		PortalOnly     bool     `json:"portal_only,omitempty"`
	}{s.PasswordHash, s.Allow, s.TrustedProxies, s.TLSCert, s.TLSKey, s.TLSSelfSigned, s.Hosts, s.PortalKey, s.PortalOnly})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// AllowsLoopback says whether allow, entries of access.allow (CIDRs or
// addresses), admits 127.0.0.1: a client on this machine. A container's
// or pod's agent sees such a client arrive from a gateway instead, which
// the docker and kubernetes backends then add.
func AllowsLoopback(allow []string) bool {
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, s := range allow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if p.Contains(loopback) {
			return true
		}
	}
	return false
}
