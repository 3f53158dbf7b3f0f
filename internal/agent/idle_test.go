package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	std := backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute}
	aged := backend.Idle{StopAfter: 2 * time.Hour, MaxAge: 8 * time.Hour, WarnBefore: 10 * time.Minute}
	tests := []struct {
		name               string
		timers             backend.Idle
		lastActive, ext    time.Time
		now                time.Time
		wantStopAt         time.Time
		wantWarn, wantStop bool
		wantReason         string
	}{
		{"fresh", std, at(0), time.Time{}, at(time.Minute), at(2 * time.Hour), false, false, "idle: no activity for 2h"},
		{"just before the warning", std, at(0), time.Time{}, at(109 * time.Minute), at(2 * time.Hour), false, false, "idle: no activity for 2h"},
		{"warned", std, at(0), time.Time{}, at(110 * time.Minute), at(2 * time.Hour), true, false, "idle: no activity for 2h"},
		{"stop", std, at(0), time.Time{}, at(2 * time.Hour), at(2 * time.Hour), true, true, "idle: no activity for 2h"},
		{"activity postpones", std, at(time.Hour), time.Time{}, at(2 * time.Hour), at(3 * time.Hour), false, false, "idle: no activity for 2h"},
		{"extend postpones", std, at(0), at(4 * time.Hour), at(2 * time.Hour), at(4 * time.Hour), false, false, "idle: no activity for 4h"},
		{"an old extension does not", std, at(3 * time.Hour), at(4 * time.Hour), at(4 * time.Hour), at(5 * time.Hour), false, false, "idle: no activity for 2h"},
		{"max_age stops an active server", aged, at(8 * time.Hour), time.Time{}, at(8 * time.Hour), at(8 * time.Hour), true, true, "max_age: up for 8h"},
		{"max_age warns an active server", aged, at(7*time.Hour + 55*time.Minute), time.Time{}, at(7*time.Hour + 55*time.Minute), at(8 * time.Hour), true, false, "max_age: up for 8h"},
		{"idle before max_age", aged, at(time.Hour), time.Time{}, at(150 * time.Minute), at(3 * time.Hour), false, false, "idle: no activity for 2h"},
		{"extend postpones max_age", aged, at(8 * time.Hour), at(9 * time.Hour), at(8 * time.Hour), at(9 * time.Hour), false, false, "max_age: up for 9h"},
		{"off", backend.Idle{}, at(0), time.Time{}, at(1000 * time.Hour), time.Time{}, false, false, ""},
		{"no warning", backend.Idle{StopAfter: time.Hour}, at(0), time.Time{}, at(59 * time.Minute), at(time.Hour), false, false, "idle: no activity for 1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decide(tt.timers, t0, tt.lastActive, tt.ext, tt.now)
			if !v.StopAt.Equal(tt.wantStopAt) || v.Warn != tt.wantWarn || v.Stop != tt.wantStop || v.Reason != tt.wantReason {
				t.Errorf("decide = stop at %v, warn %v, stop %v, %q; want %v, %v, %v, %q",
					v.StopAt, v.Warn, v.Stop, v.Reason, tt.wantStopAt, tt.wantWarn, tt.wantStop, tt.wantReason)
			}
			if want := max(tt.now.Sub(tt.lastActive), 0); v.IdleFor != want {
				t.Errorf("IdleFor = %v, want %v", v.IdleFor, want)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Hour: "2h", 90 * time.Minute: "1h30m", 3 * time.Second: "3s", 10 * time.Minute: "10m",
		time.Hour + 5*time.Second: "1h0m5s", 1500 * time.Millisecond: "2s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestGPUBusy(t *testing.T) {
	for out, want := range map[string]bool{"0\n": false, "3\n10\n": false, "0\n87\n": true, "": false, "[N/A]\n": false} {
		if got := gpuBusyIn([]byte(out)); got != want {
			t.Errorf("gpuBusyIn(%q) = %v, want %v", out, got, want)
		}
	}
}

// TestIdleTrackerTimers runs the tracker on a fake clock: activity and
// extend postpone the stop, a warning comes first, max_age stops an
// active server, and the stop comes with its reason.
func TestIdleTrackerTimers(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	t.Run("idle stop after the warning", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute}, time.Now, quiet)
			start := time.Now()
			done := make(chan string, 1)
			go func() { done <- tr.run(t.Context(), nil, nil) }()

			time.Sleep(109 * time.Minute)
			synctest.Wait()
			if b := tr.banner(); b != "" {
				t.Errorf("banner before the warning: %q", b)
			}
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			if b := tr.banner(); !strings.Contains(b, "stops at") || !strings.Contains(b, "spinbook extend") {
				t.Errorf("banner in the warning = %q, want when and how to postpone", b)
			}
			if s := tr.status(); s.Warning == "" || s.StopsAt == nil {
				t.Errorf("status in the warning = %+v, want a warning and stops_at", s)
			}
			reason := <-done
			if got := time.Since(start); got < 2*time.Hour || got > 2*time.Hour+tr.pollInterval() {
				t.Errorf("stopped after %v, want 2h", got)
			}
			if reason != "idle: no activity for 2h" {
				t.Errorf("reason = %q", reason)
			}
		})
	})
	t.Run("activity and extend postpone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute}, time.Now, quiet)
			start := time.Now()
			var polls atomic.Int64
			done := make(chan string, 1)
			// A kernel busy for the first 3 hours, seen by the poll.
			go func() {
				done <- tr.run(t.Context(), func(context.Context) {
					polls.Add(1)
					if time.Since(start) <= 3*time.Hour {
						tr.touch()
					}
				}, nil)
			}()
			time.Sleep(4*time.Hour + 45*time.Minute)
			synctest.Wait()
			if tr.banner() != "" {
				t.Error("a warning 1h45m after the last activity")
			}
			time.Sleep(10 * time.Minute)
			synctest.Wait()
			if tr.banner() == "" {
				t.Error("no warning 1h55m after the last activity")
			}
			tr.extend(3 * time.Hour) // at 4h55m: until 7h55m
			synctest.Wait()
			if tr.banner() != "" {
				t.Error("the warning stays after extend")
			}
			reason := <-done
			if got := time.Since(start); got < 7*time.Hour+55*time.Minute || got > 7*time.Hour+55*time.Minute+tr.pollInterval() {
				t.Errorf("stopped after %v, want 7h55m (extended)", got)
			}
			if reason != "idle: no activity for 4h55m" {
				t.Errorf("reason = %q", reason)
			}
			if polls.Load() == 0 {
				t.Error("the poll never ran")
			}
		})
	})
	t.Run("max_age stops an active server", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{StopAfter: time.Hour, MaxAge: 5 * time.Hour, WarnBefore: 10 * time.Minute}, time.Now, quiet)
			start := time.Now()
			reason := tr.run(t.Context(), func(context.Context) { tr.touch() }, nil) // always busy
			if got := time.Since(start); got < 5*time.Hour || got > 5*time.Hour+tr.pollInterval() {
				t.Errorf("stopped after %v, want 5h", got)
			}
			if reason != "max_age: up for 5h" {
				t.Errorf("reason = %q", reason)
			}
		})
	})
	t.Run("off never stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{}, time.Now, quiet)
			ctx, cancel := context.WithTimeout(t.Context(), 1000*time.Hour)
			defer cancel()
			if reason := tr.run(ctx, nil, nil); reason != "" {
				t.Errorf("stopped with timers off: %q", reason)
			}
		})
	})
	t.Run("cost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			price := 1.2
			tr := newIdleTracker(backend.Idle{StopAfter: time.Hour, Size: "gpu", PricePerHour: &price}, time.Now, quiet)
			time.Sleep(90 * time.Minute)
			s := tr.status()
			if s.CostPerHour == nil || *s.CostPerHour != 1.2 || s.CostSoFar == nil || *s.CostSoFar != 1.8 || s.Size != "gpu" {
				t.Errorf("status = %+v, want gpu at 1.2/h, 1.8 so far", s)
			}
			if s.IdleSeconds != 5400 {
				t.Errorf("idle_seconds = %d, want 5400", s.IdleSeconds)
			}
		})
	})
}

