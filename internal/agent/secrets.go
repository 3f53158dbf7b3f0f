package agent

import (
	"os"

	"github.com/spinbook/spinbook/internal/secret"
)

// scrubEnv removes from the agent's environment, and so from what Jupyter,
// kernels and terminals inherit, every variable that holds one of the
// secrets the spec carries. Backends already start the agent without them;
// this keeps a backend that forgot from leaking them into notebooks.
func (a *Agent) scrubEnv() {
	names := secret.Holders(os.Environ(), a.spec.Secrets)
	for _, name := range names {
		os.Unsetenv(name)
	}
	if len(names) > 0 {
		a.log.Warn("removed environment variables that hold secrets from what Jupyter inherits", "names", names)
	}
}
