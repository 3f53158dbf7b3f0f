package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	cfn "github.com/awslabs/goformation/v7/cloudformation"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/cost"
)

// workspace is a user's workspace volume, as its stack reports it.
type workspace struct {
	stack  *types.Stack
	volume string
	zone   string
	gib    int
}

// workspaceOf returns user's workspace; nil when there is none.
func (a *AWS) workspaceOf(ctx context.Context, user string) (*workspace, error) {
	st, err := a.describe(ctx, WorkspaceStackName(a.site(), user))
	if err != nil || st == nil {
		return nil, err
	}
	return workspaceFrom(st), nil
}

// workspaceFrom reads a workspace stack's outputs.
func workspaceFrom(st *types.Stack) *workspace {
	ws := &workspace{stack: st, volume: output(st, exportWorkspaceVolume), zone: output(st, exportWorkspaceZone)}
	ws.gib, _ = strconv.Atoi(output(st, outputWorkspaceGiB))
	return ws
}

// tagMachineDigest is on instance stacks: machineDigest of their template.
const tagMachineDigest = "spinbook.machine-digest"

// machineDigest sums up what an update of t cannot change without
// replacing the instance: the launch template and the instance.
func machineDigest(t *cfn.Template) (string, error) {
	rendered, err := TemplateJSON(t) // intrinsics resolved
	if err != nil {
		return "", err
	}
	var v struct{ Resources map[string]any }
	if err := json.Unmarshal(rendered, &v); err != nil {
		return "", fmt.Errorf("render template: %w", err)
	}
	raw, err := json.Marshal([]any{v.Resources["LaunchTemplate"], v.Resources["Instance"]})
	if err != nil {
		return "", fmt.Errorf("render template: %w", err)
	}
	return digestOf(string(raw)), nil
}

// volume describes ws for Server.Volume, with its monthly cost.
func (a *AWS) volume(ws *workspace) *backend.Volume {
	if ws == nil || ws.volume == "" {
		return nil
	}
	price := a.cfg.AWS.WorkspacePricePerGiB
	if price == 0 {
		price = cost.AWSGP3PerGiBMonth
	}
	monthly := cost.Monthly(price, ws.gib)
	return &backend.Volume{ID: ws.volume, GiB: ws.gib, Type: "gp3", Zone: ws.zone, MonthlyCost: &monthly}
}

// describeVolume is the workspace line of status: the volume, its size,
// zone and monthly cost.
func describeVolume(v *backend.Volume) string {
	s := fmt.Sprintf("%s (EBS volume %s, %d GiB %s in %s", workspacePath, v.ID, v.GiB, v.Type, v.Zone)
	if v.MonthlyCost != nil {
		s += fmt.Sprintf(", about $%.2f a month", *v.MonthlyCost)
	}
	return s + "; kept across down and up, deleted by `down --purge`)"
}

// ensureWorkspace makes user's workspace volume, or grows it to gib,
// before the instance stack that attaches it. The volume goes in the zone
// of the site's private subnet (site is the site stack), and stays there.
func (a *AWS) ensureWorkspace(ctx context.Context, site *types.Stack, user string, gib int, role string, progress func(backend.Event)) (*workspace, error) {
	name := WorkspaceStackName(a.site(), user)
	ws, err := a.workspaceOf(ctx, user)
	if err != nil {
		return nil, err
	}
	subnet := output(site, exportPrivateSubnet)
	if subnet == "" {
		return nil, fmt.Errorf("the site stack %s has no %s output: run `spinbook site up` to bring it up to date first", SiteStackName(a.site()), exportPrivateSubnet)
	}
	zone, err := a.subnetZone(ctx, subnet)
	if err != nil {
		return nil, err
	}
	if ws != nil && ws.volume != "" {
		if ws.zone != zone {
			return nil, fmt.Errorf("the workspace volume %s of %s is in zone %s, but the site's private subnet %s is in %s, where no instance can attach it: put a subnet of %s first in aws.private_subnets and run `spinbook site up`, or delete the workspace (`spinbook down --purge --snapshot`) to start afresh",
				ws.volume, user, ws.zone, subnet, zone, ws.zone)
		}
		switch {
		case gib < ws.gib:
			progress(backend.Event{Message: fmt.Sprintf("the workspace volume stays at %d GiB: EBS volumes do not shrink (the config asks for %d GiB)", ws.gib, gib)})
			gib = ws.gib
		case gib > ws.gib:
			progress(backend.Event{Message: fmt.Sprintf("growing the workspace volume %s from %d to %d GiB; its filesystem grows when the server's instance next starts (now if it is down; else at the next up after a down)", ws.volume, ws.gib, gib)})
		}
	}
	body, err := templateBody(WorkspaceTemplate(a.cfg, user, gib))
	if err != nil {
		return nil, err
	}
	tags := baseTags(a.site())
	tags[tagUser] = user
	tags[tagRole] = "workspace"
	tags[tagDeployDigest] = digestOf(body + "\n" + zone)
	if ws != nil && ws.volume != "" && tag(ws.stack, tagDeployDigest) == tags[tagDeployDigest] &&
		(ws.stack.StackStatus == types.StackStatusCreateComplete || ws.stack.StackStatus == types.StackStatusUpdateComplete) {
		return ws, nil
	}
	d := deployment{name: name, body: body, params: map[string]string{paramWorkspaceZone: zone}, tags: tags, roleARN: role}
	if ws != nil {
		d.keep = []string{paramWorkspaceZone} // a volume cannot move
	}
	if _, err := a.deploy(ctx, d, progress); err != nil {
		return nil, err
	}
	ws, err = a.workspaceOf(ctx, user)
	if err != nil {
		return nil, err
	}
	if ws == nil || ws.volume == "" {
		return nil, fmt.Errorf("the workspace stack %s reports no %s", name, exportWorkspaceVolume)
	}
	return ws, nil
}

