package aws

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
)

// TestMotoSitePortal: against moto, site up makes the portal's service,
// file system, mount target, rule and task role from the real template,
// with the config secret it stored named by ARN and version, and a server
// comes up beside it. (moto 5.2.5 checks Secrets Manager and
// CloudFormation requests against the resource "*" only, so a role whose
// statements name ARNs cannot be exercised there with EnforceIAM: the
// portal's role is checked statement by statement in TestPortalTaskRole.)
func TestMotoSitePortal(t *testing.T) {
	m := awstest.Start(t)
	ctx := t.Context()
	cfg := loadConfig(t, "portal")
	cfg.AWS.Site = "moto"
	sdk := m.Config()
	cert, err := acm.NewFromConfig(sdk).RequestCertificate(ctx, &acm.RequestCertificateInput{
		DomainName: awssdk.String("*.notebooks.example.com"), SubjectAlternativeNames: []string{"notebooks.example.com"},
		ValidationMethod: acmtypes.ValidationMethodDns,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.AWS.CertificateARN = awssdk.ToString(cert.CertificateArn)
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: fakeELF(t), SDK: &sdk, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	be.http = albStandIn(t, sdk, "moto", "notebooks.example.com")
	events := &eventLog{}
	if err := be.SiteUp(ctx, events.add); err != nil {
		t.Fatalf("site up: %v\nevents:\n%s", err, events.text())
	}
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
	srv, err := be.Up(ctx, (&world{cfg: cfg}).spec(), events.add)
	if err != nil || !srv.Ready || srv.URL != "https://alice.notebooks.example.com/" {
		t.Errorf("up beside the portal = %+v, %v", srv, err)
	}
	if err := be.Down(ctx, "alice", events.add); err != nil {
		t.Errorf("down: %v", err)
	}
}
