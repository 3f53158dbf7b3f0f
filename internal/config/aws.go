package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// AWS configures backend aws: a persistent CloudFormation stack per site
// (`spinbook site up`: network, security groups, an ECS cluster with no
// instances, roles, a bucket for the agent binary) and a stack per user
// (`spinbook up`: a load balancer, one EC2 instance, an ECS service
// running the image given by the top-level key image). Credentials come
// from the AWS SDK's default chain: AWS_* variables, ~/.aws (profile), SSO,
// or an instance role.
type AWS struct {
	// Region is the AWS region the stacks live in, such as us-east-1.
	// Default: the SDK's (AWS_REGION, or the profile's region).
	Region string `yaml:"region"`

	// Profile is the profile in ~/.aws/config to use. Default: the SDK's
	// (AWS_PROFILE, else "default").
	Profile string `yaml:"profile"`

	// VPCID is an existing VPC to put everything in (vpc-...). Then
	// public_subnets and private_subnets are required, the private ones
	// with a route to a NAT gateway, and access.trusted_proxies must list
	// the VPC's CIDR. Default: the site stack creates a VPC with public
	// and private subnets in two zones and a NAT gateway with an Elastic
	// IP, the fixed address the warehouse allowlists.
	VPCID string `yaml:"vpc_id"`

	// PublicSubnets are the subnets (subnet-..., in two zones at least) the
	// load balancers go in; with vpc_id only.
	PublicSubnets []string `yaml:"public_subnets"`

	// PrivateSubnets are the subnets the instances go in (the first one);
	// with vpc_id only.
	PrivateSubnets []string `yaml:"private_subnets"`

	// CertificateARN is the ACM certificate (in region) the load balancers
	// serve HTTPS with; plain HTTP is then only redirected. Required with
	// backend aws, unless access.insecure_http: true accepts a load
	// balancer that serves plain HTTP (every command then says so loudly).
	CertificateARN string `yaml:"certificate_arn"`

	// KeyName is an EC2 key pair put on the instances, for SSH from inside
	// the VPC. Default: none.
	KeyName string `yaml:"key_name"`

	// Site names this deployment; the site stack is spinbook-SITE and a
	// user's stack spinbook-SITE-USER. Lowercase letters and digits, at
	// most 16. Default: main.
	Site string `yaml:"site"`

	// SharedLoadBalancer puts one load balancer in the site stack, shared
	// by every server: each user's stack adds only a target group and a
	// listener rule for the host USER.DOMAIN (aws.domain), instead of a
	// load balancer of its own (about $16 a month and 2-3 minutes of every
	// `up`). Needs domain, and a certificate_arn covering *.DOMAIN (a
	// wildcard). Point a wildcard DNS record *.DOMAIN at the load balancer
	// (`spinbook site up` prints its name). Default: false, a load
	// balancer per server.
	SharedLoadBalancer bool `yaml:"shared_load_balancer"`

	// Domain is the DNS name under which servers get their names with
	// shared_load_balancer: alice's server is https://alice.DOMAIN/, and
	// the portal (aws.portal) https://DOMAIN/. At most 99 characters (a
	// load balancer rule matches names of up to 128). Example:
	// notebooks.example.com.
	Domain string `yaml:"domain"`

	// WorkspaceSize is the size of each user's workspace, an encrypted gp3
	// EBS volume kept across `down` and `up` (deleted by `down --purge`),
	// when the server's size gives none (sizes.NAME.storage): whole GiB,
	// such as 50GiB, from 1GiB to 16TiB. A larger size on a later `up`
	// grows the volume; EBS volumes never shrink. Default: 50GiB.
	WorkspaceSize string `yaml:"workspace_size"`

	// WorkspacePrice is what a GiB of workspace volume costs a month, in
	// USD, for the estimate `status` and `ls` show (such as 0.0952 in
	// eu-central-1). Default: gp3's published price in us-east-1 (package
	// cost).
	WorkspacePrice string `yaml:"workspace_price_per_gib_month"`

	// WorkspaceGiB and WorkspacePricePerGiB are WorkspaceSize and
	// WorkspacePrice parsed (0: the default price); filled by Validate.
	WorkspaceGiB         int     `yaml:"-"`
	WorkspacePricePerGiB float64 `yaml:"-"`

	// Portal runs the team portal (`spinbook portal`) as an ECS service of
	// the site stack, behind the shared load balancer at https://DOMAIN/
	// (see docs/aws.md, "The portal on AWS").
	Portal AWSPortal `yaml:"portal"`
}

// AWSPortal configures the portal's ECS service in the site stack.
type AWSPortal struct {
	// Enabled adds the portal service (Fargate), its task role and its
	// state file system (EFS) to the site stack. Needs
	// shared_load_balancer. Default: false.
	Enabled bool `yaml:"enabled"`

	// Image is an image whose /usr/local/bin/spinbook is this spinbook
	// (docs/aws.md shows a three-line Dockerfile). Required when enabled.
	Image string `yaml:"image"`

	// CPU and Memory are the Fargate task's size: CPU in units of 1/1024
	// vCPU (256, 512, 1024, 2048, 4096), Memory in MiB, a combination
	// Fargate offers. Default: 256 and 512.
	CPU    int `yaml:"cpu"`
	Memory int `yaml:"memory"`
}

