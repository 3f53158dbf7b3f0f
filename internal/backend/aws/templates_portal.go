package aws

import (
	"fmt"
	"strconv"
	"strings"

	cfn "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/ecs"
	"github.com/awslabs/goformation/v7/cloudformation/efs"
	elbv2 "github.com/awslabs/goformation/v7/cloudformation/elasticloadbalancingv2"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/cloudformation/tags"

	"github.com/spinbook/spinbook/internal/config"
)

// The portal's service (aws.portal) in the site stack: where it listens
// in its task, where its state (the SQLite file and its signing key) is,
// and what it is told by environment. The portal reads its config from PortalConfigEnv, the
// text of the operator's config file, stored by `site up` as the secret
// spinbook/SITE/_portal/config and injected by ECS.
const (
	portalPort     = 8700
	portalStateDir = "/var/lib/spinbook-portal"
	portalUID      = "1000"
	// PortalConfigEnv holds the portal's config (YAML); its listen
	// address and URL come in the variables below, overriding
	// portal.listen and portal.url; its state dir is --state-dir.
	PortalConfigEnv = "SPINBOOK_CONFIG_YAML"
	PortalListenEnv = "SPINBOOK_PORTAL_LISTEN"
	PortalURLEnv    = "SPINBOOK_PORTAL_URL"
	// PortalTrustedProxiesEnv lists (comma-separated CIDRs) the load
	// balancer's network, whose X-Forwarded-For the portal believes:
	// portal.trusted_proxies, else the agents' (trustedProxies).
	PortalTrustedProxiesEnv = "SPINBOOK_PORTAL_TRUSTED_PROXIES"
	// portalRulePriority is the portal's rule on the shared listener:
	// the last priority, which no user's rule takes (maxUserPriority).
	portalRulePriority = maxRulePriority
	secretPortalConfig = "_portal/config" // "_": no user name has one
)

// Parameters of the site stack with the portal: its config secret, by
// ARN and version (never the value).
const (
	paramPortalConfigARN     = "PortalConfigSecretArn"
	paramPortalConfigVersion = "PortalConfigVersionId"
	outputPortalURL          = "PortalURL"
)

// PortalConfigSecret is the name of the secret holding the portal's config.
func PortalConfigSecret(site string) string { return "spinbook/" + site + "/" + secretPortalConfig }

