package cli

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
)

func newAgent(e *env) *cobra.Command {
	var specPath string
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
			if specPath == "" {
				return usagef("agent: no spec: pass --spec FILE or set SPINBOOK_AGENT_SPEC")
			}
			level := slog.LevelInfo
			if e.debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			spec, err := backend.ReadAgentSpec(specPath)
			if err != nil {
				return err
			}
			log.Info("agent starting", "user", spec.User, "pid", os.Getpid(), "version", version())
			err = agent.New(spec, log, e.stderr).Run(cmd.Context())
			if err != nil {
				log.Error("agent failed", "err", err)
				agent.WriteExit(spec.StateDir, 1, err.Error())
				return errAgentLogged
			}
			log.Info("agent stopped")
			agent.WriteExit(spec.StateDir, 0, "stopped by a signal")
			return nil
		},
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the agent spec file written by the backend")
	return cmd
}

// errAgentLogged: the agent already logged why it failed.
var errAgentLogged = errors.New("agent failed; see the log above")
