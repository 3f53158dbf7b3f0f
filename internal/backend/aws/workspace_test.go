package aws

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
)

// newWorldUp is newWorld with the site up and alice's server up.
func newWorldUp(t *testing.T) *standInWorld {
	t.Helper()
	w := newStandInWorld(t)
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	if _, err := w.be.Up(t.Context(), w.spec(), w.events.add); err != nil {
		t.Fatalf("Up: %v\n%s", err, w.events.text())
	}
	return w
}

// workspaceSize is the size of the volume in the workspace stack's
// current template.
func workspaceSize(t *testing.T, w *standInWorld, user string) int {
	t.Helper()
	var tpl struct {
		Resources map[string]struct {
			Properties struct{ Size int }
		}
	}
	if err := json.Unmarshal([]byte(w.si.Template(WorkspaceStackName("test", user))), &tpl); err != nil {
		t.Fatalf("workspace template: %v", err)
	}
	return tpl.Resources["Volume"].Properties.Size
}

// TestWorkspaceOutlivesTheServer: up makes the workspace stack first (with
// the site's StackRole, in the private subnet's zone); down leaves it;
// status then shows it and what it costs; the next up attaches the same
// volume without touching its stack; purge refuses while the server is
// there, then deletes the volume and its stack, and is safe to repeat.
func TestWorkspaceOutlivesTheServer(t *testing.T) {
	w := newStandInWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	srv, err := w.be.Up(ctx, w.spec(), w.events.add)
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, w.events.text())
	}
	ws := WorkspaceStackName("test", "alice")
	status, params, tags, ok := w.si.Stack(ws)
	if !ok || status != "CREATE_COMPLETE" || params[paramWorkspaceZone] != "us-east-1b" || tags[tagRole] != "workspace" || tags[tagUser] != "alice" {
		t.Fatalf("workspace stack %s: %s, params %v, tags %v", ws, status, params, tags)
	}
	if got := w.si.RoleARN(ws); got != standInStackRole {
		t.Errorf("the workspace stack was made with role %q, want the site's StackRole", got)
	}
	if got := workspaceSize(t, w, "alice"); got != 50 {
		t.Errorf("the volume is %d GiB, want aws.workspace_size's default, 50", got)
	}
	want := backend.Volume{ID: standInVolume, GiB: 50, Type: "gp3", Zone: "us-east-1b"}
	checkVolume := func(what string, v *backend.Volume) {
		t.Helper()
		if v == nil || v.ID != want.ID || v.GiB != want.GiB || v.Zone != want.Zone || v.Type != want.Type || v.MonthlyCost == nil || *v.MonthlyCost != 4 {
			t.Errorf("%s: volume %+v, want %+v costing $4.00 a month (50 GiB at $0.08)", what, v, want)
		}
	}
	checkVolume("Up", srv.Volume)
	if !strings.Contains(srv.Workspace, standInVolume) || !strings.Contains(srv.Workspace, "us-east-1b") || !strings.Contains(srv.Workspace, "$4.00 a month") {
		t.Errorf("Up's workspace = %q, want the volume, zone and monthly cost", srv.Workspace)
	}
	list, err := w.be.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	checkVolume("List", list[0].Volume)

	// While the server is there, neither a snapshot nor a purge.
	if _, err := w.be.Snapshot(ctx, "alice", w.events.add); err == nil || !strings.Contains(err.Error(), "run `spinbook down` first") {
		t.Errorf("Snapshot of a running server's workspace = %v", err)
	}
	if err := w.be.Purge(ctx, "alice", w.events.add); err == nil || !strings.Contains(err.Error(), "run `spinbook down` first") {
		t.Errorf("Purge of a running server's workspace = %v", err)
	}
	if !w.si.HasVolume(standInVolume) {
		t.Fatal("a refused purge deleted the volume")
	}

	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _ := w.si.Stack(ws); status != "CREATE_COMPLETE" || !w.si.HasVolume(standInVolume) {
		t.Fatalf("after Down the workspace stack is %s, volume there: %v", status, w.si.HasVolume(standInVolume))
	}
	st, err := w.be.Status(ctx, "alice")
	if err != nil || st.State != backend.Absent {
		t.Fatalf("Status after Down = %+v, %v", st, err)
	}
	checkVolume("Status after Down", st.Volume)
	if !strings.Contains(st.Detail, "kept") || !strings.Contains(st.Detail, "down --purge") {
		t.Errorf("Status after Down says %q, want that the workspace is kept and how to delete it", st.Detail)
	}
	vols, err := w.be.Volumes(ctx)
	if err != nil || vols["alice"].ID != standInVolume {
		t.Errorf("Volumes after Down = %v, %v", vols, err)
	}

	// The next up finds the same volume and leaves its stack alone.
	creates := w.si.CallCount("cloudformation:CreateStack")
	updates := w.si.CallCount("cloudformation:UpdateStack")
	srv, err = w.be.Up(ctx, w.spec(), w.events.add)
	if err != nil {
		t.Fatal(err)
	}
	checkVolume("the second Up", srv.Volume)
	if w.si.CallCount("cloudformation:CreateStack") != creates+1 || w.si.CallCount("cloudformation:UpdateStack") != updates {
		t.Errorf("the second up made or changed more than the instance stack: %v", w.si.Calls)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}

	// A volume that stays attached (an instance that does not finish
	// shutting down) stays, after a while, and so does its stack, which
	// names it for the next purge.
	w.si.SetAttached(standInVolume, true)
	if err := w.be.Purge(ctx, "alice", w.events.add); err == nil || !strings.Contains(err.Error(), "stays attached") {
		t.Errorf("Purge of an attached volume = %v", err)
	}
	if n := w.si.CallCount("ec2:DeleteVolume"); n != detachPolls+1 {
		t.Errorf("Purge tried DeleteVolume %d times, want %d: it waits for the instance's shutdown to detach it", n, detachPolls+1)
	}
	if _, _, _, ok := w.si.Stack(ws); !ok || !w.si.HasVolume(standInVolume) {
		t.Fatal("a failed purge deleted the stack or the volume")
	}
	w.si.SetAttached(standInVolume, false)
	if err := w.be.Purge(ctx, "alice", w.events.add); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if status, _, _, _ := w.si.Stack(ws); status != "DELETE_COMPLETE" || w.si.HasVolume(standInVolume) {
		t.Errorf("after Purge the workspace stack is %s, volume there: %v", status, w.si.HasVolume(standInVolume))
	}
	if err := w.be.Purge(ctx, "alice", w.events.add); err != nil {
		t.Errorf("second Purge: %v", err)
	}
	if st, err := w.be.Status(ctx, "alice"); err != nil || st.State != backend.Absent || st.Volume != nil {
		t.Errorf("Status after Purge = %+v, %v", st, err)
	}
	if len(w.si.Snapshots()) != 0 {
		t.Errorf("a purge without --snapshot took %v", w.si.Snapshots())
	}
}