// addPortal adds the portal's service to the site template t: a Fargate
// service (one task, never two: they would share one SQLite file) in the
// private subnet, behind the shared load balancer's listener at DOMAIN,
// with its state on an encrypted EFS file system (an access point as uid
// 1000, IAM-authorized, TLS in transit), and a task role holding the
// rights `up`, `down`, `status`, `ls`, `logs` and `save` need for the
// site's servers.
func addPortal(t *cfn.Template, cfg *config.Config, vpc, privateSubnet, listener string) {
	a := cfg.AWS
	site := a.Site
	tagged := func(name string) []tags.Tag {
		return []tags.Tag{{Key: "Name", Value: SiteStackName(site) + "-" + name}}
	}
	t.Parameters[paramPortalConfigARN] = cfn.Parameter{Type: "String",
		Description: cfn.String("the ARN of the secret holding the portal's config (stored by spinbook site up; never the config itself)")}
	t.Parameters[paramPortalConfigVersion] = cfn.Parameter{Type: "String",
		Description: cfn.String("the version of the portal's config secret the service runs")}

	t.Resources["PortalSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: fmt.Sprintf("spinbook %s: the portal, reachable from the load balancer only", site),
		VpcId:            cfn.String(vpc),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{{
			IpProtocol: "tcp", FromPort: cfn.Int(portalPort), ToPort: cfn.Int(portalPort),
			SourceSecurityGroupId: cfn.GetAttPtr("AlbSecurityGroup", "GroupId"),
			Description:           cfn.String("the portal's port, from the load balancer"),
		}},
		Tags: tagged("portal"),
	}
	t.Resources["PortalStorageSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: fmt.Sprintf("spinbook %s: the portal file system, reachable from the portal only", site),
		VpcId:            cfn.String(vpc),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{{
			IpProtocol: "tcp", FromPort: cfn.Int(2049), ToPort: cfn.Int(2049),
			SourceSecurityGroupId: cfn.GetAttPtr("PortalSecurityGroup", "GroupId"),
			Description:           cfn.String("NFS, from the portal's task"),
		}},
		Tags: tagged("portal-storage"),
	}
	// The state outlives the site stack: sessions, API tokens and the
	// audit log are kept (docs/aws.md says how to delete them).
	t.Resources["PortalFileSystem"] = &efs.FileSystem{
		Encrypted:                            cfn.Bool(true),
		PerformanceMode:                      cfn.String("generalPurpose"),
		ThroughputMode:                       cfn.String("elastic"),
		BackupPolicy:                         &efs.FileSystem_BackupPolicy{Status: "ENABLED"},
		FileSystemTags:                       []efs.FileSystem_ElasticFileSystemTag{{Key: "Name", Value: SiteStackName(site) + "-portal"}},
		AWSCloudFormationDeletionPolicy:      policies.DeletionPolicy("Retain"),
		AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy("Retain"),
	}
	t.Resources["PortalMountTarget"] = &efs.MountTarget{
		FileSystemId:   cfn.Ref("PortalFileSystem"),
		SubnetId:       privateSubnet,
		SecurityGroups: []string{cfn.GetAtt("PortalStorageSecurityGroup", "GroupId")},
	}
	t.Resources["PortalAccessPoint"] = &efs.AccessPoint{
		FileSystemId: cfn.Ref("PortalFileSystem"),
		PosixUser:    &efs.AccessPoint_PosixUser{Uid: portalUID, Gid: portalUID},
		RootDirectory: &efs.AccessPoint_RootDirectory{
			Path:         cfn.String("/portal"),
			CreationInfo: &efs.AccessPoint_CreationInfo{OwnerUid: portalUID, OwnerGid: portalUID, Permissions: "0700"},
		},
		AccessPointTags: []efs.AccessPoint_AccessPointTag{{Key: cfn.String("Name"), Value: cfn.String(SiteStackName(site) + "-portal")}},
	}
	t.Resources["PortalTaskRole"] = portalTaskRole(site)

	url := urlScheme(a) + "://" + a.Domain
	container := ecs.TaskDefinition_ContainerDefinition{
		Name:       "portal",
		Image:      a.Portal.Image,
		EntryPoint: []string{"/usr/local/bin/spinbook"},
		Command:    []string{"portal", "--state-dir", portalStateDir},
		Essential:  cfn.Bool(true),
		User:       cfn.String(portalUID + ":" + portalUID),
		PortMappings: []ecs.TaskDefinition_PortMapping{
			{ContainerPort: cfn.Int(portalPort), Protocol: cfn.String("tcp")},
		},
		Environment: []ecs.TaskDefinition_KeyValuePair{
			{Name: cfn.String(PortalListenEnv), Value: cfn.String("0.0.0.0:" + strconv.Itoa(portalPort))},
			{Name: cfn.String(PortalURLEnv), Value: cfn.String(url)},
			{Name: cfn.String(PortalTrustedProxiesEnv), Value: cfn.String(strings.Join(portalTrustedProxies(cfg), ","))},
		},
		Secrets: []ecs.TaskDefinition_Secret{{
			Name:      PortalConfigEnv,
			ValueFrom: cfn.Sub("${" + paramPortalConfigARN + "}:::${" + paramPortalConfigVersion + "}"),
		}},
		MountPoints: []ecs.TaskDefinition_MountPoint{{SourceVolume: cfn.String("state"), ContainerPath: cfn.String(portalStateDir)}},
		LogConfiguration: &ecs.TaskDefinition_LogConfiguration{LogDriver: "awslogs", Options: map[string]string{
			"awslogs-group":         cfn.Ref("LogGroup"),
			"awslogs-region":        cfn.Ref("AWS::Region"),
			"awslogs-stream-prefix": "portal",
		}},
		StopTimeout: cfn.Int(30),
	}
	t.Resources["PortalTaskDefinition"] = &ecs.TaskDefinition{
		Family:                  cfn.String(SiteStackName(site) + "-portal"),
		NetworkMode:             cfn.String("awsvpc"),
		RequiresCompatibilities: []string{"FARGATE"},
		Cpu:                     cfn.String(strconv.Itoa(a.Portal.TaskCPU())),
		Memory:                  cfn.String(strconv.Itoa(a.Portal.TaskMemory())),
		RuntimePlatform:         &ecs.TaskDefinition_RuntimePlatform{OperatingSystemFamily: cfn.String("LINUX"), CpuArchitecture: cfn.String("X86_64")},
		ExecutionRoleArn:        cfn.GetAttPtr("ExecutionRole", "Arn"),
		TaskRoleArn:             cfn.GetAttPtr("PortalTaskRole", "Arn"),
		ContainerDefinitions:    []ecs.TaskDefinition_ContainerDefinition{container},
		Volumes: []ecs.TaskDefinition_Volume{{
			Name: cfn.String("state"),
			EFSVolumeConfiguration: &ecs.TaskDefinition_EFSVolumeConfiguration{
				FilesystemId:      cfn.Ref("PortalFileSystem"),
				TransitEncryption: cfn.String("ENABLED"),
				AuthorizationConfig: &ecs.TaskDefinition_AuthorizationConfig{
					AccessPointId: cfn.RefPtr("PortalAccessPoint"),
					IAM:           cfn.String("ENABLED"),
				},
			},
		}},
	}
	t.Resources["PortalTargetGroup"] = &elbv2.TargetGroup{
		VpcId:                      cfn.String(vpc),
		TargetType:                 cfn.String("ip"),
		Protocol:                   cfn.String("HTTP"),
		Port:                       cfn.Int(portalPort),
		HealthCheckEnabled:         cfn.Bool(true),
		HealthCheckPath:            cfn.String("/"),
		HealthCheckIntervalSeconds: cfn.Int(30),
		HealthyThresholdCount:      cfn.Int(2),
		UnhealthyThresholdCount:    cfn.Int(5),
		// The front page, or its redirect to sign-in.
		Matcher: &elbv2.TargetGroup_Matcher{HttpCode: cfn.String("200-399")},
		TargetGroupAttributes: []elbv2.TargetGroup_TargetGroupAttribute{
			{Key: cfn.String("deregistration_delay.timeout_seconds"), Value: cfn.String("30")},
		},
		Tags: tagged("portal"),
	}
	t.Resources["PortalListenerRule"] = &elbv2.ListenerRule{
		ListenerArn: cfn.RefPtr(listener),
		Priority:    portalRulePriority,
		Conditions: []elbv2.ListenerRule_RuleCondition{{
			Field:            cfn.String("host-header"),
			HostHeaderConfig: &elbv2.ListenerRule_HostHeaderConfig{Values: []string{a.Domain}},
		}},
		Actions: []elbv2.ListenerRule_Action{{Type: "forward", TargetGroupArn: cfn.RefPtr("PortalTargetGroup")}},
	}
	t.Resources["PortalService"] = &ecs.Service{
		Cluster:         cfn.RefPtr("Cluster"),
		TaskDefinition:  cfn.RefPtr("PortalTaskDefinition"),
		LaunchType:      cfn.String("FARGATE"),
		PlatformVersion: cfn.String("LATEST"),
		DesiredCount:    cfn.Int(1),
		NetworkConfiguration: &ecs.Service_NetworkConfiguration{AwsvpcConfiguration: &ecs.Service_AwsVpcConfiguration{
			AssignPublicIp: cfn.String("DISABLED"),
			Subnets:        []string{privateSubnet},
			SecurityGroups: []string{cfn.GetAtt("PortalSecurityGroup", "GroupId")},
		}},
		LoadBalancers: []ecs.Service_LoadBalancer{{
			ContainerName: cfn.String("portal"), ContainerPort: cfn.Int(portalPort), TargetGroupArn: cfn.RefPtr("PortalTargetGroup"),
		}},
		HealthCheckGracePeriodSeconds: cfn.Int(120),
		// One task at a time: two would write one SQLite file at once.
		DeploymentConfiguration: &ecs.Service_DeploymentConfiguration{
			MinimumHealthyPercent:    cfn.Int(0),
			MaximumPercent:           cfn.Int(100),
			DeploymentCircuitBreaker: &ecs.Service_DeploymentCircuitBreaker{Enable: true, Rollback: true},
		},
		PropagateTags:              cfn.String("SERVICE"),
		EnableECSManagedTags:       cfn.Bool(true),
		Tags:                       tagged("portal"),
		AWSCloudFormationDependsOn: []string{"PortalListenerRule", "PortalMountTarget"},
	}
	t.Outputs[outputPortalURL] = cfn.Output{Value: url + "/", Description: cfn.String("the team portal")}
}