// TestControlExtend: POST /spinbook/api/extend postpones the stop by
// "for" (default 1h) and refuses what is not a duration; status carries
// the idle part.
func TestControlExtend(t *testing.T) {
	const token = "control-token-1d1e"
	spec := backend.AgentSpec{User: "alice", Workspace: t.TempDir(), ControlToken: token,
		Idle: &backend.Idle{StopAfter: time.Minute, WarnBefore: time.Minute}}
	a := New(spec, slog.New(slog.DiscardHandler), io.Discard)
	a.startIdle()
	h := a.controlHandler()
	call := func(method, path, body string) (int, IdleStatus, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var s IdleStatus
		json.Unmarshal(rec.Body.Bytes(), &s)
		return rec.Code, s, rec.Body.String()
	}
	code, s, body := call(http.MethodPost, "/spinbook/api/extend", `{"for":"2h"}`)
	if code != http.StatusOK || s.StopsAt == nil || time.Until(*s.StopsAt) < 119*time.Minute || s.Warning != "" {
		t.Errorf("extend --for 2h = %d %s, want the stop 2h away and no warning", code, body)
	}
	if code, _, body := call(http.MethodPost, "/spinbook/api/extend", `{"for":"soon"}`); code != http.StatusBadRequest {
		t.Errorf("extend for soon = %d %s, want 400", code, body)
	}
	r := httptest.NewRequest(http.MethodGet, "/spinbook/api/status", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var st StatusResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Idle == nil || st.Idle.StopAfter != "1m" || st.Idle.MaxAge != "off" {
		t.Errorf("status = %s, want the idle part", rec.Body)
	}
}
