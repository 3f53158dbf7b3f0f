package agent

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/gitwork"
)

// How the agent saves as it stops.
//
// A stop the agent decides itself (idle.stop_after, idle.max_age) is
// unattended: it goes ahead only once the work is off the server — pushed,
// on the remote already, or in a bundle stored in the model store
// (gitwork.Result.OffServer), the same rule `spinbook down` applies.
// Otherwise the server stays up, says why (status, ls, the notebook
// banner), and tries again later, each try given longer.
//
// A stop from outside (SIGTERM: `down`, `docker stop`, a pod deletion, ECS)
// cannot be refused: the agent saves within the backend's grace
// (AgentSpec.StopGrace) less what stopping the kernels takes.
const (
	// retryFirst and retryMax bound the wait between tries of a blocked
	// self-stop's save: retryFirst, doubling, at most retryMax. A server
	// with a short stop_after (tests, demos) starts sooner (retryStart).
	retryFirst = time.Minute
	retryMax   = 30 * time.Minute
	// stopSaveMax bounds one try of a self-stop's save; the first try
	// gets saveTimeout, each further one twice the one before.
	stopSaveMax = time.Hour
	// defaultStopSave is the save on SIGTERM when the backend did not say
	// its grace (an older spec).
	defaultStopSave = 20 * time.Second
	// stopMargin is kept from the grace besides Jupyter's stopGrace, for
	// the agent's own exit.
	stopMargin = 5 * time.Second
)

// stopBlocked says why a save's outcome does not let the server stop by
// itself, starting with what failed ("push failed: ...", "save failed:
// ..."); "" when the work is safe off the server. res and err are what
// saveRepo returned.
func stopBlocked(res gitwork.Result, err error) string {
	var why string
	switch {
	case err != nil && errors.Is(err, gitwork.ErrNotCheckout):
		why = "save failed: the workspace is not a git checkout, so nothing can be pushed"
	case err != nil && res.Reason != "":
		// The push failed, and the bundle could not be written either.
		why = "push failed: " + strings.TrimPrefix(err.Error(), "save: ")
	case err != nil:
		why = "save failed: " + strings.TrimPrefix(err.Error(), "save: ")
	case res.OffServer():
		return ""
	case res.Bundle != "":
		why = "push failed: " + res.Reason + "; the work is only in the bundle " + res.Bundle + " on the server's own disk"
	default:
		why = "push failed: " + res.Reason
	}
	return strings.Join(strings.Fields(why), " ") // one line, for status and ls
}

// stopSaveBudget is how long the save on SIGTERM may take when the
// backend kills the server grace after it: the grace less Jupyter's
// stopGrace and a margin, but at least two thirds of a short grace — the
// work comes before a clean end of the kernels.
func stopSaveBudget(grace time.Duration) time.Duration {
	if grace <= 0 {
		return defaultStopSave
	}
	return max(grace-stopGrace-stopMargin, grace*2/3)
}

// selfStopSaveTimeout bounds try n (from 0) of a self-stop's save:
// saveTimeout, doubling, at most stopSaveMax, so that a big push over a
// slow link gets its time in the end.
func selfStopSaveTimeout(n int) time.Duration {
	d := saveTimeout
	for range n {
		if d *= 2; d >= stopSaveMax {
			return stopSaveMax
		}
	}
	return d
}

// saveForStop saves the workspace ahead of a stop the agent decided
// itself (try n, from 0) and says what blocks the stop: "" when nothing
// does (no repo, or the work is off the server).
func (a *Agent) saveForStop(ctx context.Context, n int) string {
	if a.repo == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, selfStopSaveTimeout(n))
	defer cancel()
	a.log.Info("saving the workspace before the server stops by itself", "try", n+1)
	res, err := a.saveRepo(ctx, "")
	if ctx.Err() != nil && err != nil {
		err = errors.Join(err, context.Cause(ctx))
	}
	return a.redact.Redact(stopBlocked(res, err))
}

// saveOnStop saves the work as the agent stops on SIGTERM, within the
// backend's grace (stopSaveBudget), so that a server stopped from outside
// spinbook still pushes its work. The commit comes first and stays in the
// workspace; the push gets two thirds of the rest, a bundle the last third.
func (a *Agent) saveOnStop() {
	if a.repo == nil {
		return
	}
	budget := stopSaveBudget(a.spec.StopGrace)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	a.log.Info("saving the workspace before stopping", "within", budget)
	res, err := a.saveRepo(ctx, "")
	if err == nil {
		a.log.Info("workspace saved", "head", res.Head, "pushed_to", res.PushedTo, "bundle", res.Bundle, "up_to_date", res.UpToDate)
	}
}

// finalSave is the last save of a stop the agent decided itself, after
// Jupyter and its kernels stopped, so that nothing they wrote since the
// save that let the stop go ahead is left behind; usually it finds
// nothing new. It reports whether the work is off the server.
func (a *Agent) finalSave() bool {
	if a.repo == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	res, err := a.saveRepo(ctx, "")
	if why := stopBlocked(res, err); why != "" {
		a.log.Error("the last save before the stop did not reach the remote; the server's resources are not released", "why", a.redact.Redact(why))
		return false
	}
	a.log.Info("workspace saved", "head", res.Head, "pushed_to", res.PushedTo, "stored_bundle", res.StoredBundle, "up_to_date", res.UpToDate)
	return true
}
