package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/ui"
)

func newSite(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Create or remove what the team's servers share (network, load balancer)",
		Long: `Manage what every server of the backend shares, as opposed to one user's
server: on Docker, the network servers join (docker.network). ` + "`spinbook up`" + `
creates it too when it is missing; site down removes it only when no server
uses it any more. The local backend shares nothing.`,
		Example: `  spinbook site up      # before the team's first server (up does it too)
  spinbook site down    # after the last server is down`,
		Args: cobra.NoArgs,
	}
	run := func(verb string, do func(backend.SiteManager, context.Context, func(backend.Event)) error) *cobra.Command {
		var timeout time.Duration
		c := &cobra.Command{
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := e.loadConfig()
				if err != nil {
					return err
				}
				be, err := openBackend(cfg, e.logger())
				if err != nil {
					return err
				}
				sm, ok := be.(backend.SiteManager)
				if !ok {
					fmt.Fprintf(e.stdout, "the %s backend has nothing shared to %s\n", be.Name(), verb)
					return nil
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout(cmd, be, "site "+verb, timeout))
				defer cancel()
				p := ui.NewProgress(e.stderr)
				if err := do(sm, ctx, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
					return fmt.Errorf("site %s: %w", verb, err)
				}
				fmt.Fprintf(e.stdout, "site %s: done (%s backend)\n", verb, be.Name())
				return nil
			},
		}
		c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
		return c
	}
	up := run("up", backend.SiteManager.SiteUp)
	up.Use, up.Short = "up", "Create what the servers share; what exists is kept"
	up.Example = "  spinbook site up"
	down := run("down", backend.SiteManager.SiteDown)
	down.Use, down.Short = "down", "Remove what the servers share, unless a server still uses it"
	down.Example = "  spinbook site down"
	cmd.AddCommand(up, down)
	return cmd
}