// TestWorkspaceFinalSnapshot: the snapshot before a purge is of the
// workspace volume, tagged with its user and site, complete before the
// volume goes; a second call (a purge cut short after it) takes no other.
func TestWorkspaceFinalSnapshot(t *testing.T) {
	w := newStandInWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	if _, err := w.be.Snapshot(ctx, "alice", w.events.add); err == nil || !strings.Contains(err.Error(), "no workspace volume") {
		t.Errorf("Snapshot without a workspace = %v", err)
	}
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatal(err)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}
	id, err := w.be.Snapshot(ctx, "alice", w.events.add)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	snaps := w.si.Snapshots()
	if len(snaps) != 1 || snaps[0].ID != id || snaps[0].Volume != standInVolume {
		t.Fatalf("Snapshot = %q; the stand-in has %+v", id, snaps)
	}
	for k, v := range map[string]string{tagWorkspaceOf: "alice", tagSite: "test", tagManaged: managedBy, tagFinal: "true"} {
		if snaps[0].Tags[k] != v {
			t.Errorf("snapshot tag %s = %q, want %q (tags %v)", k, snaps[0].Tags[k], v, snaps[0].Tags)
		}
	}
	again, err := w.be.Snapshot(ctx, "alice", w.events.add)
	if err != nil || again != id || len(w.si.Snapshots()) != 1 {
		t.Errorf("a second Snapshot = %q, %v, with %d snapshots; want the first one again", again, err, len(w.si.Snapshots()))
	}
	if err := w.be.Purge(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}
	if w.si.HasVolume(standInVolume) {
		t.Error("the volume outlived the purge")
	}
}

