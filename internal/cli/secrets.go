package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
	"github.com/spinbook/spinbook/internal/secret/awssecret"
)

// secretJSON is what `status` reports about one secret of the config:
// where it comes from and whether it resolves here and now, never its value.
type secretJSON struct {
	// Name is the config key, such as "warehouse.password".
	Name string `json:"name"`
	// Ref is the reference, such as "${env:DW_PASSWORD}"; "" for a literal.
	Ref string `json:"ref,omitempty"`
	// Literal is true when the config holds the secret itself.
	Literal  bool `json:"literal,omitempty"`
	Resolved bool `json:"resolved"`
	// Error says why it did not resolve, naming the reference.
	Error string `json:"error,omitempty"`
}

// resolvedSecrets are the config's secrets, resolved.
type resolvedSecrets struct {
	byPath map[string]string // config key -> value
	values []string          // every value, in config.Secrets order
}

// resolveSecrets resolves every secret of cfg now, before anything starts.
// Any that does not resolve makes a usage error (exit 2) that lists each
// such key with its line and reference, never a value.
func resolveSecrets(ctx context.Context, cfg *config.Config) (*resolvedSecrets, error) {
	r := &resolvedSecrets{byPath: map[string]string{}}
	ctx = awssecret.With(ctx, awssecret.Location{Region: cfg.AWS.Region, Profile: cfg.AWS.Profile})
	var errs []error
	for _, s := range cfg.Secrets() {
		v, err := resolveSecret(ctx, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", secretWhere(cfg, s), err))
			continue
		}
		r.byPath[s.Path] = v
		r.values = append(r.values, v)
	}
	if len(errs) == 0 {
		return r, nil
	}
	format := "a secret the config names is not available, so nothing was started:" + strings.Repeat("\n  %w", len(errs))
	args := make([]any, len(errs))
	for i, err := range errs {
		args[i] = err
	}
	return nil, usageError{fmt.Errorf(format, args...)}
}

// resolveSecret resolves one secret and checks that its key can use it.
func resolveSecret(ctx context.Context, s config.Secret) (string, error) {
	v, err := secret.Resolve(ctx, s.Value)
	if err != nil {
		return "", err
	}
	if s.Path == "warehouse.password" && strings.ContainsAny(v, "\r\n\x00") {
		// Validate checked a literal; this is what a reference gave.
		return "", fmt.Errorf("%s: the secret holds a line break or NUL, which a .pgpass file cannot hold", s.Value)
	}
	return v, nil
}

// secretWhere names a secret's key and, when known, its line.
func secretWhere(cfg *config.Config, s config.Secret) string {
	if s.Line > 0 && cfg.Path != "" {
		return fmt.Sprintf("%s (%s line %d)", s.Path, cfg.Path, s.Line)
	}
	return s.Path
}

// checkSecrets reports, for `status`, every secret of cfg and whether it
// resolves now; the values are dropped at once.
func checkSecrets(ctx context.Context, cfg *config.Config) []secretJSON {
	var out []secretJSON
	ctx = awssecret.With(ctx, awssecret.Location{Region: cfg.AWS.Region, Profile: cfg.AWS.Profile})
	for _, s := range cfg.Secrets() {
		sj := secretJSON{Name: s.Path}
		if ref, ok, _ := secret.ParseRef(s.Value); ok {
			sj.Ref = ref.String()
		} else {
			sj.Literal = true
		}
		if _, err := resolveSecret(ctx, s); err != nil {
			sj.Error = err.Error()
		} else {
			sj.Resolved = true
		}
		out = append(out, sj)
	}
	return out
}

// describe is the one-line form of a secret's status for the terminal.
func (s secretJSON) describe() string {
	switch {
	case !s.Resolved:
		return s.Name + ": missing: " + s.Error
	case s.Literal:
		return s.Name + ": written literally in the config (better: ${env:NAME} or ${file:PATH})"
	default:
		return s.Name + ": " + s.Ref + " (resolved)"
	}
}

// warehouseSpec is what the agent needs to set up libpq, with the password
// resolved; nil when no warehouse is configured.
func warehouseSpec(w *config.Warehouse, secrets *resolvedSecrets) *backend.Warehouse {
	if !w.Enabled() {
		return nil
	}
	return &backend.Warehouse{
		Host:     w.Host,
		Port:     w.Port,
		Database: w.Database,
		User:     w.User,
		Password: secrets.byPath["warehouse.password"],
		SSLMode:  w.SSLMode,
	}
}
