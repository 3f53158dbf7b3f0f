package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/ui"
)

func newDown(e *env) *cobra.Command {
	var timeout time.Duration
	var purge bool
	var force bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Save your work, then stop your server and its kernels; the workspace is kept",
		Long: `Save the workspace first, as ` + "`spinbook save`" + ` does, when a repo is
configured. Unless every commit then is on a remote branch (or in a bundle
stored away from the server), down stops there — the save failed, or could
only write a bundle on this machine — the server keeps running, and down says
why (exit 1); --force stops the server anyway (its agent still saves, or
writes a bundle, as it stops).

Then stop the user's server: Jupyter shuts its kernels down, then the agent
exits; anything still running after the grace period is killed. The workspace
stays, so the next ` + "`spinbook up`" + ` finds your files again.

down is safe to repeat: with no server, it does nothing and says so.`,
		Example: `  spinbook down
  spinbook down --user alice
  spinbook down --force       # even if the work cannot be saved`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.downViaPortal(cmd, pc, purge, force, timeout) }); ok || err != nil {
				return err
			}
			cfg, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout(cmd, be, "down", timeout))
			defer cancel()
			out, before, err := stopServer(ctx, e, cfg, be, user, purge, force)
			if err != nil {
				return err
			}
			if e.json {
				return ui.JSON(e.stdout, out)
			}
			fmt.Fprintln(e.stdout, downMessage(user, be.Name(), before == backend.Absent, purge))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&force, "force", false, "stop the server even if its work cannot be saved")
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the workspace for good (docker: its volume; kubernetes: its claim); only after the save reached the remote, or with --force")
	return cmd
}

// downMessage tells a person what down did.
func downMessage(user, backendName string, wasAbsent, purge bool) string {
	switch {
	case wasAbsent && !purge:
		return user + " has no server; nothing to do"
	case purge:
		return user + "'s server is down; the workspace is deleted"
	case backendName == "aws":
		// The workspace lived on the instance, which is gone.
		return user + "'s server is down, its instance and workspace deleted"
	}
	return user + "'s server is down; the workspace is kept"
}

// stopServer is down's work, shared with the portal: save first (the
// save-first rule, see saveBeforeDown), then take the server down, and with
// purge its workspace. Progress goes to e.stderr. It returns what down
// --json prints and the server's state before.
func stopServer(ctx context.Context, e *env, cfg *config.Config, be backend.Backend, user string, purge, force bool) (downJSON, backend.State, error) {
	before, err := be.Status(ctx, user)
	if err != nil {
		return downJSON{}, "", fmt.Errorf("down: %w", err)
	}
	var saved *saveJSON
	if before.State == backend.Running {
		if saved, err = saveBeforeDown(ctx, e, cfg, before, force); err != nil {
			return downJSON{}, before.State, refusedError{err}
		}
	}
	if purge {
		if err := purgeAllowed(cfg.Repo.URL != "", saved, force); err != nil {
			return downJSON{}, before.State, refusedError{err}
		}
	}
	p := ui.NewProgress(e.stderr)
	if err := be.Down(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
		return downJSON{}, before.State, fmt.Errorf("down: %w", err)
	}
	if purge {
		pg, ok := be.(backend.Purger)
		if !ok {
			return downJSON{}, before.State, fmt.Errorf("down --purge: the %s backend cannot remove workspaces; the server is down, its workspace kept", be.Name())
		}
		if err := pg.Purge(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
			return downJSON{}, before.State, fmt.Errorf("down --purge: %w", err)
		}
	}
	after, err := be.Status(ctx, user)
	if err != nil {
		return downJSON{}, before.State, fmt.Errorf("down: %w", err)
	}
	return downJSON{serverJSON: serverJSON{Server: after}, Save: saved}, before.State, nil
}

// refusedError marks a down that refused to go on, the server untouched:
// its work could not be saved first, or a purge would lose it.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// downJSON is what `down --json` prints: the server after down, and what
// the save before it did.
type downJSON struct {
	serverJSON
	Save *saveJSON `json:"save,omitempty"`
}

// purgeAllowed says whether down --purge may delete the workspace: only when
// nothing in it can be lost — no repo is configured, or the save just made
// placed the work on the remote (a bundle written into the workspace's own
// storage would go with it) — or with --force.
func purgeAllowed(haveRepo bool, saved *saveJSON, force bool) error {
	switch {
	case force:
		return nil
	case saved == nil && !haveRepo:
		return nil
	case saved == nil:
		return errors.New("down --purge: the server is not running, so its workspace could not be saved first; run `spinbook up`, then `spinbook down --purge` (or `down --purge --force` to delete it unsaved)")
	case !saved.Repo:
		return nil
	case saved.Result != nil && saved.Saved && (saved.PushedTo != "" || saved.UpToDate || saved.StoredBundle != ""):
		return nil
	}
	return errors.New("down --purge: the save did not reach the remote, so the workspace is kept; the server keeps running: fix the save, then run `spinbook down --purge` again (or add --force to delete it unsaved)")
}
