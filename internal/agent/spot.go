package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/models"
)

// How the agent of a spot server (AgentSpec.Spot) meets AWS taking its
// instance back.
//
// It polls the instance metadata service (imds.go) every few seconds for
// two things. An interruption notice (spot/instance-action, two minutes
// ahead): the agent cuts short any save under way (its push gives way to
// a bundle), saves at once — commit, push, else a bundle to the model
// store — within the time left less what stopping Jupyter takes, records
// the stop where `spinbook status` finds it after the instance is gone
// (stopRecorder: the model store), stops Jupyter, and exits. A rebalance
// recommendation (events/recommendations/rebalance: AWS may take the
// instance soon): the agent saves at once, logs it, and says so in the
// banner and status; the server keeps running.
//
// The workspace is left as it is: the stop never deletes anything (no
// release command runs), so whatever keeps the workspace across an
// instance (the aws workspace volume) has it for the next `up`.
const (
	spotInterruptionPath = "/latest/meta-data/spot/instance-action"
	spotRebalancePath    = "/latest/meta-data/events/recommendations/rebalance"
	// spotInterval is how often the metadata service is asked, as AWS
	// advises.
	spotInterval = 5 * time.Second
	// spotWarning is how long before the instance is taken AWS notifies.
	spotWarning = 2 * time.Minute
	// spotSaveMin is the least a save on an interruption notice gets,
	// whatever the notice says.
	spotSaveMin = 5 * time.Second
	// recordTimeout bounds writing the stop record.
	recordTimeout = 5 * time.Second
)

// spotNotice is an interruption notice: AWS takes the instance At, to
// Action it (terminate, stop, hibernate). Seen is when the agent read it.
type spotNotice struct {
	Action string
	At     time.Time
	Seen   time.Time
}

// spotState is what the agent knows of its instance's fate, for the
// banner and status.
type spotState struct {
	mu   sync.Mutex
	note string
}

func (s *spotState) setNote(note string) {
	s.mu.Lock()
	s.note = note
	s.mu.Unlock()
}

// Note is what the banner and status say about the instance; "" when AWS
// said nothing.
func (s *spotState) Note() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.note
}

// A stopRecorder keeps a StopRecord where it outlives the server.
type stopRecorder interface {
	RecordStop(ctx context.Context, r backend.StopRecord) error
}

// storeRecorder keeps stop records in the model store, under the user's
// own part (models.StopRecordName), which `spinbook status` reads.
type storeRecorder struct {
	open func(context.Context) (models.Store, error)
}

func (s storeRecorder) RecordStop(ctx context.Context, r backend.StopRecord) error {
	store, err := s.open(ctx)
	if err != nil {
		return fmt.Errorf("record the stop: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("record the stop: %w", err)
	}
	at := r.TakenAt
	if at.IsZero() {
		at = r.NoticeAt
	}
	sum := sha256.Sum256(data)
	err = store.Put(ctx, models.StopRecordName(r.User, at), bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]), models.PutOptions{})
	if errors.Is(err, models.ErrExists) {
		return nil // the same stop, recorded by the agent before a restart
	}
	if err != nil {
		return fmt.Errorf("record the stop: %w", err)
	}
	return nil
}

// watchSpot polls the metadata service until ctx is done, in a goroutine
// of wg; the returned channel gets the interruption notice. Nil when the
// server is not a spot server.
func (a *Agent) watchSpot(ctx context.Context, wg *sync.WaitGroup) <-chan spotNotice {
	w := a.spec.Spot
	if w == nil {
		return nil
	}
	interval := w.Interval
	if interval <= 0 {
		interval = spotInterval
	}
	c := newIMDSClient(w.Endpoint, w.TokenTTL)
	out := make(chan spotNotice, 1)
	wg.Go(func() {
		defer c.http.CloseIdleConnections()
		var failing bool
		var rebalanced bool
		for {
			n, rebalance, err := pollSpot(ctx, c)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing:
				failing = true
				a.log.Warn("the instance metadata service cannot be read: a spot interruption would come unannounced", "err", err)
			case err == nil && failing:
				failing = false
				a.log.Info("the instance metadata service answers again")
			}
			if !rebalance.IsZero() && !rebalanced {
				rebalanced = true
				a.onRebalance(ctx, rebalance, wg)
			}
			if n != nil {
				a.onInterruption(*n)
				out <- *n
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	})
	return out
}

// pollSpot asks for an interruption notice and a rebalance
// recommendation: n is nil and rebalance zero when there is none.
func pollSpot(ctx context.Context, c *imdsClient) (n *spotNotice, rebalance time.Time, err error) {
	body, found, err := c.get(ctx, spotInterruptionPath)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := time.Now()
	if found {
		var v struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}
		n = &spotNotice{Action: "terminate", At: now.Add(spotWarning), Seen: now}
		if json.Unmarshal(body, &v) == nil {
			if v.Action != "" {
				n.Action = v.Action
			}
			if at, err := time.Parse(time.RFC3339, v.Time); err == nil {
				n.At = at
			}
		}
		return n, time.Time{}, nil
	}
	body, found, err = c.get(ctx, spotRebalancePath)
	if err != nil || !found {
		return nil, time.Time{}, err
	}
	var v struct {
		NoticeTime string `json:"noticeTime"`
	}
	rebalance = now
	if json.Unmarshal(body, &v) == nil {
		if at, err := time.Parse(time.RFC3339, v.NoticeTime); err == nil {
			rebalance = at
		}
	}
	return nil, rebalance, nil
}

