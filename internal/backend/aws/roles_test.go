package aws

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// statements are the policy statements of a role's inline policies, or of
// a managed policy, in a rendered template.
func statements(t *testing.T, props map[string]any) []map[string]any {
	t.Helper()
	var docs []any
	if d, ok := props["PolicyDocument"]; ok {
		docs = append(docs, d)
	}
	if ps, ok := props["Policies"].([]any); ok {
		for _, p := range ps {
			docs = append(docs, p.(map[string]any)["PolicyDocument"])
		}
	}
	var out []map[string]any
	for _, d := range docs {
		for _, st := range d.(map[string]any)["Statement"].([]any) {
			out = append(out, st.(map[string]any))
		}
	}
	return out
}

// list returns a statement's Action or Resource as strings: a plain
// string as it is, an Fn::Sub as its template, anything else as JSON.
func list(v any) []string {
	var items []any
	if l, ok := v.([]any); ok {
		items = l
	} else {
		items = []any{v}
	}
	var out []string
	for _, x := range items {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if s, ok := x["Fn::Sub"].(string); ok {
				out = append(out, s)
				continue
			}
			b, _ := json.Marshal(x)
			out = append(out, string(b))
		}
	}
	return out
}

// TestTaskRoleDeletesOnlyItsOwnStack: the task role of alice's server
// (what her agent and kernels get) may delete and describe her stack,
// named in full, and no other; it is hers alone, bounded by the site.
func TestTaskRoleDeletesOnlyItsOwnStack(t *testing.T) {
	all := rendered(t)
	for name, data := range all {
		if !strings.HasPrefix(name, "instance-") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			site := loadConfig(t, strings.TrimPrefix(name, "instance-")).AWS.Site
			tpl := parse(t, data)
			td := tpl.Resources["TaskDefinition"].Properties
			if fmt.Sprint(td["TaskRoleArn"]) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"TaskRole", "Arn"}}) {
				t.Errorf("the task definition's role is %v, not the stack's own TaskRole", td["TaskRoleArn"])
			}
			role := tpl.Resources["TaskRole"]
			if role.Type != "AWS::IAM::Role" {
				t.Fatalf("TaskRole is %q", role.Type)
			}
			if got := fmt.Sprint(role.Properties["PermissionsBoundary"]); got != fmt.Sprint(map[string]any{"Fn::ImportValue": exportName(site, exportTaskBoundary)}) {
				t.Errorf("the task role's boundary is %s, not the site's", got)
			}
			own := "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/spinbook-" + site + "-alice/*"
			deletes := 0
			for _, st := range statements(t, role.Properties) {
				resources := list(st["Resource"])
				if slices.Contains(resources, "*") {
					t.Errorf("a statement of the task role allows every resource: %v", st)
				}
				for _, action := range list(st["Action"]) {
					switch {
					case action == "cloudformation:DeleteStack" || action == "cloudformation:DescribeStacks":
						deletes++
						if !slices.Equal(resources, []string{own}) {
							t.Errorf("%s is allowed on %q, want only %q", action, resources, own)
						}
					case strings.HasPrefix(action, "s3:"):
					default:
						t.Errorf("the task role may %s", action)
					}
				}
			}
			if deletes != 2 {
				t.Errorf("the task role may not delete and describe its own stack (%d of the 2 actions)", deletes)
			}
			// An idle stop deletes the server, never its workspace.
			workspace := "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/" + WorkspaceStackName(site, "alice") + "/0a1b2c3d"
			if glob(own, workspace) {
				t.Errorf("the task role may delete the workspace stack %s", workspace)
			}
		})
	}
}

