package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/ui"
)

// serverJSON is what `up --json`, `status --json` and `ls --json` print for
// one server.
type serverJSON struct {
	backend.Server
	Password string `json:"password,omitempty"`
	// Secrets (status only) are the config's secrets and whether they resolve.
	Secrets []secretJSON `json:"secrets,omitempty"`
	// Activity, the coming idle stop and cost, and which Jupyter runs
	// (status and ls, running servers).
	*IdleJSON
}

func newUp(e *env) *cobra.Command {
	var timeout time.Duration
	var size string
	var keepFailed bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring your server up, wait until Jupyter answers, print its URL",
		Long: `Bring the user's Jupyter server up and wait until it answers behind its front
door, printing progress on stderr and the URL on stdout.

If the server already runs, up reports it and changes nothing, unless the
access settings (password hash, allowlist, trusted proxies, TLS) changed: then
up restarts it, which ends every session. If it died, up cleans up after it and
starts it again; the workspace is kept.

Secrets the config names by reference (${env:NAME}, ${file:PATH}), such as
warehouse.password, are resolved now, on this machine; one that does not
resolve stops up with exit 2, naming it, before anything starts.

With access.tls, the URL is https and up prints the SHA-256 fingerprint of the
certificate, to compare with what the browser shows.

With no access.password_hash in the config, up generates a password and prints
it once; only its hash is kept, in the server's memory. To choose your own,
run ` + "`spinbook password`" + ` and put the hash in the config.`,
		Example: `  spinbook up                       # your own server
  spinbook up --user alice          # alice's server
  spinbook up --json | jq -r .url   # for scripts
  spinbook up --size gpu            # with the resources of sizes.gpu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.upViaPortal(cmd, pc, size, timeout) }); ok || err != nil {
				return err
			}
			cfg, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			if cfg.Access.PortalOnly {
				return usagef("access.portal_only is set, so only `spinbook portal` may start servers (nobody could open one started here): start it from the portal, or unset access.portal_only")
			}
			if size != "" {
				if _, err := cfg.LookupSize(size); err != nil {
					return usageError{err}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout(cmd, be, "up", timeout))
			defer cancel()
			if hint := reachabilityHint(cfg); hint != "" {
				fmt.Fprintln(e.stderr, "Warning:", hint)
			}

			p := ui.NewProgress(e.stderr)
			res, err := startServer(ctx, cfg, be, startOptions{User: user, Size: size, KeepFailed: keepFailed}, func(ev backend.Event) { p.Step(ev.Message) })
			if err != nil {
				return err
			}
			if !res.WasReady && cfg.Repo.Enabled() {
				reportRepo(ctx, p, res.Server)
			}
			return e.printUp(res.Server, res.Password)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "give up if the server is not ready after this long")
	cmd.Flags().BoolVar(&keepFailed, "keep-failed", false, "aws: leave a stack that failed to come up for inspection instead of deleting it")
	cmd.Flags().StringVar(&size, "size", "", "resources for the server, a name from the config's sizes (docker, aws, kubernetes)")
	return cmd
}

// startOptions say which server startServer brings up.
type startOptions struct {
	User, Size string
	KeepFailed bool
	// PortalKey is the portal's public key (base64) when `spinbook portal`
	// starts the server; then access.portal_only applies.
	PortalKey string
}

// startResult is what startServer did.
type startResult struct {
	backend.Server
	// Password is the generated one, to be shown once; "" when the config
	// has a hash or the server was already running.
	Password string
	// WasReady: the server already ran, ready, with the same access
	// settings; nothing was done.
	WasReady bool
}

// startServer is up's work, shared with the portal: it builds the agent
// spec from the config, returns the server as it is when it already runs
// with the same access settings, and otherwise brings it up, reporting
// progress.
func startServer(ctx context.Context, cfg *config.Config, be backend.Backend, o startOptions, progress func(backend.Event)) (startResult, error) {
	agentSpec, err := buildAgentSpec(ctx, cfg)
	if err != nil {
		return startResult{}, err
	}
	agentSpec.Idle = idleSpec(cfg, o.Size)
	agentSpec.PortalKey = o.PortalKey
	agentSpec.PortalOnly = o.PortalKey != "" && cfg.Access.PortalOnly
	// The access settings as configured, before a generated
	// password: a running server with others is restarted.
	digest := agentSpec.AccessDigest()
	if srv, err := be.Status(ctx, o.User); err == nil && srv.State == backend.Running && srv.Ready && srv.AccessDigest == digest {
		return startResult{Server: srv, WasReady: true}, nil
	}
	spec := backend.Spec{User: o.User, Agent: agentSpec, Size: o.Size, AccessDigest: digest, KeepFailed: o.KeepFailed}
	password := ""
	if agentSpec.PasswordHash == "" {
		password = generatePassword()
		spec.HashPasswordLater(password) // while the backend's first steps run
	}
	progress(backend.Event{Message: fmt.Sprintf("bringing up %s's server (%s backend)", o.User, be.Name())})
	srv, err := be.Up(ctx, spec, progress)
	if err != nil {
		return startResult{}, fmt.Errorf("up: %w", err)
	}
	if !srv.Started {
		password = "" // it was already running with another password
	}
	return startResult{Server: srv, Password: password}, nil
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
	e.printTLS(srv)
	if srv.Volume != nil {
		fmt.Fprintf(e.stdout, "workspace: %s\n", volumeText(*srv.Volume))
	}
	if password != "" {
		fmt.Fprintf(e.stdout, "password: %s\n", password)
		fmt.Fprintln(e.stderr, "  (shown only now; to choose your own, run `spinbook password` and set access.password_hash)")
	}
	return nil
}

// reachabilityHint warns about a local server that listens beyond this
// machine while the allowlist still admits this machine only: people
// elsewhere would be refused, which is safe but rarely what was meant.
func reachabilityHint(cfg *config.Config) string {
	if cfg.Backend != "" && cfg.Backend != "local" {
		return ""
	}
	if ip, err := netip.ParseAddr(cfg.Local.Listen); err != nil || ip.IsLoopback() {
		return ""
	}
	for _, p := range cfg.Access.AllowPrefixes {
		if !p.Addr().IsLoopback() {
			return ""
		}
	}
	return fmt.Sprintf("local.listen is %s, but access.allow admits only this machine: other machines will be refused until you list their networks in access.allow", cfg.Local.Listen)
}

// buildAgentSpec turns the config into what every backend hands the agent,
// resolving secret references now, before anything starts: a missing
// secret is a config error (exit 2) that names the reference, never a value.
func buildAgentSpec(ctx context.Context, cfg *config.Config) (backend.AgentSpec, error) {
	spec := backend.AgentSpec{
		PasswordHash:   cfg.Access.PasswordHash,
		Allow:          cfg.Access.Allow,
		TrustedProxies: cfg.Access.TrustedProxies,
		Hosts:          cfg.Access.Hosts,
		JupyterCommand: cfg.Jupyter.Command,
		JupyterVenv:    cfg.Jupyter.Venv,
	}
	secrets, err := resolveSecrets(ctx, cfg)
	if err != nil {
		return spec, err
	}
	spec.Secrets = secrets.values
	spec.Warehouse = warehouseSpec(&cfg.Warehouse, secrets)
	if err := tlsSpec(cfg.Access.TLS, secrets, &spec); err != nil {
		return spec, err
	}
	spec.Models = modelsSpec(&cfg.Models, secrets)
	if spec.Repo, err = repoSpec(cfg, secrets); err != nil {
		return spec, err
	}
	spec.ControlToken = newControlToken()
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