// subnetZone is the availability zone of subnet.
func (a *AWS) subnetZone(ctx context.Context, subnet string) (string, error) {
	out, err := a.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnet}})
	if err != nil {
		return "", fmt.Errorf("describe subnet %s: %w", subnet, err)
	}
	if len(out.Subnets) != 1 || awssdk.ToString(out.Subnets[0].AvailabilityZone) == "" {
		return "", fmt.Errorf("describe subnet %s: no such subnet; check aws.private_subnets and run `spinbook site up`", subnet)
	}
	return awssdk.ToString(out.Subnets[0].AvailabilityZone), nil
}

// checkServerGone refuses to snapshot or purge the workspace of a server
// that is still there.
func (a *AWS) checkServerGone(ctx context.Context, user string) error {
	st, err := a.describe(ctx, InstanceStackName(a.site(), user))
	if err != nil {
		return err
	}
	if st != nil {
		return fmt.Errorf("%s's server (stack %s) is still there, with the workspace attached: run `spinbook down` first", user, InstanceStackName(a.site(), user))
	}
	return nil
}

// Snapshot implements backend.Snapshotter: an EBS snapshot of user's
// workspace volume, tagged with the user, once it is complete. A final
// snapshot an earlier call began is waited for, not taken again.
func (a *AWS) Snapshot(ctx context.Context, user string, progress func(backend.Event)) (string, error) {
	if err := a.checkCredentials(ctx); err != nil {
		return "", err
	}
	if err := a.checkServerGone(ctx, user); err != nil {
		return "", err
	}
	ws, err := a.workspaceOf(ctx, user)
	if err != nil {
		return "", err
	}
	if ws == nil || ws.volume == "" {
		return "", fmt.Errorf("%s has no workspace volume to snapshot", user)
	}
	snap, err := a.finalSnapshot(ctx, ws.volume)
	if err != nil {
		return "", err
	}
	if snap == "" {
		out, err := a.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
			VolumeId:    &ws.volume,
			Description: awssdk.String(fmt.Sprintf("spinbook: the last copy of %s's workspace in site %s, taken by down --purge --snapshot", user, a.site())),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{
				{Key: awssdk.String("Name"), Value: awssdk.String(WorkspaceStackName(a.site(), user) + "-final")},
				{Key: awssdk.String(tagManaged), Value: awssdk.String(managedBy)},
				{Key: awssdk.String(tagSite), Value: awssdk.String(a.site())},
				{Key: awssdk.String(tagWorkspaceOf), Value: awssdk.String(user)},
				{Key: awssdk.String(tagFinal), Value: awssdk.String("true")},
			}}},
		})
		if err != nil {
			return "", fmt.Errorf("snapshot volume %s: %w", ws.volume, err)
		}
		snap = awssdk.ToString(out.SnapshotId)
	}
	progress(backend.Event{Message: fmt.Sprintf("taking snapshot %s of the workspace volume %s", snap, ws.volume)})
	for n := 0; ; n++ {
		out, err := a.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
		if err != nil {
			return "", fmt.Errorf("describe snapshot %s: %w", snap, err)
		}
		if len(out.Snapshots) != 1 {
			return "", fmt.Errorf("describe snapshot %s: it is gone", snap)
		}
		switch s := out.Snapshots[0]; s.State {
		case ec2types.SnapshotStateCompleted:
			return snap, nil
		case ec2types.SnapshotStateError, ec2types.SnapshotStateRecoverable:
			return "", fmt.Errorf("snapshot %s of volume %s failed (%s): %s; the workspace is kept", snap, ws.volume, s.State, awssdk.ToString(s.StateMessage))
		}
		if err := a.sleep(ctx, n); err != nil {
			return "", fmt.Errorf("wait for snapshot %s (the workspace is kept; run `spinbook down --purge --snapshot` again to go on waiting): %w", snap, err)
		}
	}
}

