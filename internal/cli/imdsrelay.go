package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
)

func newIMDSRelay(e *env) *cobra.Command {
	var listen, upstream string
	cmd := &cobra.Command{
		Use:    "imds-relay",
		Short:  "Internal: the instance metadata relay of a spot server (run on the instance)",
		Hidden: true,
		Long: `Serve the agent of a spot server, in its container, the spot interruption
notice and the rebalance recommendation of the instance metadata service
(IMDSv2), and nothing else of it. The aws backend's instance runs it; people
do not need to.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("imds relay: %w", err)
			}
			srv := &http.Server{Handler: agent.NewIMDSRelay(upstream), ReadHeaderTimeout: 5 * time.Second}
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			fmt.Fprintf(e.stderr, "imds relay: serving the spot paths of %s on %s\n", upstream, l.Addr())
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("imds relay: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "172.17.0.1:8179", "address to serve on (the Docker bridge's, for the server's container)")
	cmd.Flags().StringVar(&upstream, "upstream", "http://169.254.169.254", "the instance metadata service")
	return cmd
}
