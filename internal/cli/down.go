package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/ui"
)

func newDown(e *env) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop your server and its kernels; the workspace is kept",
		Long: `Stop the user's server: Jupyter shuts its kernels down, then the agent exits;
anything still running after the grace period is killed. The workspace stays,
so the next ` + "`spinbook up`" + ` finds your files again.

down is safe to repeat: with no server, it does nothing and says so.`,
		Example: `  spinbook down
  spinbook down --user alice`,
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
			before, err := be.Status(ctx, user)
			if err != nil {
				return fmt.Errorf("down: %w", err)
			}
			p := ui.NewProgress(e.stderr)
			if err := be.Down(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
				return fmt.Errorf("down: %w", err)
			}
			after, err := be.Status(ctx, user)
			if err != nil {
				return fmt.Errorf("down: %w", err)
			}
			if e.json {
				return ui.JSON(e.stdout, serverJSON{Server: after})
			}
			if before.State == backend.Absent {
				fmt.Fprintf(e.stdout, "%s has no server; nothing to do\n", user)
			} else {
				fmt.Fprintf(e.stdout, "%s's server is down; the workspace is kept\n", user)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}