// TestWorkspaceGrowsNeverShrinks: a size with more storage grows the
// volume (an update of its stack), one with less leaves it, saying why.
func TestWorkspaceGrowsNeverShrinks(t *testing.T) {
	w := newStandInWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	gpu := w.cfg.Sizes["gpu"]
	gpu.StorageBytes = 200 << 30
	w.cfg.Sizes["gpu"] = gpu
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatal(err)
	}
	if got := workspaceSize(t, w, "alice"); got != 200 {
		t.Fatalf("the volume is %d GiB, want the size's storage, 200", got)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}

	gpu.StorageBytes = 300 << 30
	w.cfg.Sizes["gpu"] = gpu
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil {
		t.Fatal(err)
	}
	status, _, _, _ := w.si.Stack(WorkspaceStackName("test", "alice"))
	if got := workspaceSize(t, w, "alice"); got != 300 || status != "UPDATE_COMPLETE" {
		t.Errorf("after a larger size the volume is %d GiB (stack %s), want 300 by an update", got, status)
	}
	if !strings.Contains(w.events.text(), "growing the workspace volume "+standInVolume+" from 200 to 300 GiB") {
		t.Errorf("no word of the growth:\n%s", w.events.text())
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}

	gpu.StorageBytes = 10 << 30
	w.cfg.Sizes["gpu"] = gpu
	srv, err := w.be.Up(ctx, w.spec(), w.events.add)
	if err != nil {
		t.Fatal(err)
	}
	if got := workspaceSize(t, w, "alice"); got != 300 || srv.Volume == nil || srv.Volume.GiB != 300 {
		t.Errorf("after a smaller size the volume is %d GiB (Up says %+v), want it kept at 300", got, srv.Volume)
	}
	if !strings.Contains(w.events.text(), "stays at 300 GiB: EBS volumes do not shrink") {
		t.Errorf("no word of why the volume stays:\n%s", w.events.text())
	}
}

// TestWorkspaceZoneMustMatch: a workspace volume in another zone than the
// site's private subnet (the subnet changed under it) cannot be attached:
// up says so before it makes an instance.
func TestWorkspaceZoneMustMatch(t *testing.T) {
	w := newWorldUp(t)
	ctx := t.Context()
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}
	w.si.AddSubnet(standInSubnet, "us-east-1c")
	_, err := w.be.Up(ctx, w.spec(), w.events.add)
	if err == nil || !strings.Contains(err.Error(), "is in zone us-east-1b") || !strings.Contains(err.Error(), "is in us-east-1c") {
		t.Fatalf("Up with the volume in another zone = %v", err)
	}
	if _, _, _, ok := w.si.Stack(InstanceStackName("test", "alice")); ok {
		if status, _, _, _ := w.si.Stack(InstanceStackName("test", "alice")); status != "DELETE_COMPLETE" {
			t.Errorf("Up made an instance stack (%s) that could not attach the workspace", status)
		}
	}
	// A subnet that is not there is an error that says where to look.
	w.si.Outputs[exportPrivateSubnet] = "subnet-0ffffffffffffffff"
	if _, err := w.be.Up(ctx, w.spec(), w.events.add); err == nil || !strings.Contains(err.Error(), "subnet-0ffffffffffffffff") {
		t.Errorf("Up with an unknown subnet = %v", err)
	}
}

// TestUpWillNotReplaceTheInstance: a running server asked for another
// instance type (or a boot script of another spinbook) would be replaced
// by an update, which the attached workspace forbids: up says to go down
// first, and changes nothing.
func TestUpWillNotReplaceTheInstance(t *testing.T) {
	w := newWorldUp(t)
	ctx := t.Context()
	name := InstanceStackName("test", "alice")
	before := w.si.Template(name)
	spec := w.spec()
	spec.Size = "small"
	_, err := w.be.Up(ctx, spec, w.events.add)
	if err == nil || !strings.Contains(err.Error(), "run `spinbook down`, then `spinbook up` again; the workspace is kept") {
		t.Fatalf("Up with another size on a running server = %v", err)
	}
	if w.si.Template(name) != before || w.si.CallCount("cloudformation:UpdateStack") != 0 {
		t.Errorf("the refused up changed the stack: %v", w.si.Calls)
	}
	if err := w.be.Down(ctx, "alice", w.events.add); err != nil {
		t.Fatal(err)
	}
	if srv, err := w.be.Up(ctx, spec, w.events.add); err != nil || srv.Volume == nil || srv.Volume.ID != standInVolume {
		t.Errorf("Up with the new size after down = %+v, %v; want the same workspace", srv, err)
	}
}