// Defaults of the aws keys.
const (
	defaultSite = "main"
	// DefaultInstanceType is the instance a server gets on aws without
	// --size, and DefaultRootVolumeGiB its root volume.
	DefaultInstanceType  = "m6i.xlarge"
	DefaultRootVolumeGiB = 100
	// DefaultWorkspaceSize is aws.workspace_size's default.
	DefaultWorkspaceSize = "50GiB"
	// maxVolumeGiB is the largest gp3 volume.
	maxVolumeGiB = 16384
)

// WorkspaceGiB is the size in GiB of the workspace volume of a server of
// size ("": none) on aws: the size's storage, else aws.workspace_size.
func (c *Config) WorkspaceGiB(size string) int {
	if s, ok := c.Sizes[size]; ok && s.StorageBytes > 0 {
		return int(s.StorageBytes >> 30)
	}
	return c.AWS.WorkspaceGiB
}

// volumeGiB checks that n bytes are a gp3 volume's size, whole GiB from 1
// to 16384, or says what is wrong.
func volumeGiB(n int64) (int, string) {
	switch {
	case n%(1<<30) != 0:
		return 0, "an EBS volume is a whole number of GiB (such as 50GiB)"
	case n>>30 < 1 || n>>30 > maxVolumeGiB:
		return 0, "an EBS volume is between 1GiB and 16TiB"
	}
	return int(n >> 30), ""
}

var (
	awsRegionRE   = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$`)
	awsVPCRE      = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	awsSubnetRE   = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	awsSiteRE     = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	awsCertRE     = regexp.MustCompile(`^arn:aws[a-z-]*:acm:([a-z0-9-]+):[0-9]{12}:certificate/[0-9a-zA-Z-]+$`)
	awsProfileRE  = regexp.MustCompile(`^[A-Za-z0-9_.+@=,-]{1,64}$`)
	awsKeyNameRE  = regexp.MustCompile(`^[ -~]{1,255}$`)
	awsImageRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]*[a-zA-Z0-9_.-]$`)
	instanceTypes = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
)

