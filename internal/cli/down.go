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
	var purge, snapshot bool
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
stays (docker: its volume; kubernetes: its claim; aws: its EBS volume), so
the next ` + "`spinbook up`" + ` finds your files again.

--purge then deletes the workspace for good, only after the save reached the
remote (or with --force). On aws, --snapshot first takes an EBS snapshot of
it and prints the snapshot's id (restore: docs/aws.md).

down is safe to repeat: with no server, it does nothing and says so.`,
		Example: `  spinbook down
  spinbook down --user alice
  spinbook down --force       # even if the work cannot be saved
  spinbook down --purge --snapshot   # aws: delete the workspace, keeping a snapshot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if snapshot && !purge {
				return usagef("down --snapshot: a snapshot is taken only of a workspace being deleted; add --purge")
			}
			if ok, err := e.viaPortal(func(pc *client.Client) error {
				if snapshot {
					return usagef("down --snapshot: the portal takes no snapshots; ask its operator, or run down --purge --snapshot with the backend's own config (--config)")
				}
				return e.downViaPortal(cmd, pc, purge, force, timeout)
			}); ok || err != nil {
				return err
			}
			cfg, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			if _, canSnap := be.(backend.Snapshotter); snapshot && !canSnap {
				return usagef("down --snapshot: the %s backend takes no snapshots; leave --snapshot out (nothing was stopped)", be.Name())
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout(cmd, be, "down", timeout))
			defer cancel()
			out, before, err := stopServer(ctx, e, cfg, be, user, purge, snapshot, force)
			if err != nil {
				return err
			}
			if e.json {
				return ui.JSON(e.stdout, out)
			}
			msg := downMessage(user, before == backend.Absent, purge)
			if out.Snapshot != "" {
				msg += ", its last state kept in snapshot " + out.Snapshot
			}
			fmt.Fprintln(e.stdout, msg)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&force, "force", false, "stop the server even if its work cannot be saved")
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the workspace for good (docker: its volume; kubernetes: its claim; aws: its EBS volume); only after the save reached the remote, or with --force")
	cmd.Flags().BoolVar(&snapshot, "snapshot", false, "with --purge (aws): take a snapshot of the workspace first and print its id")
	return cmd
}

// downMessage tells a person what down did.
func downMessage(user string, wasAbsent, purge bool) string {
	switch {
	case wasAbsent && !purge:
		return user + " has no server; nothing to do"
	case purge:
		return user + "'s server is down; the workspace is deleted"
	}
	return user + "'s server is down; the workspace is kept"
}

// stopServer is down's work, shared with the portal: save first (the
// save-first rule, see saveBeforeDown), then take the server down, and with
// purge its workspace (with snapshot, a final snapshot of it first: the
// backend must be a Snapshotter). Progress goes to e.stderr. It returns what down
// --json prints and the server's state before.
func stopServer(ctx context.Context, e *env, cfg *config.Config, be backend.Backend, user string, purge, snapshot, force bool) (downJSON, backend.State, error) {
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
	var snapID string
	if err := be.Down(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
		return downJSON{}, before.State, fmt.Errorf("down: %w", err)
	}
	if purge {
		pg, ok := be.(backend.Purger)
		if !ok {
			return downJSON{}, before.State, fmt.Errorf("down --purge: the %s backend cannot remove workspaces; the server is down, its workspace kept", be.Name())
		}
		if snapshot {
			snapper, ok := be.(backend.Snapshotter)
			if !ok {
				return downJSON{}, before.State, fmt.Errorf("down --purge --snapshot: the %s backend takes no snapshots; the server is down, its workspace kept", be.Name())
			}
			if snapID, err = snapper.Snapshot(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
				return downJSON{}, before.State, fmt.Errorf("down --purge --snapshot: %w; the server is down, its workspace kept", err)
			}
			// Said at once: a purge that fails after it still leaves
			// the snapshot.
			fmt.Fprintf(e.stderr, "final snapshot of %s's workspace: %s\n", user, snapID)
		}
		if err := pg.Purge(ctx, user, func(ev backend.Event) { p.Step(ev.Message) }); err != nil {
			return downJSON{}, before.State, fmt.Errorf("down --purge: %w", err)
		}
	}
	after, err := be.Status(ctx, user)
	if err != nil {
		return downJSON{}, before.State, fmt.Errorf("down: %w", err)
	}
	return downJSON{serverJSON: serverJSON{Server: after}, Save: saved, Snapshot: snapID}, before.State, nil
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
	// Snapshot is the id of the snapshot --purge --snapshot took.
	Snapshot string `json:"snapshot,omitempty"`
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
