package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/gitwork"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestStopBlocked: a server stops by itself only when the save put the
// work off the server; otherwise the reason starts with what failed.
func TestStopBlocked(t *testing.T) {
	unreachable := "the remote cannot be reached or refused the token (git push --porcelain origin HEAD:refs/heads/main: fatal: unable to access\n  'http://git.example/team.git/': Failed to connect)"
	tests := []struct {
		name string
		res  gitwork.Result
		err  error
		want string // "" = the stop may go ahead; else the reason's start
		also string // and a part the reason must hold
	}{
		{name: "pushed", res: gitwork.Result{Head: "c1", Branch: "main", PushedTo: "main", Saved: true}},
		{name: "pushed to a new branch", res: gitwork.Result{Head: "c1", Branch: "main", PushedTo: "spinbook/alice/20261206T010203Z", NewBranch: true, Saved: true}},
		{name: "up to date", res: gitwork.Result{Head: "c1", UpToDate: true, Saved: true}},
		{name: "no commit at all", res: gitwork.Result{UpToDate: true, Saved: true}},
		{name: "bundle stored in the model store",
			res: gitwork.Result{Head: "c1", Bundle: "/run/b.bundle", StoredBundle: "s3://m/spinbook/bundles/alice/b.bundle", Reason: unreachable, Saved: true}},
		{name: "bundle only on the server's disk",
			res:  gitwork.Result{Head: "c1", Bundle: "/home/jovyan/work/.git/spinbook-bundles/b.bundle", Reason: unreachable, Saved: true},
			want: "push failed: the remote cannot be reached", also: "the work is only in the bundle /home/jovyan/work/.git/spinbook-bundles/b.bundle"},
		{name: "bundle not stored away",
			res:  gitwork.Result{Head: "c1", Bundle: "/b.bundle", Reason: unreachable + "; the bundle could not be stored away too: access denied", Saved: true},
			want: "push failed: the remote cannot be reached", also: "could not be stored away too: access denied"},
		{name: "push and bundle failed",
			res:  gitwork.Result{Head: "c1", Reason: unreachable},
			err:  fmt.Errorf("save: %s; and the bundle could not be written: %w", unreachable, errors.New("no space left on device")),
			want: "push failed: the remote cannot be reached", also: "the bundle could not be written: no space left on device"},
		{name: "detached HEAD, nothing pushed",
			res:  gitwork.Result{Head: "c1", Reason: "HEAD is detached; pushing to the new branch spinbook/alice/x failed too (rejected)"},
			err:  errors.New("save: HEAD is detached; pushing to the new branch spinbook/alice/x failed too (rejected); and the bundle could not be written: no bundle directory configured"),
			want: "push failed: HEAD is detached"},
		{name: "commit failed", err: fmt.Errorf("save: commit: %w", errors.New("git add -A: fatal: Unable to create index.lock")),
			want: "save failed: commit: git add -A"},
		{name: "not a checkout", err: gitwork.ErrNotCheckout, want: "save failed: the workspace is not a git checkout"},
		{name: "not saved without an error", res: gitwork.Result{Head: "c1", Reason: "rejected"}, want: "push failed: rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stopBlocked(tt.res, tt.err)
			if tt.want == "" {
				if got != "" {
					t.Fatalf("stopBlocked = %q, want the stop to go ahead", got)
				}
				return
			}
			if !strings.HasPrefix(got, tt.want) || !strings.Contains(got, tt.also) {
				t.Errorf("stopBlocked = %q, want it to start with %q and hold %q", got, tt.want, tt.also)
			}
			if strings.ContainsAny(got, "\n\t") || strings.Contains(got, "  ") {
				t.Errorf("stopBlocked = %q, want one line", got)
			}
		})
	}
}