// portalTaskRole is what the portal may do: what the operator's `up`,
// `down`, `status`, `ls`, `logs` and `save` need for the site's servers,
// and no more; `site up` and `site down` stay the operator's.
func portalTaskRole(site string) *iam.Role {
	arn := func(service, resource string) string {
		return cfn.Sub("arn:${AWS::Partition}:" + service + ":${AWS::Region}:${AWS::AccountId}:" + resource)
	}
	allow := func(sid string, actions []string, resources ...string) map[string]any {
		return map[string]any{"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
	}
	passStackRole := allow("PassStackRole", []string{"iam:PassRole"}, cfn.GetAtt("StackRole", "Arn"))
	passStackRole["Condition"] = map[string]any{"StringEquals": map[string]any{"iam:PassedToService": "cloudformation.amazonaws.com"}}
	// The ARNs spelled out from the ids (Ref): the same as GetAtt Arn on
	// AWS, and what moto resolves too.
	mount := allow("State", []string{"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"},
		arn("elasticfilesystem", "file-system/${PortalFileSystem}"))
	mount["Condition"] = map[string]any{"StringEquals": map[string]any{
		"elasticfilesystem:AccessPointArn": arn("elasticfilesystem", "access-point/${PortalAccessPoint}")}}
	return &iam.Role{
		Description:              cfn.String("spinbook " + site + ": the portal, which runs up and down for people"),
		Path:                     cfn.String(rolePath(site)),
		AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"),
		Policies: []iam.Role_Policy{{
			PolicyName: "run-servers",
			PolicyDocument: policy(
				allow("ServerStacks", []string{"cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack",
					"cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents"},
					arn("cloudformation", "stack/"+InstanceStackName(site, "*")+"/*")),
				allow("SiteStack", []string{"cloudformation:DescribeStacks"}, arn("cloudformation", "stack/"+SiteStackName(site)+"/*")),
				allow("ListStacks", []string{"cloudformation:DescribeStacks"}, "*"),
				passStackRole,
				allow("ServerSecrets", []string{"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret",
					"secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret", "secretsmanager:RestoreSecret", "secretsmanager:TagResource"},
					arn("secretsmanager", "secret:spinbook/"+site+"/*")),
				allow("AgentBinary", []string{"s3:GetObject", "s3:PutObject"}, cfn.Sub("${AgentBucket.Arn}/agent/*")),
				allow("AgentBucket", []string{"s3:ListBucket"}, cfn.GetAtt("AgentBucket", "Arn")),
				allow("Logs", []string{"logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"}, cfn.GetAtt("LogGroup", "Arn")),
				mount,
			),
		}},
	}
}

// portalTrustedProxies are the proxies the portal's task believes:
// portal.trusted_proxies when set, else those the agents believe, a created
// VPC's network included (the load balancer's addresses come from it).
func portalTrustedProxies(cfg *config.Config) []string {
	if cfg.Portal.TrustedProxies != nil {
		return cfg.Portal.TrustedProxies
	}
	return trustedProxies(cfg)
}