func (v *validation) aws() {
	a := &v.c.AWS
	if a.Site == "" {
		a.Site = defaultSite
	} else if !awsSiteRE.MatchString(a.Site) {
		v.problemf("aws.site", "%q is not a site name: 1-16 lowercase letters and digits (it becomes part of stack names)", a.Site)
	}
	if a.Region != "" && !awsRegionRE.MatchString(a.Region) {
		v.problemf("aws.region", "%q is not an AWS region (example: us-east-1)", a.Region)
	}
	if a.Profile != "" && !awsProfileRE.MatchString(a.Profile) {
		v.problemf("aws.profile", "%q is not a profile name from ~/.aws/config", a.Profile)
	}
	if a.VPCID != "" {
		if !awsVPCRE.MatchString(a.VPCID) {
			v.problemf("aws.vpc_id", "%q is not a VPC id (example: vpc-0123456789abcdef0)", a.VPCID)
		}
		switch {
		case len(a.PublicSubnets) == 0:
			v.missing("aws.public_subnets", "required with vpc_id: the public subnets (two zones at least) the load balancers go in")
		case len(a.PublicSubnets) < 2:
			v.problemf("aws.public_subnets", "a load balancer needs subnets in two zones at least; list two")
		}
		if len(a.PrivateSubnets) == 0 {
			v.missing("aws.private_subnets", "required with vpc_id: the private subnets (with a NAT route) instances go in")
		}
		if v.c.Backend == "aws" && len(v.c.Access.TrustedProxies) == 0 {
			v.problemf("aws.vpc_id", "with an existing VPC, list its CIDR in access.trusted_proxies, so that the agent believes the load balancer's X-Forwarded-For (aws ec2 describe-vpcs --vpc-ids %s --query 'Vpcs[].CidrBlock')", a.VPCID)
		}
	} else if len(a.PublicSubnets) > 0 || len(a.PrivateSubnets) > 0 {
		key := "aws.public_subnets"
		if len(a.PublicSubnets) == 0 {
			key = "aws.private_subnets"
		}
		v.problemf(key, "public_subnets and private_subnets need vpc_id, the VPC they are in; leave all three out to have `spinbook site up` create the network")
	}
	for i, s := range a.PublicSubnets {
		if !awsSubnetRE.MatchString(s) {
			v.problemf(fmt.Sprintf("aws.public_subnets[%d]", i), "%q is not a subnet id (example: subnet-0123456789abcdef0)", s)
		}
	}
	for i, s := range a.PrivateSubnets {
		if !awsSubnetRE.MatchString(s) {
			v.problemf(fmt.Sprintf("aws.private_subnets[%d]", i), "%q is not a subnet id (example: subnet-0123456789abcdef0)", s)
		}
	}
	if a.CertificateARN != "" {
		m := awsCertRE.FindStringSubmatch(a.CertificateARN)
		switch {
		case m == nil:
			v.problemf("aws.certificate_arn", "%s is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)", quoteStart(a.CertificateARN))
		case a.Region != "" && m[1] != a.Region:
			v.problemf("aws.certificate_arn", "the certificate is in %s, the stacks in %s; a load balancer needs a certificate of its own region", m[1], a.Region)
		}
	}
	if a.KeyName != "" && !awsKeyNameRE.MatchString(a.KeyName) {
		v.problemf("aws.key_name", "not an EC2 key pair name (printable ASCII, at most 255)")
	}
	v.awsShared()
	if a.WorkspaceSize == "" {
		a.WorkspaceSize = DefaultWorkspaceSize
	}
	if n, msg := parseStorage(a.WorkspaceSize); msg != "" {
		v.problemf("aws.workspace_size", "%q: %s", a.WorkspaceSize, msg)
	} else if gib, msg := volumeGiB(n); msg != "" {
		v.problemf("aws.workspace_size", "%q: %s", a.WorkspaceSize, msg)
	} else {
		a.WorkspaceGiB = gib
	}
	if a.WorkspacePrice != "" {
		f, err := strconv.ParseFloat(a.WorkspacePrice, 64)
		if err != nil || f < 0 || f > 100 || math.IsNaN(f) {
			v.problemf("aws.workspace_price_per_gib_month", "%q is not a price in USD per GiB-month (example: 0.08)", a.WorkspacePrice)
		} else {
			a.WorkspacePricePerGiB = f
		}
	}

	if v.c.Backend != "aws" {
		return
	}
	if isDefaultAllow(v.c.Access.Allow) {
		v.problemf("access.allow", "with backend aws, list the networks that may reach the load balancer (your offices, VPN), such as [203.0.113.0/24]; loopback means no one")
	}
	// A security group takes 60 inbound rules per address family; each
	// entry needs one per listener port (443 and 80).
	var v4, v6 int
	for _, p := range v.c.Access.AllowPrefixes {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	if max(v4, v6) > 30 {
		v.problemf("access.allow", "with backend aws, at most 30 IPv4 and 30 IPv6 entries (a security group takes 60 rules, two per entry); merge ranges")
	}
	if v.c.Access.TLS.Enabled() {
		v.problemf("access.tls", "with backend aws, TLS ends at the load balancer: set aws.certificate_arn instead")
	}
	if a.CertificateARN == "" && !v.c.Access.InsecureHTTP {
		v.missing("aws.certificate_arn", "required with backend aws: without a certificate the load balancers serve plain HTTP, so passwords and session cookies would cross the network in clear; request one in ACM (see docs/aws.md), or set access.insecure_http: true to accept that")
	}
	for _, name := range v.c.SizeNames() {
		s := v.c.Sizes[name]
		if s.GPUCount < 0 {
			v.problemf("sizes."+name+".gpus", "with backend aws, give a number of GPUs (ECS reserves a count), not \"all\"")
		}
		if s.StorageBytes > 0 {
			if _, msg := volumeGiB(s.StorageBytes); msg != "" {
				v.problemf("sizes."+name+".storage", "%q: with backend aws, the workspace volume's size: %s", s.Storage, msg)
			}
		}
	}
}

// sizeAWS checks the aws keys of size name and fills their parsed forms.
func (v *validation) sizeAWS(p string, s *Size) {
	if s.InstanceType != "" && !instanceTypes.MatchString(s.InstanceType) {
		v.problemf(p+".instance_type", "%q is not an EC2 instance type (examples: m6i.2xlarge, g5.2xlarge)", s.InstanceType)
	}
	if v.c.Backend == "aws" && s.InstanceType == "" {
		v.missing(p+".instance_type", "required with backend aws: the EC2 instance type of this size (example: g5.2xlarge)")
	}
	if s.RootVolumeGiB != "" {
		n, err := parseCount(s.RootVolumeGiB)
		if err != nil || n < 30 || n > 16384 {
			v.problemf(p+".root_volume_gib", "%q is not a volume size in GiB between 30 and 16384", s.RootVolumeGiB)
		}
		s.RootVolume = n
	}
}

func parseCount(s string) (int, error) {
	var n int
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 6 {
		return 0, fmt.Errorf("not a count")
	}
	_, err := fmt.Sscan(s, &n)
	return n, err
}

// isDefaultAllow reports whether allow is the loopback-only default.
func isDefaultAllow(allow []string) bool {
	d := defaultAllow()
	if len(allow) != len(d) {
		return false
	}
	for i := range d {
		if allow[i] != d[i] {
			return false
		}
	}
	return true
}
