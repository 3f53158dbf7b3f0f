package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/cost"
)

// A verdict is what the idle rules say about a server at one moment.
type verdict struct {
	IdleFor time.Duration
	// StopAt is when the server stops unless something changes; zero
	// when no rule will stop it.
	StopAt time.Time
	Warn   bool   // StopAt is within WarnBefore
	Stop   bool   // StopAt has come
	Reason string // why it stops at StopAt, such as "idle: no activity for 2h"
}

// decide applies the idle rules: a server stops StopAfter after its last
// activity and MaxAge after it started (activity does not postpone that),
// but never before extendedUntil; it warns WarnBefore ahead.
func decide(t backend.Idle, started, lastActive, extendedUntil, now time.Time) verdict {
	v := verdict{IdleFor: max(now.Sub(lastActive), 0)}
	if t.StopAfter > 0 {
		v.StopAt = later(lastActive.Add(t.StopAfter), extendedUntil)
		idle := t.StopAfter
		if v.StopAt.After(lastActive.Add(t.StopAfter)) {
			idle = v.StopAt.Sub(lastActive)
		}
		v.Reason = "idle: no activity for " + shortDuration(idle)
	}
	if t.MaxAge > 0 {
		at := later(started.Add(t.MaxAge), extendedUntil)
		if v.StopAt.IsZero() || at.Before(v.StopAt) {
			v.StopAt = at
			v.Reason = "max_age: up for " + shortDuration(at.Sub(started))
		}
	}
	if v.StopAt.IsZero() {
		v.Reason = ""
		return v
	}
	v.Stop = !now.Before(v.StopAt)
	v.Warn = v.Stop || t.WarnBefore > 0 && !now.Before(v.StopAt.Add(-t.WarnBefore))
	return v
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// shortDuration formats d rounded to the second without zero units:
// 2h, 1h30m, 3s.
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// defaultExtend is how long `spinbook extend` postpones a stop by default.
const defaultExtend = time.Hour

// idleLog is what the idle tracker logs to (a *slog.Logger).
type idleLog interface {
	Info(string, ...any)
	Warn(string, ...any)
}

// idleTracker keeps the server's last activity and stops it by the idle
// rules. Activity arrives from the front door (touch) and from polls of
// Jupyter's kernels and terminals and the GPUs (the poll function).
type idleTracker struct {
	timers  backend.Idle
	started time.Time
	now     func() time.Time
	log     idleLog

	mu            sync.Mutex
	lastActive    time.Time
	extendedUntil time.Time
	warned        bool
	stopReason    string
	// blocked says why a due stop waits (the save did not get the work
	// off the server); "" when no stop waits. The next try of the save
	// is at retryAt, tries counts them.
	blocked string
	retryAt time.Time
	tries   int
}

func newIdleTracker(timers backend.Idle, now func() time.Time, log idleLog) *idleTracker {
	start := now()
	return &idleTracker{timers: timers, started: start, lastActive: start, now: now, log: log}
}

// touch records activity now.
func (t *idleTracker) touch() {
	now := t.now()
	t.mu.Lock()
	if now.After(t.lastActive) {
		t.lastActive = now
	}
	t.mu.Unlock()
}

// extend postpones any stop until at least d from now, and returns the
// verdict after it.
func (t *idleTracker) extend(d time.Duration) verdict {
	now := t.now()
	t.mu.Lock()
	t.extendedUntil = later(t.extendedUntil, now.Add(d))
	t.warned = false
	t.mu.Unlock()
	t.log.Info("idle stop postponed", "for", d)
	return t.verdict()
}

func (t *idleTracker) verdict() verdict {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	return decide(t.timers, t.started, t.lastActive, t.extendedUntil, now)
}

// pollInterval is how often run polls for activity: often enough that a
// busy kernel is seen well within stop_after.
func (t *idleTracker) pollInterval() time.Duration {
	d := 15 * time.Second
	for _, limit := range []time.Duration{t.timers.StopAfter, t.timers.WarnBefore} {
		if limit > 0 {
			d = min(d, limit/6)
		}
	}
	return max(d, 100*time.Millisecond)
}

// retryWait is how long a blocked stop waits before try n (from 1) of
// its save: retryFirst doubling to retryMax; with a short stop_after, a
// few poll intervals to start with.
func (t *idleTracker) retryWait(n int) time.Duration {
	d := min(retryFirst, max(4*t.pollInterval(), time.Second))
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// retryNow makes a blocked stop try its save at the next poll (a save
// from outside just reached the remote).
func (t *idleTracker) retryNow() {
	t.mu.Lock()
	if t.blocked != "" {
		t.retryAt = time.Time{}
	}
	t.mu.Unlock()
}

// stopBlocked is why a due stop waits; "" when none does.
func (t *idleTracker) stopBlocked() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blocked
}

// run polls for activity and applies the rules until ctx is done (it
// returns "") or the server is to stop (it returns the reason). A due
// stop goes ahead only when save (try n, from 0) says nothing blocks it
// ("" when the work is safe); else the server stays, and save is tried
// again after retryWait, until it succeeds or activity (or extend) calls
// the stop off.
func (t *idleTracker) run(ctx context.Context, poll func(context.Context), save func(ctx context.Context, n int) string) string {
	if t.timers.StopAfter <= 0 && t.timers.MaxAge <= 0 {
		<-ctx.Done()
		return ""
	}
	tick := time.NewTicker(t.pollInterval())
	defer tick.Stop()
	for {
		if poll != nil {
			poll(ctx)
		}
		v := t.verdict()
		t.mu.Lock()
		switch {
		case v.Stop && t.now().Before(t.retryAt):
			// blocked; wait for the next try
		case v.Stop:
			n := t.tries
			t.mu.Unlock()
			why := ""
			if save != nil {
				why = save(ctx, n)
			}
			if ctx.Err() != nil {
				return ""
			}
			if why == "" && t.verdict().Stop { // still due: no one came back during the save
				t.mu.Lock()
				t.stopReason, t.blocked = v.Reason, ""
				t.mu.Unlock()
				t.log.Info("stopping by the idle rules", "reason", v.Reason)
				return v.Reason
			}
			t.mu.Lock()
			if why != "" {
				t.blocked, t.tries = why, n+1
				t.retryAt = t.now().Add(t.retryWait(t.tries))
				t.log.Warn("the server stays up: its work could not be saved", "stop", v.Reason, "why", why,
					"next_try", t.retryAt.UTC().Format(time.RFC3339))
			}
		case t.blocked != "":
			// Activity or extend called the stop off; the next one starts afresh.
			t.blocked, t.tries, t.retryAt = "", 0, time.Time{}
			t.log.Info("the blocked stop is called off: the server is in use again")
		}
		switch {
		case v.Stop:
		case v.Warn && !t.warned:
			t.warned = true
			t.log.Info("the server will stop soon", "at", v.StopAt.UTC().Format(time.RFC3339), "reason", v.Reason)
		case !v.Warn:
			t.warned = false
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
	}
}

// banner is the text of the front door's banner: a warning ahead of a
// stop, "" otherwise. The front door asks before it reports the page's
// request as activity (which may postpone the stop, as the text says).
func (t *idleTracker) banner() string {
	v := t.verdict()
	if blocked := t.stopBlocked(); blocked != "" && v.Stop {
		return fmt.Sprintf("This server should have stopped (%s) but your work could not be saved: %s; "+
			"it stays up until a save succeeds. Save in a terminal or fix the remote.", v.Reason, blocked)
	}
	if !v.Warn {
		return ""
	}
	at, in := v.StopAt.UTC().Format("15:04:05"), shortDuration(max(v.StopAt.Sub(t.now()), 0))
	if strings.HasPrefix(v.Reason, "idle:") {
		return fmt.Sprintf("This server stops at %s UTC (in %s) if it stays idle (%s), saving your work first. "+
			"Using it (running a cell, opening a page) postpones the stop; so does `spinbook extend`.", at, in, v.Reason)
	}
	return fmt.Sprintf("This server stops at %s UTC (in %s): %s, saving your work first. "+
		"`spinbook extend` postpones the stop.", at, in, v.Reason)
}

// IdleStatus is the idle part of GET /spinbook/api/status and the answer
// of POST /spinbook/api/extend.
type IdleStatus struct {
	StartedAt   time.Time `json:"started_at"`
	LastActive  time.Time `json:"last_active"`
	IdleSeconds int64     `json:"idle_seconds"`
	// StopsAt is when the server stops unless something changes; absent
	// when nothing will stop it. StopsInSeconds counts down to it.
	StopsAt        *time.Time `json:"stops_at,omitempty"`
	StopsInSeconds *int64     `json:"stops_in_seconds,omitempty"`
	// Warning says that a stop is near, and how to postpone it.
	Warning string `json:"warning,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// StopAfter, MaxAge and WarnBefore are the timers, in Go syntax, "off"
	// when off.
	StopAfter  string `json:"stop_after"`
	MaxAge     string `json:"max_age"`
	WarnBefore string `json:"warn_before"`
	// Size and the price per hour (nil: unknown) and cost so far, in USD.
	Size        string   `json:"size,omitempty"`
	CostPerHour *float64 `json:"cost_per_hour,omitempty"`
	CostSoFar   *float64 `json:"cost_so_far,omitempty"`
	// SpotPrice: the price is an estimate of spot capacity's.
	SpotPrice    bool       `json:"spot_price,omitempty"`
	ExtendedTill *time.Time `json:"extended_until,omitempty"`
	// StopBlocked says why a due stop waits, starting with what failed
	// ("push failed: ..."): the work is not safe off the server yet, so it
	// stays up and tries the save again. Absent when no stop waits.
	StopBlocked string `json:"stop_blocked,omitempty"`
	// Spot is what AWS said about the server's spot instance (a rebalance
	// recommendation, an interruption notice); absent when nothing.
	Spot string `json:"spot,omitempty"`
}

func (t *idleTracker) status() IdleStatus {
	now := t.now()
	v := t.verdict()
	t.mu.Lock()
	s := IdleStatus{
		StartedAt:   t.started.UTC(),
		LastActive:  t.lastActive.UTC(),
		IdleSeconds: int64(v.IdleFor / time.Second),
		Reason:      v.Reason,
		StopAfter:   offDuration(t.timers.StopAfter),
		MaxAge:      offDuration(t.timers.MaxAge),
		WarnBefore:  offDuration(t.timers.WarnBefore),
		Size:        t.timers.Size,
	}
	if v.Stop { // else activity or extend has called the stop off
		s.StopBlocked = t.blocked
	}
	if !t.extendedUntil.IsZero() && t.extendedUntil.After(now) {
		e := t.extendedUntil.UTC()
		s.ExtendedTill = &e
	}
	t.mu.Unlock()
	if !v.StopAt.IsZero() {
		at := v.StopAt.UTC()
		in := int64(max(v.StopAt.Sub(now), 0) / time.Second)
		s.StopsAt, s.StopsInSeconds = &at, &in
	}
	if s.StopBlocked != "" && v.Stop {
		s.Warning = fmt.Sprintf("should have stopped (%s), but stays up until its work is saved; it tries again by itself",
			v.Reason)
	} else if v.Warn {
		s.Warning = fmt.Sprintf("stops in %s (%s); any activity postpones an idle stop, or run `spinbook extend`",
			shortDuration(max(v.StopAt.Sub(now), 0)), v.Reason)
	}
	if p := t.timers.PricePerHour; p != nil {
		price := *p
		cost := cost.SoFar(price, now.Sub(t.started))
		s.CostPerHour, s.CostSoFar = &price, &cost
		s.SpotPrice = t.timers.SpotPrice
	}
	return s
}

func offDuration(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return shortDuration(d)
}

// serveExtend answers POST /spinbook/api/extend {"for": "2h"}.
func (a *Agent) serveExtend(w http.ResponseWriter, r *http.Request) {
	var req struct {
		For string `json:"for"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the request is not JSON: " + err.Error()})
			return
		}
	}
	d := defaultExtend
	if req.For != "" {
		var err error
		if d, err = time.ParseDuration(req.For); err != nil || d <= 0 || d > 30*24*time.Hour {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%q is not a duration between 1s and 720h (examples: 30m, 2h)", req.For)})
			return
		}
	}
	if a.idle == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "this server does not track activity yet (starting, or stopping)"})
		return
	}
	a.idle.extend(d)
	writeJSON(w, http.StatusOK, a.idle.status())
}

