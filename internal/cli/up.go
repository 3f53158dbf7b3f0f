package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/secret"
	"github.com/spinbook/spinbook/internal/ui"
)

// serverJSON is what `up --json`, `status --json` and `ls --json` print for
// one server.
type serverJSON struct {
	backend.Server
	Password string `json:"password,omitempty"`
}

func newUp(e *env) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring your server up, wait until Jupyter answers, print its URL",
		Long: `Bring the user's Jupyter server up and wait until it answers behind its front
door, printing progress on stderr and the URL on stdout.

If the server already runs, up reports it and changes nothing. If it died, up
cleans up after it and starts it again; the workspace is kept.

With no access.password_hash in the config, up generates a password and prints
it once; only its hash is kept, in the server's memory. To choose your own,
run ` + "`spinbook password`" + ` and put the hash in the config.`,
		Example: `  spinbook up                       # your own server
  spinbook up --user alice          # alice's server
  spinbook up --json | jq -r .url   # for scripts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			user, err := e.resolveUser()
			if err != nil {
				return err
			}
			be, err := openBackend(cfg, e.logger())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()

			if srv, err := be.Status(ctx, user); err == nil && srv.State == backend.Running && srv.Ready {
				return e.printUp(srv, "")
			}
			agentSpec, err := buildAgentSpec(ctx, cfg)
			if err != nil {
				return err
			}
			password := ""
			if agentSpec.PasswordHash == "" {
				password = generatePassword()
				if agentSpec.PasswordHash, err = secret.HashPassword(password); err != nil {
					return err
				}
			}
			spec := backend.Spec{User: user, Agent: agentSpec}
			p := ui.NewProgress(e.stderr)
			p.Step(fmt.Sprintf("bringing up %s's server (%s backend)", user, be.Name()))
			srv, err := be.Up(ctx, spec, func(ev backend.Event) { p.Step(ev.Message) })
			if err != nil {
				return fmt.Errorf("up: %w", err)
			}
			if !srv.Started {
				password = "" // it was already running with another password
			}
			return e.printUp(srv, password)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "give up if the server is not ready after this long")
	return cmd
}

func (e *env) printUp(srv backend.Server, password string) error {
	if e.json {
		return ui.JSON(e.stdout, serverJSON{Server: srv, Password: password})
	}
	if srv.Started {
		fmt.Fprintf(e.stdout, "%s's server is ready: %s\n", srv.User, srv.URL)
	} else {
		fmt.Fprintf(e.stdout, "%s's server is already running: %s\n", srv.User, srv.URL)
	}
	if password != "" {
		fmt.Fprintf(e.stdout, "password: %s\n", password)
		fmt.Fprintln(e.stderr, "  (shown only now; to choose your own, run `spinbook password` and set access.password_hash)")
	}
	return nil
}

// buildAgentSpec turns the config into what every backend hands the agent,
// resolving secret references now, before anything starts: a missing
// secret is a config error (exit 2) that names the reference, never a value.
func buildAgentSpec(ctx context.Context, cfg *config.Config) (backend.AgentSpec, error) {
	spec := backend.AgentSpec{
		PasswordHash:   cfg.Access.PasswordHash,
		Allow:          cfg.Access.Allow,
		TrustedProxies: cfg.Access.TrustedProxies,
		JupyterCommand: cfg.Jupyter.Command,
	}
	return spec, nil
}

// generatePassword returns about 99 bits of randomness as five groups of
// four letters and digits without look-alikes, easy to copy and to type.
func generatePassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no i, l, o, 0, 1
	out := make([]byte, 0, 24)
	var b [1]byte
	for n := 0; n < 20; {
		rand.Read(b[:])
		if int(b[0]) >= 256-256%len(alphabet) {
			continue // rejection keeps every letter equally likely
		}
		if n > 0 && n%4 == 0 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(b[0])%len(alphabet)])
		n++
	}
	return string(out)
}
