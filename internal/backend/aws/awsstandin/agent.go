package awsstandin

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/spinbook/spinbook/internal/backend"
)

// AgentELF writes into dir the smallest static linux/amd64 ELF header
// there is, named spinbook: what the aws backend checks before it uploads
// the agent (no instance ever runs it here). It returns its path.
func AgentELF(dir string) (string, error) {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 2)  // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // ehsize
	binary.LittleEndian.PutUint16(h[54:], 56) // phentsize
	binary.LittleEndian.PutUint16(h[58:], 64) // shentsize
	p := filepath.Join(dir, "spinbook")
	return p, os.WriteFile(p, h, 0o755)
}

// Agent answers the control API's status as a ready agent behind the load
// balancer would, to the holder of the control token in a user's spec
// secret (specSecrets: user -> the secret's name). Every user's stack
// reports its URL when Outputs["URL"] is set to it.
func (s *StandIn) Agent(specSecrets map[string]string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for user, name := range specSecrets {
			raw, ok := s.Secret(name)
			var spec backend.AgentSpec
			json.Unmarshal([]byte(raw), &spec)
			if r.URL.Path == "/spinbook/api/status" && ok && spec.ControlToken != "" && r.Header.Get("Authorization") == "Bearer "+spec.ControlToken {
				io.WriteString(w, `{"user":"`+user+`","ready":true}`)
				return
			}
		}
		http.Error(w, "no", http.StatusUnauthorized)
	}))
}
