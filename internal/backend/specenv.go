package backend

import (
	"encoding/json"
	"fmt"
	"os"
)

// AgentSpecFromEnv reads the spec from the environment variable name, where
// a backend that cannot hand over a file put it (aws: ECS injects it from
// Secrets Manager), and removes it at once, so that no child process —
// Jupyter, kernels, git — inherits it. On Linux the process also becomes
// non-dumpable, so that /proc/PID/environ, which still holds the variable
// as the process started, is readable by root only.
func AgentSpecFromEnv(name string) (AgentSpec, error) {
	var s AgentSpec
	data, ok := os.LookupEnv(name)
	if !ok || data == "" {
		return s, fmt.Errorf("agent spec: the environment variable %s is not set", name)
	}
	if err := os.Unsetenv(name); err != nil {
		return s, fmt.Errorf("agent spec: unset %s: %w", name, err)
	}
	if err := hideEnviron(); err != nil {
		return s, fmt.Errorf("agent spec: %w", err)
	}
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return s, fmt.Errorf("decode agent spec from %s: %w", name, err)
	}
	if s.User == "" || s.Workspace == "" {
		return s, fmt.Errorf("agent spec from %s: user and workspace are required", name)
	}
	return s, nil
}
