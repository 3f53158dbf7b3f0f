package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// idlePorts keeps the idle tests' servers clear of the other tests' ports.
const idlePorts = "20200-20399"

// idleServer is what `status --json` and `ls --json` print, with the idle
// and cost fields.
type idleServer struct {
	server
	Detail         string     `json:"detail"`
	StartedAt      time.Time  `json:"started_at"`
	Size           string     `json:"size"`
	UptimeSeconds  int64      `json:"uptime_seconds"`
	IdleSeconds    *int64     `json:"idle_seconds"`
	StopsAt        *time.Time `json:"stops_at"`
	StopsInSeconds *int64     `json:"stops_in_seconds"`
	Warning        string     `json:"warning"`
	StopReason     string     `json:"stop_reason"`
	StopBlocked    string     `json:"stop_blocked"`
	CostPerHour    *float64   `json:"cost_per_hour"`
	CostSoFar      *float64   `json:"cost_so_far"`
}

func (w *world) idleStatus(user string) idleServer {
	w.t.Helper()
	r := w.run("status", "--json", "--user", user)
	if r.code != 0 {
		w.t.Fatalf("spinbook status: %s", r)
	}
	var s idleServer
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		w.t.Fatalf("status --json: %v\n%s", err, r)
	}
	return s
}

// page fetches path as a browser navigation and returns the body.
func (b *browser) page(t *testing.T, path string) string {
	t.Helper()
	resp := b.do(t, http.MethodGet, path, nil, map[string]string{"Accept": "text/html,application/xhtml+xml"})
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return string(data)
}

func loggedIn(t *testing.T, s server) *browser {
	t.Helper()
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	return b
}

// TestIdleServerWarnsSavesAndStops: an idle local server first warns —
// in `status` and in a banner on its pages — then saves the workspace to
// the team repo and stops, leaving no process; status says why.
func TestIdleServerWarnsSavesAndStops(t *testing.T) {
	needJupyter(t)
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	cfg := fmt.Sprintf("repo:\n  url: %s\n  branch: main\n  token: ${env:SPINBOOK_E2E_GIT_TOKEN}\nidle: {stop_after: 8s, warn_before: 6s}\n", g.URL())
	w := newWorldPorts(t, cfg, idlePorts)
	w.env = append(w.env, "SPINBOOK_E2E_GIT_TOKEN="+token)

	s := w.up("ida")
	b := loggedIn(t, s)
	writeAsOwner(t, s.Workspace, map[string]string{"unsaved.txt": "written, never saved by hand\n"})

	var warned idleServer
	waitFor(t, "status to warn", 30*time.Second, func() bool {
		warned = w.idleStatus("ida")
		return warned.State == "running" && warned.Warning != ""
	})
	if warned.StopsAt == nil || !strings.Contains(warned.Warning, "spinbook extend") || warned.IdleSeconds == nil || *warned.IdleSeconds < 1 {
		t.Errorf("status in the warning = %+v, want stops_at, idle_seconds and how to postpone", warned)
	}
	if r := w.run("status", "--user", "ida"); !strings.Contains(r.stdout, "warning:") || !strings.Contains(r.stdout, "idle for:") {
		t.Errorf("status (text) in the warning does not say so:\n%s", r)
	}
	// The page a person opens now carries the banner (opening it is
	// activity, and postpones the stop by stop_after).
	if body := b.page(t, "/tree"); !strings.Contains(body, `id="spinbook-banner"`) || !strings.Contains(body, "spinbook extend") {
		t.Errorf("the tree page in the warning has no banner:\n%.600s", body)
	}

	waitFor(t, "the server to stop", 60*time.Second, func() bool { return w.idleStatus("ida").State != "running" })
	st := w.idleStatus("ida")
	if st.State != "stopped" || !strings.Contains(st.Detail, "idle: no activity for 8s") {
		t.Errorf("after the idle stop: state %q, detail %q; want stopped, saying why", st.State, st.Detail)
	}
	if tree := g.Tree(t, "main"); tree["unsaved.txt"] != "written, never saved by hand\n" {
		t.Errorf("the remote main after the idle stop holds %v, want the unsaved file", tree)
	}
	waitFor(t, "no process of the server", 10*time.Second, func() bool { return len(w.processes()) == 0 })
}

