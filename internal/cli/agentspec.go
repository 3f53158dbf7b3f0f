package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
)

// waitForSpec waits up to d for the agent spec at path to appear. A
// container backend starts the agent first and hands it the spec afterwards
// (see `agent receive-spec`), because the spec goes to a tmpfs that exists
// only once the container runs. The file appears by rename, so it is whole
// when it is there.
func waitForSpec(ctx context.Context, path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("wait for agent spec: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for agent spec: %s did not arrive within %s", path, d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for agent spec: %w", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// newAgentReceiveSpec is what a container backend execs inside a started
// container to hand the waiting agent its spec: the spec arrives on stdin
// (never argv or Env) and is written 0600, as the container's user, into
// the container's tmpfs.
func newAgentReceiveSpec() *cobra.Command {
	var to, tokenTo string
	cmd := &cobra.Command{
		Use:    "receive-spec --to FILE",
		Short:  "Internal: write the agent spec read from stdin to FILE (0600)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usagef("receive-spec: --to FILE is required")
			}
			data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4<<20))
			if err != nil {
				return fmt.Errorf("read agent spec: %w", err)
			}
			var spec backend.AgentSpec
			if err := json.Unmarshal(data, &spec); err != nil {
				return fmt.Errorf("decode agent spec from stdin: %w", err)
			}
			if tokenTo != "" && spec.ControlToken != "" {
				if err := writePrivate(tokenTo, []byte(spec.ControlToken)); err != nil {
					return fmt.Errorf("write control token: %w", err)
				}
			}
			return backend.WriteAgentSpec(to, spec)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where to write the spec")
	cmd.Flags().StringVar(&tokenTo, "control-token-file", "", "also keep the spec's control token in this file (0600), for `agent read-control-token`")
	return cmd
}

// newAgentReadControlToken is what a container backend execs to read back
// the control token of a server's agent (the command line needs it for
// save and down), which lives only in the container's tmpfs.
func newAgentReadControlToken() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:    "read-control-token --file FILE",
		Short:  "Internal: print the control token kept by receive-spec",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read control token: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the file receive-spec wrote")
	return cmd
}

// writePrivate writes data to path with mode 0600, by rename.
func writePrivate(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600)
}
