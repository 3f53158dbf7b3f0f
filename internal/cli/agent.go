package cli

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/secret"
)

func newAgent(e *env) *cobra.Command {
	var specPath, specEnv string
	var hosts []string
	var waitSpec time.Duration
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Internal: the entrypoint inside a server (started by a backend)",
		Hidden: true,
		Long: `Run the agent of one server: start Jupyter, serve the front door and the health
listener, and stop everything cleanly on SIGTERM. Backends start it; people
do not need to. The spec file (--spec or $SPINBOOK_AGENT_SPEC) is read and then
removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if specPath == "" {
				specPath = os.Getenv("SPINBOOK_AGENT_SPEC")
			}
			if specPath == "" && specEnv == "" {
				return usagef("agent: no spec: pass --spec FILE or set SPINBOOK_AGENT_SPEC")
			}
			level := slog.LevelInfo
			if e.debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			var err error
			if waitSpec > 0 && specEnv == "" {
				if err = waitForSpec(cmd.Context(), specPath, waitSpec); err != nil {
					return err
				}
			}
			var spec backend.AgentSpec
			if specEnv != "" {
				spec, err = backend.AgentSpecFromEnv(specEnv)
			} else {
				spec, err = backend.ReadAgentSpec(specPath)
			}
			if err != nil {
				return err
			}
			spec.Hosts = append(spec.Hosts, hosts...)
			// Its own last words pass the redactor too: an error may quote a secret.
			redact := &secret.Redactor{}
			redact.Add(spec.PasswordHash)
			redact.Add(spec.Secrets...)
			log = slog.New(redact.Handler(log.Handler()))
			log.Info("agent starting", "user", spec.User, "pid", os.Getpid(), "version", version())
			ag := agent.New(spec, log, e.stderr)
			err = ag.Run(cmd.Context())
			if err != nil {
				log.Error("agent failed", "err", err)
				agent.WriteExit(spec.StateDir, 1, redact.Redact(err.Error()))
				return errAgentLogged
			}
			reason := "stopped by a signal"
			if r := ag.StopReason(); r != "" {
				reason = r // it stopped itself: idle, max_age
			}
			log.Info("agent stopped", "reason", reason)
			agent.WriteExit(spec.StateDir, 0, reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the agent spec file written by the backend")
	cmd.Flags().StringVar(&specEnv, "spec-env", "", "read the spec from this environment variable (aws: injected by ECS from Secrets Manager), then unset it")
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "one more name the front door answers to, known only where the server runs (aws: the load balancer's); repeatable")
	cmd.Flags().DurationVar(&waitSpec, "wait-spec", 0, "wait this long for the spec file to appear (container backends hand it over after start)")
	cmd.AddCommand(newAgentReceiveSpec(), newAgentReadControlToken(), newAgentStage())
	return cmd
}

// errAgentLogged: the agent already logged why it failed.
var errAgentLogged = errors.New("agent failed; see the log above")
