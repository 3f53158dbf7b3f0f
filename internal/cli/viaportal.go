package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/ui"
)

// The commands up, down, status, ls, save and extend, through the portal
// the person logged in to (`spinbook login`). The portal answers in the
// shapes these commands print with --json, so the same printers serve.

// portalTimeout bounds up and down through a portal: --timeout when given,
// else long enough for the slowest backend (the portal applies its own).
func portalTimeout(cmd *cobra.Command, flag time.Duration) time.Duration {
	if cmd.Flags().Changed("timeout") {
		return flag
	}
	return max(flag, 30*time.Minute)
}

// viaPortal runs fn with the portal's client when logged in; ok false
// means the command should use the config's backend.
func (e *env) viaPortal(fn func(pc *client.Client) error) (ok bool, err error) {
	pc, err := e.portal()
	if err != nil || pc == nil {
		return false, err
	}
	return true, portalError(fn(pc))
}

// portalError marks the portal's answers to bad input as usage errors
// (exit 2), as the command line's own are.
func portalError(err error) error {
	var pe *client.Error
	if errors.As(err, &pe) && pe.Status == http.StatusBadRequest {
		return usageError{err}
	}
	return err
}

func (e *env) statusViaPortal(ctx context.Context, pc *client.Client) error {
	user, err := e.portalUser(ctx, pc)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	var sj serverJSON
	if err := pc.Status(ctx, user, &sj); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return e.printStatus(sj, pc.URL())
}

func (e *env) lsViaPortal(ctx context.Context, pc *client.Client) error {
	var servers []serverJSON
	if err := pc.List(ctx, &servers); err != nil {
		return fmt.Errorf("ls: %w", err)
	}
	return e.printList(servers, nil)
}

func (e *env) upViaPortal(cmd *cobra.Command, pc *client.Client, size string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), portalTimeout(cmd, timeout))
	defer cancel()
	user, err := e.portalUser(ctx, pc)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	var before serverJSON
	if err := pc.Status(ctx, user, &before); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	p := ui.NewProgress(e.stderr)
	p.Step(fmt.Sprintf("bringing up %s's server through the portal %s", user, pc.URL()))
	var sj serverJSON
	if err := pc.Start(ctx, user, size, p.Step, &sj); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	sj.Started = !(before.State == backend.Running && before.Ready)
	if e.json {
		return ui.JSON(e.stdout, sj)
	}
	return e.printUp(sj.Server, sj.Password)
}

func (e *env) downViaPortal(cmd *cobra.Command, pc *client.Client, purge, force bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), portalTimeout(cmd, timeout))
	defer cancel()
	user, err := e.portalUser(ctx, pc)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	var before serverJSON
	if err := pc.Status(ctx, user, &before); err != nil {
		return fmt.Errorf("down: %w", err)
	}
	p := ui.NewProgress(e.stderr)
	var after serverJSON
	if err := pc.Stop(ctx, user, purge, force, p.Step, &after); err != nil {
		return fmt.Errorf("down: %w", err)
	}
	if e.json {
		return ui.JSON(e.stdout, downJSON{serverJSON: after})
	}
	fmt.Fprintln(e.stdout, downMessage(user, before.State == backend.Absent, purge))
	return nil
}

func (e *env) saveViaPortal(ctx context.Context, pc *client.Client, message string) error {
	user, err := e.portalUser(ctx, pc)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	ui.NewProgress(e.stderr).Step(fmt.Sprintf("saving %s's workspace through the portal %s", user, pc.URL()))
	var out saveJSON
	if err := pc.Save(ctx, user, message, &out); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return e.finishSave(out)
}

func (e *env) extendViaPortal(ctx context.Context, pc *client.Client, d time.Duration) error {
	user, err := e.portalUser(ctx, pc)
	if err != nil {
		return fmt.Errorf("extend: %w", err)
	}
	var out extendJSON
	if err := pc.Extend(ctx, user, d, &out); err != nil {
		return fmt.Errorf("extend: %w", err)
	}
	if out.User == "" {
		out.User = user
	}
	return e.printExtend(out)
}
