package aws

import (
	cfn "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/iam"

	"github.com/spinbook/spinbook/internal/config"
)

// The roles around an idle stop on aws. The agent deletes its own stack
// when it stops itself; two roles make that safe:
//
//   - each instance stack makes its own task role (what the agent and the
//     kernels get), allowed to delete and describe that one stack and no
//     other, so a user's kernel can end its own server but not another's;
//     a task role shared by the site could not tell the users apart;
//   - the site's StackRole is the CloudFormation service role every
//     instance stack is created with (CreateStack RoleARN), so a delete,
//     from inside or by `spinbook down`, runs with its permissions, not
//     the caller's: the task role needs no right over load balancers,
//     instances or roles.
//
// StackRole may make task roles only under the site's role path and only
// with the site's TaskBoundary as their permissions boundary, so no
// instance stack can make a role that does more than the boundary allows.

// rolePath is the IAM path of the site's task roles and boundary.
func rolePath(site string) string { return "/spinbook/" + site + "/" }

// taskRolesARN matches every task role of site.
func taskRolesARN(site string) string {
	return cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + rolePath(site) + "*")
}

// deleteStackStatement allows deleting and describing the stacks called
// stack (a name, or a pattern with *), whatever their id.
func deleteStackStatement(stack string) map[string]any {
	return statement([]string{"cloudformation:DeleteStack", "cloudformation:DescribeStacks"},
		cfn.Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/"+stack+"/*"))
}

// taskRole is the task role of user's server: the model store, and
// deleting its own stack, within the site's boundary.
func taskRole(cfg *config.Config, user string) *iam.Role {
	site := cfg.AWS.Site
	policies := []iam.Role_Policy{{
		PolicyName:     "delete-own-stack",
		PolicyDocument: policy(deleteStackStatement(InstanceStackName(site, user))),
	}}
	if st := modelStoreStatements(cfg, user); st != nil {
		policies = append(policies, iam.Role_Policy{PolicyName: "model-store", PolicyDocument: policy(st...)})
	}
	return &iam.Role{
		Description:              cfn.String("spinbook " + site + ": what " + user + "'s agent and kernels may do (the model store, deleting this stack)"),
		Path:                     cfn.String(rolePath(site)),
		PermissionsBoundary:      cfn.String(cfn.ImportValue(exportName(site, exportTaskBoundary))),
		AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"),
		Policies:                 policies,
	}
}

// volumeActions are StackRole's rights over the workspace volumes
// (docs/aws.md lists them).
var volumeActions = []string{"ec2:CreateVolume", "ec2:ModifyVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume"}

// stackRole is the site's CloudFormation service role for instance and
// workspace stacks: what they hold, and little more.
func stackRole(site string) *iam.Role {
	regional := func(service string) string {
		return cfn.Sub("arn:${AWS::Partition}:" + service + ":${AWS::Region}:${AWS::AccountId}:*")
	}
	allow := func(actions []string, resources ...string) map[string]any {
		return map[string]any{"Effect": "Allow", "Action": actions, "Resource": resources}
	}
	when := func(st map[string]any, op, key string, value any) map[string]any {
		st["Condition"] = map[string]any{op: map[string]any{key: value}}
		return st
	}
	return &iam.Role{
		Description:              cfn.String("spinbook " + site + ": CloudFormation creates, updates and deletes the servers' stacks with it"),
		AssumeRolePolicyDocument: assumeRole("cloudformation.amazonaws.com"),
		Policies: []iam.Role_Policy{{
			PolicyName: "instance-stacks",
			PolicyDocument: policy(
				// The load balancer, its target group and listeners, or its rule.
				allow([]string{
					"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
					"elasticloadbalancing:ModifyLoadBalancerAttributes",
					"elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
					"elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
					"elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener", "elasticloadbalancing:ModifyListener",
					// A rule of the shared load balancer's listener (aws.shared_load_balancer).
					"elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
					"elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
				}, regional("elasticloadbalancing")),
				allow([]string{"elasticloadbalancing:Describe*", "ec2:Describe*", "ecs:DescribeClusters",
					"ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition"}, "*"),
				// The instance, from its launch template, in the site's
				// security group (RunInstances names the image, too).
				allow([]string{
					"ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplate",
					"ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags", "ec2:DeleteTags",
				}, regional("ec2"), cfn.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}::image/*")),
				// The workspace stacks' volumes: made, grown, attached to
				// the instance (workspace_template.go); deleted only when
				// the create of their stack fails. Purges delete them
				// with the caller's rights.
				allow(volumeActions, regional("ec2")),
				// The ECS service in the site's cluster, and its task
				// definition's tags.
				allow([]string{"ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService", "ecs:DescribeServices",
					"ecs:TagResource", "ecs:UntagResource", "ecs:ListTagsForResource"},
					cfn.Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/${Cluster}/*"),
					cfn.Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/"+InstanceStackName(site, "*")+":*")),
				// The roles the instance stack hands on: the instance
				// profile's to EC2, the execution role and its own task
				// role to ECS.
				when(allow([]string{"iam:PassRole"}, cfn.GetAtt("InstanceRole", "Arn")),
					"StringEquals", "iam:PassedToService", "ec2.amazonaws.com"),
				when(allow([]string{"iam:PassRole"}, cfn.GetAtt("ExecutionRole", "Arn"), taskRolesARN(site)),
					"StringEquals", "iam:PassedToService", "ecs-tasks.amazonaws.com"),
				// Its task role: under the site's path, never without the
				// boundary.
				when(allow([]string{"iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
					"iam:AttachRolePolicy", "iam:DetachRolePolicy"}, taskRolesARN(site)),
					"StringEquals", "iam:PermissionsBoundary", cfn.Ref("TaskBoundary")),
				allow([]string{"iam:DeleteRole", "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies",
					"iam:ListAttachedRolePolicies", "iam:UpdateRole", "iam:UpdateRoleDescription",
					"iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole"}, taskRolesARN(site)),
				// The first load balancer, service or spot instance of an
				// account makes the service's linked role
				// (AWSServiceRoleForEC2Spot for spot sizes).
				when(allow([]string{"iam:CreateServiceLinkedRole"},
					cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*")),
					"StringEquals", "iam:AWSServiceName", []string{"elasticloadbalancing.amazonaws.com", "ecs.amazonaws.com", "spot.amazonaws.com"}),
				// The ECS-optimized AMI's public parameter (ImageId).
				allow([]string{"ssm:GetParameters", "ssm:GetParameter"},
					cfn.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/ecs/optimized-ami/*"),
					cfn.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/aws/service/ecs/optimized-ami/*")),
			),
		}},
	}
}
