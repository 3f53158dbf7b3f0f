package cli

import (
	"log/slog"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/backend/docker"
	"github.com/spinbook/spinbook/internal/backend/kubernetes"
	"github.com/spinbook/spinbook/internal/backend/local"
	"github.com/spinbook/spinbook/internal/config"
)

// openBackend returns the backend the config names. This is the one file
// of the command line that knows the implementations.
func openBackend(cfg *config.Config, log *slog.Logger) (backend.Backend, error) {
	switch cfg.Backend {
	case "", "local":
		return local.New(cfg, log, "")
	case "docker":
		return docker.New(cfg, log, "")
	case "aws":
		return aws.New(cfg, log, aws.Options{Stops: stopRecords(cfg)})
	case "kubernetes":
		return kubernetes.New(cfg, log)
	default:
		return nil, usagef("backend %q is not available in this build (valid: local, docker, aws, kubernetes)", cfg.Backend)
	}
}

// openServer is what every command about one user's server starts with:
// the config, whose server (validated), and the backend the config names.
func (e *env) openServer() (*config.Config, string, backend.Backend, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, "", nil, err
	}
	user, err := e.resolveUser()
	if err != nil {
		return nil, "", nil, err
	}
	be, err := openBackend(cfg, e.logger())
	if err != nil {
		return nil, "", nil, err
	}
	return cfg, user, be, nil
}