// TestStopSaveBudget: the save on SIGTERM fits the backend's grace, with
// time left to stop the kernels.
func TestStopSaveBudget(t *testing.T) {
	for _, tt := range []struct {
		name  string
		grace time.Duration
		want  time.Duration
	}{
		{"unknown grace (older spec)", 0, 20 * time.Second},
		{"local", 45 * time.Second, 30 * time.Second},
		{"docker default", 60 * time.Second, 45 * time.Second},
		{"kubernetes pod: stop_grace 60s + 15s", 75 * time.Second, 60 * time.Second},
		{"aws ECS stopTimeout", 120 * time.Second, 105 * time.Second},
		{"a long docker.stop_grace", 10 * time.Minute, 10*time.Minute - 15*time.Second},
		{"a short docker.stop_grace: the save first", 20 * time.Second, 13333333333 * time.Nanosecond},
		{"a grace too short for the kernels", 9 * time.Second, 6 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := stopSaveBudget(tt.grace); got != tt.want {
				t.Errorf("stopSaveBudget(%v) = %v, want %v", tt.grace, got, tt.want)
			}
		})
	}
	for n, want := range []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour} {
		if got := selfStopSaveTimeout(n); got != want {
			t.Errorf("selfStopSaveTimeout(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestIdleStopWaitsForASafeSave runs the tracker on a fake clock with a
// save that fails twice: the server stays, says why in status and in the
// banner, tries again after 1m, then 2m, and stops once the save works.
func TestIdleStopWaitsForASafeSave(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	synctest.Test(t, func(t *testing.T) {
		tr := newIdleTracker(backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute}, time.Now, quiet)
		start := time.Now()
		var mu sync.Mutex
		var tries []time.Duration
		save := func(ctx context.Context, n int) string {
			mu.Lock()
			defer mu.Unlock()
			if n != len(tries) {
				t.Errorf("try %d, want %d", n, len(tries))
			}
			tries = append(tries, time.Since(start))
			if len(tries) < 3 {
				return "push failed: the remote cannot be reached"
			}
			return ""
		}
		done := make(chan string, 1)
		go func() { done <- tr.run(t.Context(), nil, save) }()

		time.Sleep(2*time.Hour + 30*time.Second)
		synctest.Wait()
		s := tr.status()
		if s.StopBlocked != "push failed: the remote cannot be reached" || !strings.Contains(s.Warning, "should have stopped") {
			t.Errorf("status of a blocked stop = %+v, want stop_blocked and a warning", s)
		}
		if b := tr.banner(); !strings.Contains(b, "should have stopped (idle: no activity for 2h) but your work could not be saved: push failed: the remote cannot be reached") ||
			!strings.Contains(b, "stays up until a save succeeds") {
			t.Errorf("banner of a blocked stop = %q", b)
		}
		select {
		case r := <-done:
			t.Fatalf("stopped (%q) although the save failed", r)
		default:
		}
		reason := <-done
		if reason != "idle: no activity for 2h" {
			t.Errorf("reason = %q", reason)
		}
		mu.Lock()
		defer mu.Unlock()
		poll := tr.pollInterval()
		want := []time.Duration{2 * time.Hour, 2*time.Hour + time.Minute, 2*time.Hour + 3*time.Minute}
		if len(tries) != len(want) {
			t.Fatalf("tries at %v, want at %v", tries, want)
		}
		for i := range want {
			if tries[i] < want[i] || tries[i] > want[i]+poll {
				t.Errorf("try %d at %v, want at %v (give or take a poll of %v)", i, tries[i], want[i], poll)
			}
		}
		if s := tr.status(); s.StopBlocked != "" {
			t.Errorf("stop_blocked after the stop went ahead: %q", s.StopBlocked)
		}
	})
}

// TestBlockedStopCalledOff: a person who comes back to a server whose
// stop waits calls the stop off (and sees the banner on that page); a
// save from outside that reaches the remote lets a waiting stop go
// ahead at the next poll, not after the backoff.
func TestBlockedStopCalledOff(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	t.Run("activity", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{StopAfter: time.Hour}, time.Now, quiet)
			var fail atomic.Bool
			fail.Store(true)
			var tries atomic.Int64
			save := func(context.Context, int) string {
				tries.Add(1)
				if fail.Load() {
					return "push failed: rejected"
				}
				return ""
			}
			start := time.Now()
			done := make(chan string, 1)
			go func() { done <- tr.run(t.Context(), nil, save) }()
			time.Sleep(time.Hour + 10*time.Second)
			synctest.Wait()
			if tr.status().StopBlocked == "" || tr.banner() == "" {
				t.Fatal("the stop is not blocked")
			}
			tr.touch() // the person opens a page
			if s := tr.status(); s.StopBlocked != "" || s.Warning != "" {
				t.Errorf("after activity: %+v, want no blocked stop and no warning", s)
			}
			fail.Store(false)
			reason := <-done
			if got := time.Since(start); got < 2*time.Hour {
				t.Errorf("stopped %v after the start, want an hour after the activity", got)
			}
			if reason != "idle: no activity for 1h" || tries.Load() != 2 {
				t.Errorf("reason %q after %d tries, want the idle stop after 2", reason, tries.Load())
			}
		})
	})
	t.Run("a save from outside", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newIdleTracker(backend.Idle{MaxAge: time.Hour}, time.Now, quiet)
			var fail atomic.Bool
			fail.Store(true)
			save := func(context.Context, int) string {
				if fail.Load() {
					return "push failed: rejected"
				}
				return ""
			}
			done := make(chan string, 1)
			go func() { done <- tr.run(t.Context(), nil, save) }()
			time.Sleep(time.Hour + time.Second)
			synctest.Wait()
			blockedAt := time.Now()
			fail.Store(false)
			tr.retryNow() // `spinbook save` or a push from a terminal reached the remote
			if reason := <-done; reason != "max_age: up for 1h" {
				t.Errorf("reason = %q", reason)
			}
			if got := time.Since(blockedAt); got > tr.pollInterval() {
				t.Errorf("the stop went ahead %v after the save from outside, want within a poll (%v)", got, tr.pollInterval())
			}
		})
	})
}

