package backend

import (
	"encoding/json"
	"fmt"
)

// SpecEnvArgs are the agent's arguments after ExecWithSpecFD moved the
// spec from its environment variable into the descriptor fd.
type SpecEnvArgs func(fd int) []string

// decodeSpec decodes a spec handed over by source ("fd 3", ...).
func decodeSpec(data []byte, source string) (AgentSpec, error) {
	var s AgentSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("decode agent spec from %s: %w", source, err)
	}
	if s.User == "" || s.Workspace == "" {
		return s, fmt.Errorf("agent spec from %s: user and workspace are required", source)
	}
	return s, nil
}
