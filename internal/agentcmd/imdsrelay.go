package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spinbook/spinbook/internal/agent"
)

// imdsRelay serves a spot server's container the spot interruption notice
// and the rebalance recommendation of the instance metadata service
// (IMDSv2), and nothing else of it (agent.NewIMDSRelay). The aws backend's
// instance runs it from the agent binary it downloads.
func imdsRelay(ctx context.Context, args []string, s stdio) error {
	fs := flags("imds-relay", s)
	listen := fs.String("listen", "172.17.0.1:8179", "address to serve on (the Docker bridge's, for the server's container)")
	upstream := fs.String("upstream", "http://169.254.169.254", "the instance metadata service")
	if err := fs.Parse(args); err != nil {
		return usagef("imds-relay: %v", err)
	}
	if fs.NArg() != 0 {
		return usagef("imds-relay: unexpected arguments %q", fs.Args())
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("imds relay: %w", err)
	}
	srv := &http.Server{Handler: agent.NewIMDSRelay(*upstream), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(s.stderr, "imds relay: serving the spot paths of %s on %s\n", *upstream, l.Addr())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("imds relay: %w", err)
	}
	return nil
}