// TestSaveForStopWithARealRemote saves a real checkout against a real
// git remote (smart HTTP): with the remote down the stop is blocked —
// "push failed" — and the commit stays in the workspace, with or without
// a bundle on the server's disk; with the remote back, or with a model
// store that takes the bundle, the stop may go ahead.
func TestSaveForStopWithARealRemote(t *testing.T) {
	g := gittest.New(t, "token-not-sent-by-the-agent", "main", map[string]string{"a.txt": "a\n"})
	var down atomic.Bool
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		r.SetBasicAuth("agent", "token-not-sent-by-the-agent") // a proxy adds the credentials
		g.ServeHTTP(w, r)
	}))
	t.Cleanup(remote.Close)

	newAgent := func(t *testing.T, modelStore string) *Agent {
		spec := backend.AgentSpec{User: "alice", Workspace: t.TempDir(), BundleDir: filepath.Join(t.TempDir(), "bundles"),
			Repo: &backend.Repo{URL: remote.URL + "/team.git", Branch: "main"}}
		if modelStore != "" {
			spec.Models = &backend.Models{URL: "file://" + modelStore}
		}
		a := New(spec, slog.New(slog.DiscardHandler), io.Discard)
		if _, err := a.prepareRepo(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.closeRepo)
		return a
	}

	t.Run("remote down, no model store", func(t *testing.T) {
		a := newAgent(t, "")
		gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"work.txt": "unsaved work\n"})
		down.Store(true)
		defer down.Store(false)
		why := a.saveForStop(t.Context(), 0)
		if !strings.HasPrefix(why, "push failed: ") || !strings.Contains(why, "503") {
			t.Errorf("saveForStop with the remote down = %q, want push failed, saying why", why)
		}
		if tree := gittest.TreeOf(t, a.spec.Workspace, "HEAD"); tree["work.txt"] != "unsaved work\n" {
			t.Errorf("the workspace's HEAD holds %v, want the work committed", tree)
		}
		if got := g.Tree(t, "main")["work.txt"]; got != "" {
			t.Fatalf("the remote got the work while down: %q", got)
		}
		down.Store(false)
		if why := a.saveForStop(t.Context(), 1); why != "" {
			t.Errorf("saveForStop with the remote back = %q, want the stop to go ahead", why)
		}
		if got := g.Tree(t, "main")["work.txt"]; got != "unsaved work\n" {
			t.Errorf("the remote main holds work.txt = %q after the retry, want the work", got)
		}
	})
	t.Run("remote down, bundle in the model store", func(t *testing.T) {
		store := t.TempDir()
		a := newAgent(t, store)
		gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"more.txt": "more work\n"})
		down.Store(true)
		defer down.Store(false)
		if why := a.saveForStop(t.Context(), 0); why != "" {
			t.Errorf("saveForStop with the bundle stored away = %q, want the stop to go ahead", why)
		}
		var bundles []string
		filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".bundle") {
				bundles = append(bundles, p)
			}
			return nil
		})
		if len(bundles) != 1 || !strings.Contains(bundles[0], filepath.Join("bundles", "alice")) {
			t.Errorf("bundles in the model store: %v, want one of alice's", bundles)
		}
	})
}
