package cli

import (
	"log/slog"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/local"
	"github.com/spinbook/spinbook/internal/config"
)

// openBackend returns the backend the config names. This is the one file
// of the command line that knows the implementations.
func openBackend(cfg *config.Config, log *slog.Logger) (backend.Backend, error) {
	switch cfg.Backend {
	case "", "local":
		return local.New(cfg, log, "")
	default:
		return nil, usagef("backend %q is not available in this build (valid: local)", cfg.Backend)
	}
}