// tagFinal marks the snapshot `down --purge --snapshot` takes.
const tagFinal = "spinbook.final"

// finalSnapshot is the final snapshot of volume an earlier call began;
// "" when there is none.
func (a *AWS) finalSnapshot(ctx context.Context, volume string) (string, error) {
	out, err := a.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"},
		Filters: []ec2types.Filter{
			{Name: awssdk.String("volume-id"), Values: []string{volume}},
			{Name: awssdk.String("tag:" + tagFinal), Values: []string{"true"}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("find a final snapshot of volume %s: %w", volume, err)
	}
	for _, s := range out.Snapshots {
		if s.State != ec2types.SnapshotStateError {
			return awssdk.ToString(s.SnapshotId), nil
		}
	}
	return "", nil
}

// Purge implements backend.Purger: it deletes user's workspace volume,
// then its stack. The command line saved the work first (or was told
// --force); the server must be down, and CloudFormation would refuse the
// stack's delete while the instance stack imports it anyway.
func (a *AWS) Purge(ctx context.Context, user string, progress func(backend.Event)) error {
	if err := a.checkCredentials(ctx); err != nil {
		return err
	}
	if err := a.checkServerGone(ctx, user); err != nil {
		return err
	}
	ws, err := a.workspaceOf(ctx, user)
	if err != nil || ws == nil {
		return err
	}
	// The volume outlives its stack (RetainExceptOnCreate): delete it by
	// its id first, so that a purge cut short leaves the stack, which
	// still names it, for the next one.
	if ws.volume != "" {
		if err := a.deleteVolume(ctx, ws.volume, progress); err != nil {
			return err
		}
	}
	return a.deleteStack(ctx, WorkspaceStackName(a.site(), user), progress)
}

// detachPolls is how many times deleteVolume tries a volume still
// attached: the instance of a server just taken down may still be
// shutting down, which detaches it (a.poll apart: 3 minutes on AWS).
const detachPolls = 40

// deleteVolume deletes volume; one that is gone already is no error.
func (a *AWS) deleteVolume(ctx context.Context, volume string, progress func(backend.Event)) error {
	progress(backend.Event{Message: fmt.Sprintf("deleting the workspace volume %s", volume)})
	for n := 0; ; n++ {
		_, err := a.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &volume})
		var ae smithy.APIError
		switch {
		case err == nil, errors.As(err, &ae) && ae.ErrorCode() == "InvalidVolume.NotFound":
			return nil
		case errors.As(err, &ae) && ae.ErrorCode() == "VolumeInUse" && n < detachPolls:
			if n == 0 {
				progress(backend.Event{Message: fmt.Sprintf("the volume %s is still attached; waiting for its instance to finish shutting down", volume)})
			}
			if err := a.sleep(ctx, n); err != nil {
				return fmt.Errorf("delete volume %s: %w; the workspace is kept", volume, err)
			}
		case errors.As(err, &ae) && ae.ErrorCode() == "VolumeInUse":
			return fmt.Errorf("delete volume %s: it stays attached (see `aws ec2 describe-volumes --volume-ids %s`); the workspace is kept: try `spinbook down --purge` again later: %w", volume, volume, err)
		default:
			return fmt.Errorf("delete volume %s: %w", volume, err)
		}
	}
}

// Volumes implements backend.VolumeLister: every workspace volume of the
// site, by user, whether its server runs or not.
func (a *AWS) Volumes(ctx context.Context) (map[string]backend.Volume, error) {
	if err := a.checkCredentials(ctx); err != nil {
		return nil, err
	}
	_, workspaces, err := a.stacks(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]backend.Volume{}
	for user, ws := range workspaces {
		if v := a.volume(ws); v != nil {
			out[user] = *v
		}
	}
	return out, nil
}