// idleStatus is the idle part of the status answer; nil before Jupyter runs.
func (a *Agent) idleStatus() *IdleStatus {
	if a.idle == nil {
		return nil
	}
	s := a.idle.status()
	s.Spot = a.spot.Note()
	return &s
}

// banner is the front door's banner: what AWS said about a spot
// instance, then the idle warning.
func (a *Agent) banner() string {
	note, idle := a.spot.Note(), a.idle.banner()
	switch {
	case note == "":
		return idle
	case idle == "":
		return note
	}
	return note + " " + idle
}

// release runs the spec's release command after an idle stop (aws:
// delete the server's own stack). Its failure is logged: the server
// has stopped its work either way.
func (a *Agent) release() {
	if a.spec.Idle == nil || len(a.spec.Idle.Release) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.spec.Idle.Release[0], a.spec.Idle.Release[1:]...)
	cmd.Stdout, cmd.Stderr = a.output, a.output
	cmd.Env = os.Environ()
	a.log.Info("releasing the server's resources", "command", a.spec.Idle.Release[0])
	if err := cmd.Run(); err != nil {
		a.log.Error("release after the idle stop failed", "err", err)
	}
}

// startIdle makes the idle tracker; the front door reports to it from
// its first request.
func (a *Agent) startIdle() {
	timers := backend.Idle{}
	if a.spec.Idle != nil {
		timers = *a.spec.Idle
	}
	a.idle = newIdleTracker(timers, time.Now, a.log)
	a.idleForMetrics.Store(a.idle)
}

// watchIdle polls Jupyter j and the GPUs for activity until ctx is done,
// in a goroutine of wg; the returned channel gets the reason when the idle
// rules stop the server (and its work is safe).
func (a *Agent) watchIdle(ctx context.Context, j *jupyter, wg *sync.WaitGroup) <-chan string {
	stop := make(chan string, 1)
	probe := newActivityProbe(j, a.front, a.idle.timers.StopAfter)
	if a.metrics != nil {
		probe.report = a.metrics.kernels
	}
	wg.Go(func() {
		defer probe.close()
		reason := a.idle.run(ctx, func(ctx context.Context) {
			if probe.active(ctx) {
				a.idle.touch()
			}
		}, a.saveForStop)
		if reason != "" {
			stop <- reason
		}
	})
	return stop
}

// StopReason says why the agent stopped by itself (idle, max_age); ""
// when it did not.
func (a *Agent) StopReason() string {
	if a.idle == nil {
		return ""
	}
	a.idle.mu.Lock()
	defer a.idle.mu.Unlock()
	return a.idle.stopReason
}
