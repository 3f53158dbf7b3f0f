package aws

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestPortalTaskRole: the portal may run this site's servers' stacks
// (passing StackRole, to CloudFormation only), their secrets, the agent
// binary, the logs and its own file system, and nothing else: not the
// site stack, not another site's stacks, no role of its own making.
func TestPortalTaskRole(t *testing.T) {
	tpl := parse(t, rendered(t)["site-portal"])
	role := tpl.Resources["PortalTaskRole"]
	if trust := fmt.Sprint(role.Properties["AssumeRolePolicyDocument"]); !strings.Contains(trust, "ecs-tasks.amazonaws.com") || strings.Contains(trust, "ec2.") {
		t.Errorf("the portal's role trusts %s, want ECS tasks only", trust)
	}
	stacks := "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/spinbook-analytics-*/*"
	seen := map[string]bool{}
	for _, st := range statements(t, role.Properties) {
		actions, resources := list(st["Action"]), list(st["Resource"])
		for _, a := range actions {
			seen[a] = true
			if a == "*" || strings.HasSuffix(a, ":*") || strings.HasPrefix(a, "iam:") && a != "iam:PassRole" {
				t.Errorf("the portal may %s", a)
			}
			switch {
			case slices.Contains([]string{"cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack"}, a):
				if !slices.Equal(resources, []string{stacks}) {
					t.Errorf("the portal may %s on %v, want the site's server stacks only (%s)", a, resources, stacks)
				}
			case a == "iam:PassRole":
				if !slices.Equal(resources, []string{`{"Fn::GetAtt":["StackRole","Arn"]}`}) ||
					!strings.Contains(fmt.Sprint(st["Condition"]), "iam:PassedToService:cloudformation.amazonaws.com") {
					t.Errorf("the portal passes %v with condition %v, want StackRole to CloudFormation only", resources, st["Condition"])
				}
			case strings.HasPrefix(a, "secretsmanager:"):
				if !slices.Equal(resources, []string{"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:spinbook/analytics/*"}) {
					t.Errorf("the portal may %s on %v", a, resources)
				}
			case slices.Contains(resources, "*") && a != "cloudformation:DescribeStacks":
				t.Errorf("the portal may %s on every resource", a)
			}
		}
	}
	for _, a := range []string{"cloudformation:CreateStack", "cloudformation:DeleteStack", "iam:PassRole", "secretsmanager:PutSecretValue",
		"s3:PutObject", "logs:FilterLogEvents", "elasticfilesystem:ClientWrite"} {
		if !seen[a] {
			t.Errorf("the portal may not %s, which running servers needs", a)
		}
	}
}

