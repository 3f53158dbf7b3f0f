package backend

import "testing"

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
	} {
		changed := base
		mod(&changed)
		if changed.AccessDigest() == base.AccessDigest() {
			t.Errorf("%s changed, the digest did not", name)
		}
	}
}
