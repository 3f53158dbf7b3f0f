package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestAccessDigestWithoutHosts: servers started before access.hosts existed
// keep their digest, so an upgrade alone does not restart them.
func TestAccessDigestWithoutHosts(t *testing.T) {
	s := AgentSpec{PasswordHash: "$argon2id$a", Allow: []string{"127.0.0.1/32"}}
	if got, want := s.AccessDigest(), digestOf(t, `{"password_hash":"$argon2id$a","allow":["127.0.0.1/32"],"trusted_proxies":null,"tls_cert":"","tls_key":"","tls_self_signed":false}`); got != want {
		t.Errorf("digest without hosts = %s, want the old %s", got, want)
	}
}

func digestOf(t *testing.T, js string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(js))
	return hex.EncodeToString(sum[:])
}

func TestAccessDigest(t *testing.T) {
	base := AgentSpec{User: "alice", Workspace: "/w", PasswordHash: "$argon2id$a", Allow: []string{"127.0.0.1/32"}}
	same := base
	same.Workspace, same.JupyterCommand, same.FrontPort = "/elsewhere", []string{"jupyter", "lab"}, 9000
	if base.AccessDigest() != same.AccessDigest() {
		t.Error("the digest changed with a setting that is not about access")
	}
	for name, mod := range map[string]func(*AgentSpec){
		"password hash":   func(s *AgentSpec) { s.PasswordHash = "$argon2id$b" },
		"allow":           func(s *AgentSpec) { s.Allow = []string{"127.0.0.2/32"} },
		"trusted proxies": func(s *AgentSpec) { s.TrustedProxies = []string{"10.0.0.0/8"} },
		"tls cert":        func(s *AgentSpec) { s.TLSCert = "cert" },
		"tls key":         func(s *AgentSpec) { s.TLSKey = "key" },
		"self-signed":     func(s *AgentSpec) { s.TLSSelfSigned = true },
		"hosts":           func(s *AgentSpec) { s.Hosts = []string{"notebooks.example.com"} },
		"portal key":      func(s *AgentSpec) { s.PortalKey = "AAAA" },
		"portal only":     func(s *AgentSpec) { s.PortalOnly = true },
	} {
		changed := base
		mod(&changed)
		if changed.AccessDigest() == base.AccessDigest() {
			t.Errorf("%s changed, the digest did not", name)
		}
	}
}

func TestAllowsLoopback(t *testing.T) {
	for _, tt := range []struct {
		allow []string
		want  bool
	}{
		{nil, false},
		{[]string{"127.0.0.0/8"}, true},
		{[]string{"127.0.0.1"}, true},
		{[]string{"0.0.0.0/0"}, true},
		{[]string{"203.0.113.0/24", "127.0.0.1/32"}, true},
		{[]string{"127.0.0.2/32", "::1/128", "203.0.113.7"}, false},
		{[]string{"not an address"}, false},
	} {
		if got := AllowsLoopback(tt.allow); got != tt.want {
			t.Errorf("AllowsLoopback(%q) = %v, want %v", tt.allow, got, tt.want)
		}
	}
}
