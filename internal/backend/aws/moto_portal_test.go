package aws

import (
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// TestMotoSitePortal: against moto, site up makes the portal's service,
// file system, mount target, rule and task role from the real template,
// with the config secret it stored named by ARN and version, and a server
// comes up beside it. (moto 5.2.5 checks Secrets Manager and
// CloudFormation requests against the resource "*" only, so a role whose
// statements name ARNs cannot be exercised there with EnforceIAM: the
// portal's role is checked statement by statement in TestPortalTaskRole.)
func TestMotoSitePortal(t *testing.T) {
	ctx := t.Context()
	be, sdk, events := motoSiteUp(t, "portal")
	site, err := be.describe(ctx, SiteStackName("moto"))
	if err != nil || output(site, outputPortalURL) != "https://notebooks.example.com/" {
		t.Fatalf("the site stack's portal URL is %q (%v)", output(site, outputPortalURL), err)
	}
	params := map[string]string{}
	for _, p := range site.Parameters {
		params[awssdk.ToString(p.ParameterKey)] = awssdk.ToString(p.ParameterValue)
	}
	if !strings.Contains(params[paramPortalConfigARN], ":secret:spinbook/moto/_portal/config") || params[paramPortalConfigVersion] == "" {
		t.Errorf("the site stack names the portal's config as %v", params)
	}
	cf := cloudformation.NewFromConfig(sdk)
	physical := map[string]string{}
	// (PortalAccessPoint too, but moto reports no physical id for it.)
	for _, logical := range []string{"PortalService", "PortalFileSystem", "PortalMountTarget", "PortalListenerRule", "PortalTaskRole"} {
		res, err := cf.DescribeStackResource(ctx, &cloudformation.DescribeStackResourceInput{
			StackName: awssdk.String(SiteStackName("moto")), LogicalResourceId: awssdk.String(logical),
		})
		if err != nil || awssdk.ToString(res.StackResourceDetail.PhysicalResourceId) == "" {
			t.Errorf("moto made no %s: %v", logical, err)
			continue
		}
		physical[logical] = awssdk.ToString(res.StackResourceDetail.PhysicalResourceId)
	}
	names, err := iam.NewFromConfig(sdk).ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: awssdk.String(physical["PortalTaskRole"])})
	if err != nil || len(names.PolicyNames) != 1 || names.PolicyNames[0] != "run-servers" {
		t.Errorf("the portal's role holds %v (%v), want run-servers", names, err)
	}
	srv, err := be.Up(ctx, (&world{cfg: be.cfg}).spec(), events.add)
	if err != nil || !srv.Ready || srv.URL != "https://alice.notebooks.example.com/" {
		t.Errorf("up beside the portal = %+v, %v", srv, err)
	}
	if err := be.Down(ctx, "alice", events.add); err != nil {
		t.Errorf("down: %v", err)
	}
}