// TestPortalService: one task, never two (one SQLite file); its state on
// an encrypted, retained EFS file system mounted with IAM and TLS through
// its access point; reachable from the load balancer only, at DOMAIN; and
// its config a secret named by ARN and version, never a value.
func TestPortalService(t *testing.T) {
	data := rendered(t)["site-portal"]
	tpl := parse(t, data)
	svc := tpl.Resources["PortalService"].Properties
	dc := svc["DeploymentConfiguration"].(map[string]any)
	if svc["DesiredCount"] != 1.0 || dc["MaximumPercent"] != 100.0 || dc["MinimumHealthyPercent"] != 0.0 {
		t.Errorf("the portal runs %v tasks, deployments %v: two tasks could share the SQLite file", svc["DesiredCount"], dc)
	}
	if net := fmt.Sprint(svc["NetworkConfiguration"]); !strings.Contains(net, "AssignPublicIp:DISABLED") {
		t.Errorf("the portal's task gets a public address: %s", net)
	}
	var raw struct {
		Resources map[string]struct{ DeletionPolicy, UpdateReplacePolicy string }
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	fs := tpl.Resources["PortalFileSystem"].Properties
	if fs["Encrypted"] != true || raw.Resources["PortalFileSystem"].DeletionPolicy != "Retain" || raw.Resources["PortalFileSystem"].UpdateReplacePolicy != "Retain" {
		t.Errorf("the portal's file system: encrypted %v, deletion %q, replace %q; want encrypted and retained",
			fs["Encrypted"], raw.Resources["PortalFileSystem"].DeletionPolicy, raw.Resources["PortalFileSystem"].UpdateReplacePolicy)
	}
	td := tpl.Resources["PortalTaskDefinition"].Properties
	if vol := fmt.Sprint(td["Volumes"]); !strings.Contains(vol, "TransitEncryption:ENABLED") || !strings.Contains(vol, "IAM:ENABLED") || !strings.Contains(vol, "PortalAccessPoint") {
		t.Errorf("the portal's volume is %s, want EFS through its access point with IAM and TLS", vol)
	}
	c := td["ContainerDefinitions"].([]any)[0].(map[string]any)
	secrets := c["Secrets"].([]any)
	if len(secrets) != 1 || secrets[0].(map[string]any)["Name"] != PortalConfigEnv ||
		fmt.Sprint(secrets[0].(map[string]any)["ValueFrom"]) != "map[Fn::Sub:${PortalConfigSecretArn}:::${PortalConfigVersionId}]" {
		t.Errorf("the portal's secrets are %v, want only %s, by ARN and version", secrets, PortalConfigEnv)
	}
	sg := fmt.Sprint(tpl.Resources["PortalSecurityGroup"].Properties["SecurityGroupIngress"])
	if !strings.Contains(sg, "AlbSecurityGroup") || strings.Contains(sg, "CidrIp") || !strings.Contains(sg, "FromPort:8700") {
		t.Errorf("the portal admits %s, want the load balancers' group on 8700 only", sg)
	}
	rule := fmt.Sprint(tpl.Resources["PortalListenerRule"].Properties)
	if !strings.Contains(rule, "Values:[notebooks.example.com]") || !strings.Contains(rule, fmt.Sprintf("Priority:%d", portalRulePriority)) {
		t.Errorf("the portal's rule is %s, want host notebooks.example.com at priority %d", rule, portalRulePriority)
	}
	if preferredPriority("zzz") > maxUserPriority {
		t.Error("a user's priority can be the portal's")
	}
}

// TestFlowSitePortalConfig: site up stores the config the portal runs
// with as a secret, names it in the site stack by ARN and version only (no
// secret of the config in any CloudFormation request), adds no version
// when it is unchanged, and site down deletes it.
func TestFlowSitePortalConfig(t *testing.T) {
	w := newStandInWorldOf(t, "portal", "alice")
	w.si.Outputs[exportListener] = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/spinbook-test/50dc6c495c0c9188/f2f7dc8efc522ab2"
	w.si.Outputs[outputPortalURL] = "https://notebooks.example.com/"
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatalf("SiteUp: %v\nevents:\n%s", err, w.events.text())
	}
	text, err := os.ReadFile(w.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := w.si.Secret(PortalConfigSecret("test"))
	if !ok || stored != string(text) || !strings.Contains(stored, "CANARY-warehouse-password-5c1e") {
		t.Fatalf("the portal's config secret is %q, %v; want the config file's text", stored, ok)
	}
	_, params, _, _ := w.si.Stack("spinbook-test")
	first := params[paramPortalConfigVersion]
	if !strings.HasPrefix(params[paramPortalConfigARN], "arn:aws:secretsmanager:") || first == "" {
		t.Errorf("the site stack does not name the portal's config secret: %v", params)
	}
	for _, req := range w.si.CFNRequests {
		for _, c := range canaries {
			if strings.Contains(req, c) {
				t.Errorf("a CloudFormation request holds the secret %q", c)
			}
		}
	}
	if !strings.Contains(w.events.text(), "https://notebooks.example.com/") {
		t.Errorf("site up does not say where the portal is:\n%s", w.events.text())
	}
	puts := w.si.CallCount("secretsmanager:PutSecretValue") + w.si.CallCount("secretsmanager:CreateSecret")
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatalf("second SiteUp: %v", err)
	}
	if _, params, _, _ := w.si.Stack("spinbook-test"); params[paramPortalConfigVersion] != first {
		t.Errorf("an unchanged config made a new version %s (was %s): the portal would restart for nothing", params[paramPortalConfigVersion], first)
	}
	if n := w.si.CallCount("secretsmanager:PutSecretValue") + w.si.CallCount("secretsmanager:CreateSecret"); n != puts {
		t.Errorf("an unchanged config was stored again (%d stores, was %d)", n, puts)
	}
	if err := w.be.SiteDown(ctx, w.events.add); err != nil {
		t.Fatalf("SiteDown: %v", err)
	}
	if _, ok := w.si.Secret(PortalConfigSecret("test")); ok {
		t.Error("site down left the portal's config secret")
	}
}