// TestIdleBusyKernelAndSilentWebsocket: a cell that computes without
// printing for longer than stop_after keeps the server; once it is done,
// a browser's open but silent kernel websocket does not.
func TestIdleBusyKernelAndSilentWebsocket(t *testing.T) {
	w := newWorldPorts(t, "idle: {stop_after: 4s, warn_before: 2s}\n", idlePorts)
	s := w.up("kim")
	b := loggedIn(t, s)
	kernel := startKernel(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, kernel, b.origin())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	start := time.Now()
	if out := execute(ctx, t, conn, "import time; time.sleep(12)"); out != "" {
		t.Fatalf("the cell printed %q", out)
	}
	if took := time.Since(start); took < 12*time.Second {
		t.Fatalf("the cell took %s", took)
	}
	if st := w.idleStatus("kim"); st.State != "running" {
		t.Fatalf("stopped while a kernel computed for 12s with stop_after 4s: %+v", st)
	}

	// The websocket stays open, silent but for Jupyter's pings.
	go func() {
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	idleFrom := time.Now()
	waitFor(t, "the idle stop with a silent websocket open", 60*time.Second, func() bool { return w.idleStatus("kim").State != "running" })
	if took := time.Since(idleFrom); took < 3*time.Second {
		t.Errorf("stopped %s after the cell ended; stop_after is 4s", took)
	}
	if st := w.idleStatus("kim"); st.State != "stopped" || !strings.Contains(st.Detail, "idle:") {
		t.Errorf("after the stop: %+v", st)
	}
}

// TestIdleExtendActivityAndMaxAge: extend and a person's activity move
// the stop later; max_age stops a server that is busy all along; ls
// --json reports idle time and cost that agree with the clock.
func TestIdleExtendActivityAndMaxAge(t *testing.T) {
	w := newWorldPorts(t, `idle: {stop_after: 10s, warn_before: 7s}
sizes:
  aged: {price_per_hour: 360, idle: {stop_after: 1h, max_age: 15s, warn_before: 5s}}
`, idlePorts)

	t.Run("extend", func(t *testing.T) {
		w.up("eve")
		waitFor(t, "status to warn", 30*time.Second, func() bool { return w.idleStatus("eve").Warning != "" })
		r := w.run("extend", "--user", "eve", "--for", "40s")
		if r.code != 0 || !strings.Contains(r.stdout, "stops at") {
			t.Fatalf("extend: %s", r)
		}
		st := w.idleStatus("eve")
		if st.Warning != "" || st.StopsAt == nil || time.Until(*st.StopsAt) < 30*time.Second {
			t.Errorf("after extend --for 40s: warning %q, stops at %v; want no warning, 40s from now", st.Warning, st.StopsAt)
		}
		if r := w.run("extend", "--user", "eve", "--for", "soon"); r.code != 2 {
			t.Errorf("extend --for soon: %s, want exit 2", r)
		}
	})

	t.Run("activity", func(t *testing.T) {
		s := w.up("abe")
		b := loggedIn(t, s)
		var before idleServer
		waitFor(t, "status to warn", 30*time.Second, func() bool {
			before = w.idleStatus("abe")
			return before.Warning != ""
		})
		b.page(t, "/tree") // a person opens a page
		after := w.idleStatus("abe")
		if after.Warning != "" || after.StopsAt == nil || !after.StopsAt.After(*before.StopsAt) {
			t.Errorf("after opening a page: warning %q, stops at %v (before %v); want the stop postponed", after.Warning, after.StopsAt, before.StopsAt)
		}
		// Jupyter's own polling is not activity: it does not postpone.
		b.do(t, http.MethodGet, "/api/kernels", nil, nil)
		b.do(t, http.MethodGet, "/api/contents", nil, nil)
		if polled := w.idleStatus("abe"); polled.StopsAt == nil || !polled.StopsAt.Equal(*after.StopsAt) {
			t.Errorf("polling moved the stop from %v to %v", after.StopsAt, polled.StopsAt)
		}
	})

	t.Run("max_age stops a busy server", func(t *testing.T) {
		r := w.run("up", "--json", "--user", "max", "--size", "aged")
		if r.code != 0 {
			t.Fatalf("up --size aged: %s", r)
		}
		var s server
		json.Unmarshal([]byte(r.stdout), &s)
		b := loggedIn(t, s)
		kernel := startKernel(t, b)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		conn, _, err := dialKernel(ctx, b, kernel, b.origin())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		// Busy for longer than max_age, printing all along.
		sendCell(ctx, t, conn, "import time\nfor i in range(120):\n    print(i, flush=True); time.sleep(0.5)")
		var ls []idleServer
		waitFor(t, "ls to show the aged server's cost", 20*time.Second, func() bool {
			r := w.run("ls", "--json")
			ls = nil
			if json.Unmarshal([]byte(r.stdout), &ls) != nil {
				return false
			}
			for _, x := range ls {
				if x.User == "max" && x.CostSoFar != nil && *x.CostSoFar > 0 {
					return true
				}
			}
			return false
		})
		for _, x := range ls {
			if x.User != "max" {
				continue
			}
			if x.Size != "aged" || x.CostPerHour == nil || *x.CostPerHour != 360 {
				t.Errorf("ls --json: size %q, cost_per_hour %v; want aged at 360", x.Size, x.CostPerHour)
			}
			// 360/h is 0.1 a second: the cost follows the uptime.
			if want := 0.1 * float64(x.UptimeSeconds); math.Abs(*x.CostSoFar-want) > 0.25 {
				t.Errorf("ls --json: cost_so_far %v after %ds, want about %.2f", *x.CostSoFar, x.UptimeSeconds, want)
			}
			if x.IdleSeconds == nil || *x.IdleSeconds > x.UptimeSeconds+1 {
				t.Errorf("ls --json: idle_seconds %v, uptime %d", x.IdleSeconds, x.UptimeSeconds)
			}
			if x.StopsAt == nil || x.StopReason != "max_age: up for 15s" {
				t.Errorf("ls --json: stops_at %v, reason %q; want the max_age stop", x.StopsAt, x.StopReason)
			} else if d := x.StopsAt.Sub(time.Now().Add(-time.Duration(x.UptimeSeconds) * time.Second)); d < 13*time.Second || d > 17*time.Second {
				t.Errorf("ls --json: stops_at is %s after the start, want 15s", d)
			}
		}
		waitFor(t, "max_age to stop the busy server", 60*time.Second, func() bool { return w.idleStatus("max").State != "running" })
		if st := w.idleStatus("max"); st.State != "stopped" || !strings.Contains(st.Detail, "max_age: up for 15s") {
			t.Errorf("after max_age: state %q, detail %q", st.State, st.Detail)
		}
	})
}

// sendCell sends code to run on the kernel and reads (and drops) what
// comes back until the connection ends, like a browser tab.
func sendCell(ctx context.Context, t *testing.T, conn *websocket.Conn, code string) {
	t.Helper()
	msg := map[string]any{
		"header": map[string]any{
			"msg_id": newID(), "username": "e2e", "session": newID(), "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano),
		},
		"parent_header": map[string]any{}, "metadata": map[string]any{},
		"content": map[string]any{
			"code": code, "silent": false, "store_history": false,
			"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true,
		},
		"buffers": []any{}, "channel": "shell",
	}
	data, _ := json.Marshal(msg)
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("send execute_request: %v", err)
	}
	go func() {
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
}
