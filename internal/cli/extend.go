package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/ui"
)

func newExtend(e *env) *cobra.Command {
	var extend time.Duration
	cmd := &cobra.Command{
		Use:   "extend",
		Short: "Postpone your server's idle stop",
		Long: `Postpone the stop the server would make by itself (idle.stop_after, or
idle.max_age): it keeps running for at least --for from now, active or not.
After that the idle rules apply again. Any activity in the server — a busy
kernel, output, using its pages — postpones an idle stop too; extend is for
when you step away and want it kept.`,
		Example: `  spinbook extend              # one more hour
  spinbook extend --for 4h     # a long meeting
  spinbook extend --user alice --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if extend <= 0 || extend > 720*time.Hour {
				return usagef("extend: --for %s: give a duration between 1s and 720h (examples: 30m, 2h)", extend)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.extendViaPortal(ctx, pc, extend) }); ok || err != nil {
				return err
			}
			_, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			out, err := extendServer(ctx, be, user, extend)
			if err != nil {
				return err
			}
			return e.printExtend(extendJSON{User: user, IdleJSON: out})
		},
	}
	cmd.Flags().DurationVar(&extend, "for", time.Hour, "keep the server for at least this long from now")
	return cmd
}

// extendJSON is what `extend --json` prints.
type extendJSON struct {
	User string `json:"user"`
	*IdleJSON
}

// printExtend tells when the server now stops.
func (e *env) printExtend(out extendJSON) error {
	if e.json {
		return ui.JSON(e.stdout, out)
	}
	if out.IdleJSON == nil || out.StopsAt == nil {
		fmt.Fprintf(e.stdout, "%s's server does not stop by itself (idle.stop_after and idle.max_age are off)\n", out.User)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s's server now stops at %s (in %s; %s) at the earliest\n",
		out.User, out.StopsAt.Local().Format(time.DateTime), ui.Duration(time.Until(*out.StopsAt)), out.StopReason)
	return nil
}

// extendServer is extend's work, shared with the portal: the server's
// agent postpones its idle stop by d from now.
func extendServer(ctx context.Context, be backend.Backend, user string, d time.Duration) (*IdleJSON, error) {
	srv, err := be.Status(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("extend: %w", err)
	}
	if srv.State != backend.Running {
		return nil, refusedError{fmt.Errorf("extend: %s's server is %s; start it with `spinbook up --user %s`", user, srv.State, user)}
	}
	body, _ := json.Marshal(map[string]string{"for": d.String()})
	var st agent.IdleStatus
	code, err := control(ctx, srv, http.MethodPost, "extend", body, &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("the server answered %d", code)
	}
	if err != nil {
		return nil, fmt.Errorf("extend: %w", err)
	}
	return idleFromAgent(&st), nil
}
