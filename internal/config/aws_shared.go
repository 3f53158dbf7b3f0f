package config

import (
	"slices"
	"strings"
)

// Defaults of aws.portal: Fargate's smallest task, enough for a Go web
// service and its SQLite file.
const (
	DefaultPortalCPU    = 256
	DefaultPortalMemory = 512
)

// maxHostCondition is the longest name a load balancer's host-header
// rule condition takes.
const maxHostCondition = 128

// fargateMemory lists the memory sizes (MiB) Fargate offers for each CPU
// size (docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html).
var fargateMemory = map[int][]int{
	256:  {512, 1024, 2048},
	512:  {1024, 2048, 3072, 4096},
	1024: {2048, 3072, 4096, 5120, 6144, 7168, 8192},
	2048: {4096, 5120, 6144, 7168, 8192, 9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384},
	4096: {8192, 9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384, 17408, 18432, 19456, 20480,
		21504, 22528, 23552, 24576, 25600, 26624, 27648, 28672, 29696, 30720},
}

// awsShared checks aws.shared_load_balancer, aws.domain and aws.portal.
func (v *validation) awsShared() {
	a := &v.c.AWS
	if a.Domain != "" {
		d := strings.ToLower(strings.TrimSuffix(a.Domain, "."))
		switch {
		case strings.Contains(d, "://") || strings.ContainsAny(d, "/:*"):
			v.problemf("aws.domain", "%s is not a DNS name: give the name alone, such as notebooks.example.com (no scheme, port, path or wildcard)", quoteStart(a.Domain))
		case !validDomain(d):
			v.problemf("aws.domain", "%s is not a DNS name of two labels at least, such as notebooks.example.com", quoteStart(a.Domain))
		case len(d)+1+maxUserLen > maxHostCondition:
			v.problemf("aws.domain", "too long (%d characters): the load balancer matches USER.DOMAIN in at most %d, and user names have up to %d; use at most %d", len(d), maxHostCondition, maxUserLen, maxHostCondition-1-maxUserLen)
		default:
			a.Domain = d
		}
	}
	if a.SharedLoadBalancer && a.Domain == "" {
		v.missing("aws.domain", "required with shared_load_balancer: the name servers are found under (alice's at alice.DOMAIN), such as notebooks.example.com")
	}
	if !a.SharedLoadBalancer && a.Domain != "" {
		v.problemf("aws.domain", "only used with shared_load_balancer: true; set that, or leave domain out (a load balancer per server has a name of its own)")
	}
	p := &a.Portal
	if p.Enabled {
		if !a.SharedLoadBalancer {
			v.problemf("aws.portal.enabled", "the portal runs behind the site's load balancer: set aws.shared_load_balancer: true (and aws.domain) too")
		}
		if p.Image == "" {
			v.missing("aws.portal.image", "required with portal.enabled: an image with this spinbook at /usr/local/bin/spinbook (docs/aws.md, \"The portal on AWS\")")
		}
	}
	if p.Image != "" && !awsImageRE.MatchString(p.Image) {
		v.problemf("aws.portal.image", "%s is not an image reference (example: 123456789012.dkr.ecr.us-east-1.amazonaws.com/spinbook:1.4)", quoteStart(p.Image))
	}
	if mems, ok := fargateMemory[p.TaskCPU()]; !ok {
		v.problemf("aws.portal.cpu", "%d is not a Fargate CPU size: 256, 512, 1024, 2048 or 4096", p.CPU)
	} else if !slices.Contains(mems, p.TaskMemory()) {
		v.problemf("aws.portal.memory", "Fargate offers %d MiB with cpu %d only as one of %v", p.TaskMemory(), p.TaskCPU(), mems)
	}
}

// TaskCPU is the portal task's CPU, or its default.
func (p AWSPortal) TaskCPU() int {
	if p.CPU == 0 {
		return DefaultPortalCPU
	}
	return p.CPU
}

// TaskMemory is the portal task's memory in MiB, or its default.
func (p AWSPortal) TaskMemory() int {
	if p.Memory == 0 {
		return DefaultPortalMemory
	}
	return p.Memory
}

// validDomain reports whether d is a lowercase DNS name of two labels or
// more, each a letter-digit-hyphen label.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
