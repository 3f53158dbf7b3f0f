package backend

import (
	"testing"

	"github.com/spinbook/spinbook/internal/secret"
)

// TestHashPasswordLater: the spec a backend takes holds the hash of the
// generated password, the same each time it is asked, in copies of the
// spec too; without one, the configured hash stays.
func TestHashPasswordLater(t *testing.T) {
	s := Spec{User: "alice", Agent: AgentSpec{User: "alice"}}
	s.HashPasswordLater("abcd-efgh-jkmn-pqrs-tuvw")
	copied := s
	first, err := s.AgentSpec()
	if err != nil {
		t.Fatal(err)
	}
	h, err := secret.ParsePasswordHash(first.PasswordHash)
	if err != nil || !h.Verify("abcd-efgh-jkmn-pqrs-tuvw") || h.Verify("wrong") {
		t.Fatalf("the spec's hash %q does not verify the password (%v)", first.PasswordHash, err)
	}
	again, _ := copied.AgentSpec()
	if again.PasswordHash != first.PasswordHash {
		t.Error("a copy of the spec got another hash")
	}
	if s.Agent.PasswordHash != "" {
		t.Error("AgentSpec changed the spec's own Agent")
	}
	configured := Spec{Agent: AgentSpec{PasswordHash: "$argon2id$configured"}}
	if as, err := configured.AgentSpec(); err != nil || as.PasswordHash != "$argon2id$configured" {
		t.Errorf("AgentSpec with a configured hash = %q, %v", as.PasswordHash, err)
	}
	empty := Spec{}
	empty.HashPasswordLater("")
	if _, err := empty.AgentSpec(); err == nil {
		t.Error("an empty generated password hashed without an error")
	}
}