// TestStackRole: the site has a CloudFormation service role that may
// make task roles only within the site's path and boundary, passes roles
// only to the services that take them, and grants every resource only to
// reads and task definitions (which take no other).
func TestStackRole(t *testing.T) {
	for name, data := range rendered(t) {
		if !strings.HasPrefix(name, "site-") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			site := loadConfig(t, strings.TrimPrefix(name, "site-")).AWS.Site
			tpl := parse(t, data)
			role := tpl.Resources["StackRole"]
			if role.Type != "AWS::IAM::Role" {
				t.Fatalf("StackRole is %q", role.Type)
			}
			trust := fmt.Sprint(role.Properties["AssumeRolePolicyDocument"])
			if !strings.Contains(trust, "cloudformation.amazonaws.com") || strings.Contains(trust, "ec2.") || strings.Contains(trust, "ecs-tasks") {
				t.Errorf("StackRole trusts %s, want CloudFormation only", trust)
			}
			if fmt.Sprint(tpl.Outputs[outputStackRole].Value) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"StackRole", "Arn"}}) {
				t.Errorf("no %s output of the role", outputStackRole)
			}
			taskRoles := "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/spinbook/" + site + "/*"
			anyResource := []string{"elasticloadbalancing:Describe*", "ec2:Describe*", "ecs:DescribeClusters",
				"ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition"}
			created := false
			for _, st := range statements(t, role.Properties) {
				actions, resources := list(st["Action"]), list(st["Resource"])
				cond := fmt.Sprint(st["Condition"])
				for _, a := range actions {
					if a == "*" || strings.HasSuffix(a, ":*") {
						t.Errorf("StackRole may do %s", a)
					}
					if slices.Contains(resources, "*") && !slices.Contains(anyResource, a) {
						t.Errorf("StackRole may %s on every resource", a)
					}
					switch a {
					case "iam:PassRole":
						if !strings.Contains(cond, "iam:PassedToService") {
							t.Errorf("StackRole passes %v to any service", resources)
						}
					case "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy":
						created = created || a == "iam:CreateRole"
						if !slices.Equal(resources, []string{taskRoles}) || cond != fmt.Sprint(map[string]any{"StringEquals": map[string]any{"iam:PermissionsBoundary": map[string]any{"Ref": "TaskBoundary"}}}) {
							t.Errorf("StackRole may %s on %v with condition %s, want only %s with the site's boundary", a, resources, cond, taskRoles)
						}
					case "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "cloudformation:DeleteStack":
						t.Errorf("StackRole may %s", a)
					}
				}
			}
			if !created {
				t.Error("StackRole may not create the servers' task roles")
			}
			// The workspace stacks' volumes: made, grown, attached.
			var all []string
			for _, st := range statements(t, role.Properties) {
				all = append(all, list(st["Action"])...)
			}
			for _, a := range volumeActions {
				if !slices.Contains(all, a) {
					t.Errorf("StackRole may not %s, which the workspace stacks need", a)
				}
			}
			// The boundary allows deleting this site's instance stacks only.
			for _, st := range statements(t, tpl.Resources["TaskBoundary"].Properties) {
				if slices.Contains(list(st["Action"]), "cloudformation:DeleteStack") &&
					!slices.Equal(list(st["Resource"]), []string{"arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/spinbook-" + site + "-*/*"}) {
					t.Errorf("the boundary allows deleting %v", st["Resource"])
				}
			}
		})
	}
}

// operatorWorkspaceActions are what `down --purge [--snapshot]` does with
// the caller's credentials (workspace.go: CreateSnapshot, DeleteVolume;
// its Describe* calls are in the docs' Network statement).
var operatorWorkspaceActions = []string{"ec2:CreateSnapshot", "ec2:DeleteVolume"}

// TestWorkspaceIAMDocs: docs/aws.md names every right StackRole has over
// the workspace volumes, and its operator policy's "Workspaces" statement
// is exactly what a purge and a snapshot call with the operator's own
// credentials.
func TestWorkspaceIAMDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "aws.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range volumeActions {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("docs/aws.md does not name StackRole's %s", a)
		}
	}
	_, rest, ok := strings.Cut(string(doc), `{"Sid": "Workspaces"`)
	line, _, _ := strings.Cut(rest, "]")
	want := `"Action": ["` + strings.Join(operatorWorkspaceActions, `", "`) + `"`
	if !ok || !strings.Contains(line, want) {
		t.Errorf("docs/aws.md's Workspaces statement is %q, want %s", line, want)
	}
}