// onRebalance saves at once, in a goroutine of wg, and says so: AWS
// recommends leaving the instance, which it may take back soon.
func (a *Agent) onRebalance(ctx context.Context, at time.Time, wg *sync.WaitGroup) {
	a.log.Warn("AWS recommends moving off this spot instance (rebalance recommendation): saving the workspace now",
		"at", at.UTC().Format(time.RFC3339))
	note := fmt.Sprintf("AWS may take this spot server back soon (rebalance recommendation at %s UTC): save often; "+
		"when it is taken, spinbook saves your work first.", at.UTC().Format("15:04:05"))
	a.spot.setNote(note)
	if a.repo == nil {
		return
	}
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		res, err := a.saveRepo(ctx, "")
		if why := stopBlocked(res, err); why != "" {
			a.log.Warn("the save on the rebalance recommendation did not get the work off the server", "why", a.redact.Redact(why))
			return
		}
		a.log.Info("workspace saved on the rebalance recommendation", "head", res.Head, "pushed_to", res.PushedTo, "stored_bundle", res.StoredBundle)
		a.spot.setNote(note + " Your work was saved at " + time.Now().UTC().Format("15:04:05") + " UTC.")
	})
}

// onInterruption is the first thing the agent does on a notice, before
// the stop proper: a save under way stops pushing and bundles.
func (a *Agent) onInterruption(n spotNotice) {
	a.log.Warn("spot interruption notice: AWS takes this instance back; saving the workspace, then stopping",
		"action", n.Action, "at", n.At.UTC().Format(time.RFC3339))
	a.spot.setNote(fmt.Sprintf("AWS takes this spot server back at %s UTC: spinbook is saving your work and stopping Jupyter.",
		n.At.UTC().Format("15:04:05")))
	a.hurrySave()
}

// spotSaveBudget is how long the save on a notice may take when the
// instance goes in left: what is left after stopping Jupyter and writing
// the record, within the backend's own grace, and never less than
// spotSaveMin.
func spotSaveBudget(left, grace time.Duration) time.Duration {
	return max(min(stopSaveBudget(grace), left-stopGrace-stopMargin-recordTimeout), spotSaveMin)
}

// stopForSpot saves the work on notice n, records the stop, and stops
// Jupyter j, all before AWS takes the instance.
func (a *Agent) stopForSpot(n spotNotice, j *jupyter) {
	rec := backend.StopRecord{User: a.spec.User, Reason: backend.StopSpotReclaimed, NoticeAt: n.Seen.UTC(),
		TakenAt: n.At.UTC(), Action: n.Action, Repo: a.repo != nil}
	if a.repo != nil {
		budget := spotSaveBudget(time.Until(n.At), a.spec.StopGrace)
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		a.log.Info("saving the workspace before AWS takes the instance", "within", budget)
		res, err := a.saveRepo(ctx, "")
		if ctx.Err() != nil && err != nil {
			err = errors.Join(err, context.Cause(ctx))
		}
		cancel()
		why := a.redact.Redact(stopBlocked(res, err))
		rec.Saved, rec.Head, rec.Branch, rec.Bundle, rec.Detail = why == "", res.Head, res.PushedTo, res.StoredBundle, why
	}
	if a.stops != nil {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		if err := a.stops.RecordStop(ctx, rec); err != nil {
			a.log.Error("the stop could not be recorded: `spinbook status` will not know why the server is gone", "err", a.redact.Redact(err.Error()))
		}
		cancel()
	} else {
		a.log.Warn("no model store: the stop is recorded only in this log")
	}
	a.log.Warn(rec.Summary(), "head", rec.Head)
	if j != nil {
		j.stop(stopGrace)
	}
}
