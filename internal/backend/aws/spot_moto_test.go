package aws

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// TestSpotReclaimKeepsTheWorkspace: on moto with the instance stand-in and
// the real agent, a spot server whose instance AWS takes back shows as
// stopped with the reason, and the next up replaces its stack and
// reattaches the same workspace volume: a file that is in no commit is
// there again. The reclaim is played by ending the task as the end of its
// instance would, after the record the agent leaves; the agent's own
// answer to the notice (save at once, record, stop) is tested against
// amazon-ec2-metadata-mock in internal/agent (TestRunStopsOnSpotNotice,
// TestSpotNoticeMidSave).
func TestSpotReclaimKeepsTheWorkspace(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	spotSize(w.cfg, config.SpotOn)
	var rec atomic.Pointer[backend.StopRecord]
	w.be.stops = func(context.Context, string) (*backend.StopRecord, error) { return rec.Load(), nil }
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatalf("Up: %v\n%s", err, w.events.text())
	}
	if st := w.stack(t, InstanceStackName("test", "alice")); st == nil || tag(st, tagMarket) != "spot" {
		t.Fatalf("alice's stack is not on spot: %+v", st)
	}
	task := w.in.WaitTask(t, "alice", time.Minute)
	if err := os.WriteFile(filepath.Join(task.Workspace, "scratch.bin"), []byte("not in git\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	task.Stop()
	taken := time.Now().UTC().Add(2 * time.Minute).Truncate(time.Second)
	rec.Store(&backend.StopRecord{User: "alice", Reason: backend.StopSpotReclaimed, NoticeAt: time.Now().UTC(),
		TakenAt: taken, Action: "terminate"})
	srv, err := w.be.Status(ctx, "alice")
	if err != nil || srv.State != backend.Stopped || !strings.Contains(srv.Detail, "spot capacity reclaimed at "+taken.Format("2006-01-02 15:04:05 UTC")) {
		t.Errorf("Status after the reclaim = %s, %q, %v; want stopped, reclaimed", srv.State, srv.Detail, err)
	}

	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatalf("Up after the reclaim: %v\n%s", err, w.events.text())
	}
	again := w.in.WaitTask(t, "alice", time.Minute)
	if again == task {
		t.Fatal("the next up did not start a new task")
	}
	if got, err := os.ReadFile(filepath.Join(again.Workspace, "scratch.bin")); err != nil || string(got) != "not in git\n" {
		t.Errorf("after the reclaim and up the workspace's file = %q, %v; want it kept on the volume", got, err)
	}
	if !strings.Contains(w.events.text(), "replacing the stack") {
		t.Errorf("up did not say it replaces the reclaimed stack:\n%s", w.events.text())
	}
}
