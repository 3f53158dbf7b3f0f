package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestIdleStopWaitsForUnsavedWork: a local server whose idle stop comes
// while its remote refuses the push (the token was revoked) does not stop:
// status, ls and the notebook banner say why, the work stays committed in
// the workspace, and once the remote takes the token again the agent's
// next try pushes the work and the server stops.
func TestIdleStopWaitsForUnsavedWork(t *testing.T) {
	needJupyter(t)
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	cfg := fmt.Sprintf("repo:\n  url: %s\n  branch: main\n  token: ${env:SPINBOOK_E2E_GIT_TOKEN}\nidle: {stop_after: 6s, warn_before: 3s}\n", g.URL())
	w := newWorldPorts(t, cfg, idlePorts)
	w.env = append(w.env, "SPINBOOK_E2E_GIT_TOKEN="+token)

	s := w.up("una")
	gittest.WriteFiles(t, s.Workspace, map[string]string{"unsaved.txt": "written, never saved by hand\n"})
	g.SetToken("revoked-" + newID())

	var st idleServer
	waitFor(t, "status to say the stop is blocked", 60*time.Second, func() bool {
		st = w.idleStatus("una")
		return st.StopBlocked != "" || st.State != "running"
	})
	if st.State != "running" || !strings.HasPrefix(st.StopBlocked, "push failed: ") {
		t.Fatalf("with the token revoked at the idle stop: state %q, stop_blocked %q, detail %q; want running, push failed", st.State, st.StopBlocked, st.Detail)
	}
	if strings.Contains(st.StopBlocked, token) {
		t.Error("stop_blocked holds the repo token")
	}
	if r := w.run("status", "--user", "una"); !strings.Contains(r.stdout, "stop blocked: push failed: ") {
		t.Errorf("status (text) does not say the stop is blocked:\n%s", r)
	}
	r := w.run("ls", "--json")
	var ls []idleServer
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || len(ls) != 1 || !strings.HasPrefix(ls[0].StopBlocked, "push failed: ") {
		t.Errorf("ls --json = %v (%v), want una with stop_blocked\n%s", ls, err, r)
	}
	if r := w.run("ls"); !strings.Contains(r.stdout, "running (stop blocked)") || !strings.Contains(r.stdout, "una: stop blocked: push failed: ") {
		t.Errorf("ls (text) does not say the stop is blocked:\n%s", r)
	}
	if tree := gittest.TreeOf(t, s.Workspace, "HEAD"); tree["unsaved.txt"] != "written, never saved by hand\n" {
		t.Errorf("the workspace's HEAD holds %v, want the work committed", tree)
	}
	if got := g.Tree(t, "main")["unsaved.txt"]; got != "" {
		t.Fatalf("the remote took the work with the token revoked: %q", got)
	}

	// A person who comes back reads why in the banner (the visit is
	// activity: the stop is off, and comes again after stop_after).
	b := loggedIn(t, s)
	if body := b.page(t, "/tree"); !strings.Contains(body, "should have stopped") || !strings.Contains(body, "could not be saved: push failed") {
		t.Errorf("the tree page of a server whose stop is blocked has no banner saying so:\n%.800s", body)
	}
	waitFor(t, "the stop to be blocked again", 60*time.Second, func() bool { return w.idleStatus("una").StopBlocked != "" })

	g.SetToken(token) // the remote takes the token again
	waitFor(t, "the retry to save and stop the server", 120*time.Second, func() bool { return w.idleStatus("una").State != "running" })
	if st := w.idleStatus("una"); st.State != "stopped" || !strings.Contains(st.Detail, "idle: no activity for 6s") {
		t.Errorf("after the retry: state %q, detail %q; want stopped by the idle rule", st.State, st.Detail)
	}
	if got := g.Tree(t, "main")["unsaved.txt"]; got != "written, never saved by hand\n" {
		t.Errorf("the remote main after the retry holds unsaved.txt = %q, want the work", got)
	}
	waitFor(t, "no process of the server", 10*time.Second, func() bool { return len(w.processes()) == 0 })
}
