package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
)

func newLogs(e *env) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show your server's log (the agent's and Jupyter's output)",
		Example: `  spinbook logs
  spinbook logs -f --user alice     # keep following; Ctrl-C to stop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			lg, ok := be.(backend.Logger)
			if !ok {
				return fmt.Errorf("the %s backend cannot show logs", be.Name())
			}
			return lg.Logs(cmd.Context(), user, follow, e.stdout)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}
