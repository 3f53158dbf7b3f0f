package aws

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
)

// TestWorkspaceVolumeOnMoto runs the workspace's own part against moto,
// an independent AWS: real CloudFormation makes the site and the
// workspace stack from the generated templates, and EC2 the volume —
// encrypted gp3 of the configured size, in the zone of the site's private
// subnet; a second up finds the same volume; the final snapshot is of
// it, complete and tagged; the purge deletes the volume and its stack.
// (The instance that attaches and mounts it is the instance stand-in's
// part: the e2e check of a file surviving down and up.)
func TestWorkspaceVolumeOnMoto(t *testing.T) {
	m := awstest.Start(t)
	ctx := t.Context()
	cfg := loadConfig(t, "created-vpc")
	cfg.AWS.Site = "moto"
	sdk := m.Config()
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: fakeELF(t), SDK: &sdk, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	if err := be.SiteUp(ctx, events.add); err != nil {
		t.Fatalf("SiteUp on moto: %v\n%s", err, events.text())
	}
	site, err := be.describe(ctx, SiteStackName("moto"))
	if err != nil || site == nil {
		t.Fatalf("the site stack: %v", err)
	}
	subnet := output(site, exportPrivateSubnet)
	zone, err := be.subnetZone(ctx, subnet)
	if err != nil {
		t.Fatal(err)
	}
	volume := func(id string) *ec2types.Volume {
		t.Helper()
		out, err := be.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			if strings.Contains(err.Error(), "InvalidVolume.NotFound") {
				return nil
			}
			t.Fatal(err)
		}
		return &out.Volumes[0]
	}

	ws, err := be.ensureWorkspace(ctx, site, "alice", 50, output(site, outputStackRole), events.add)
	if err != nil {
		t.Fatalf("ensureWorkspace on moto: %v\n%s", err, events.text())
	}
	// moto 5.2's CloudFormation makes the volume from Size and
	// AvailabilityZone only (VolumeType and Encrypted are checked in the
	// template: TestTemplatesGolden, and by cfn-lint).
	v := volume(ws.volume)
	if v == nil || awssdk.ToInt32(v.Size) != 50 || awssdk.ToString(v.AvailabilityZone) != zone || ws.zone != zone || ws.gib != 50 {
		t.Fatalf("workspace %+v; moto's volume %+v; want 50 GiB in %s (the zone of %s)", ws, v, zone, subnet)
	}

	// A second up with the same size leaves the stack and the volume.
	again, err := be.ensureWorkspace(ctx, site, "alice", 50, output(site, outputStackRole), events.add)
	if err != nil || again.volume != ws.volume {
		t.Fatalf("a second ensureWorkspace = %+v, %v; want volume %s again", again, err, ws.volume)
	}
	// (Growing is tested against the stand-in only: moto 5.2 cannot update
	// an AWS::EC2::Volume, and loses it, where CloudFormation modifies it
	// in place.)

	snap, err := be.Snapshot(ctx, "alice", events.add)
	if err != nil {
		t.Fatalf("Snapshot on moto: %v", err)
	}
	out, err := be.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	if err != nil || len(out.Snapshots) != 1 || awssdk.ToString(out.Snapshots[0].VolumeId) != ws.volume {
		t.Fatalf("moto's snapshot %s: %+v, %v", snap, out, err)
	}
	tags := map[string]string{}
	for _, tg := range out.Snapshots[0].Tags {
		tags[awssdk.ToString(tg.Key)] = awssdk.ToString(tg.Value)
	}
	if tags[tagWorkspaceOf] != "alice" || tags[tagFinal] != "true" || tags[tagSite] != "moto" {
		t.Errorf("the snapshot's tags are %v", tags)
	}
	if again, err := be.Snapshot(ctx, "alice", events.add); err != nil || again != snap {
		t.Errorf("a second Snapshot = %q, %v; want %s again", again, err, snap)
	}

	if err := be.SiteDown(ctx, events.add); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Errorf("SiteDown with a kept workspace = %v", err)
	}
	if err := be.Purge(ctx, "alice", events.add); err != nil {
		t.Fatalf("Purge on moto: %v\n%s", err, events.text())
	}
	if v := volume(ws.volume); v != nil {
		t.Errorf("after the purge moto still has the volume: %+v", v)
	}
	if st, err := be.describe(ctx, WorkspaceStackName("moto", "alice")); err != nil || st != nil {
		t.Errorf("after the purge the workspace stack is %+v, %v", st, err)
	}
}
