package aws

import (
	"fmt"

	cfn "github.com/awslabs/goformation/v7/cloudformation"
	elbv2 "github.com/awslabs/goformation/v7/cloudformation/elasticloadbalancingv2"
	"github.com/awslabs/goformation/v7/cloudformation/tags"

	"github.com/spinbook/spinbook/internal/config"
)

// Exports and outputs of the site stack's shared load balancer
// (aws.shared_load_balancer).
const (
	exportListener        = "Listener" // the listener users' rules join
	outputLoadBalancerDNS = "LoadBalancerDNS"
)

// maxRulePriority is the highest priority a listener rule may have; the
// users' rules take 1..maxUserPriority, the portal's the last one.
const (
	maxRulePriority = 50000
	maxUserPriority = maxRulePriority - 1
)

// sslPolicy is the HTTPS listeners' policy: TLS 1.3 and 1.2 only.
const sslPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// loadBalancerAttributes are the attributes of every load balancer:
// websockets to kernels stay open through long silences, and malformed
// header fields never reach the agent.
func loadBalancerAttributes() []elbv2.LoadBalancer_LoadBalancerAttribute {
	return []elbv2.LoadBalancer_LoadBalancerAttribute{
		{Key: cfn.String("idle_timeout.timeout_seconds"), Value: cfn.String("3600")},
		{Key: cfn.String("routing.http.drop_invalid_header_fields.enabled"), Value: cfn.String("true")},
	}
}

// ServerHost is the name user's server answers to with a shared load
// balancer: USER.DOMAIN.
func ServerHost(a config.AWS, user string) string { return user + "." + a.Domain }

// addListeners adds the listeners of load balancer lb (a logical id) to t:
// with a certificate, HTTPS with action and a redirect from HTTP; else
// plain HTTP with action. It returns their logical ids, the one rules join
// first.
func addListeners(t *cfn.Template, a config.AWS, lb string, action []elbv2.Listener_Action) []string {
	if a.CertificateARN == "" {
		t.Resources["HTTPListener"] = &elbv2.Listener{
			LoadBalancerArn: cfn.Ref(lb),
			Port:            cfn.Int(80),
			Protocol:        cfn.String("HTTP"),
			DefaultActions:  action,
		}
		return []string{"HTTPListener"}
	}
	t.Resources["HTTPSListener"] = &elbv2.Listener{
		LoadBalancerArn: cfn.Ref(lb),
		Port:            cfn.Int(443),
		Protocol:        cfn.String("HTTPS"),
		SslPolicy:       cfn.String(sslPolicy),
		Certificates:    []elbv2.Listener_Certificate{{CertificateArn: cfn.String(a.CertificateARN)}},
		DefaultActions:  action,
	}
	t.Resources["HTTPRedirectListener"] = &elbv2.Listener{
		LoadBalancerArn: cfn.Ref(lb),
		Port:            cfn.Int(80),
		Protocol:        cfn.String("HTTP"),
		DefaultActions: []elbv2.Listener_Action{{Type: "redirect", RedirectConfig: &elbv2.Listener_RedirectConfig{
			Protocol: cfn.String("HTTPS"), Port: cfn.String("443"), StatusCode: "HTTP_301",
		}}},
	}
	return []string{"HTTPSListener", "HTTPRedirectListener"}
}

// urlScheme is the scheme of the servers' URLs: https with a certificate.
func urlScheme(a config.AWS) string {
	if a.CertificateARN != "" {
		return "https"
	}
	return "http"
}

// addSharedLoadBalancer adds the site's one load balancer
// (aws.shared_load_balancer) to the site template t: in the public
// subnets, behind the load balancers' security group, with listeners
// whose default answer is 404; users' stacks add a rule each. The
// listener users' rules join is exported.
func addSharedLoadBalancer(t *cfn.Template, cfg *config.Config, publicSubnets []string) (listener string) {
	a := cfg.AWS
	t.Resources["LoadBalancer"] = &elbv2.LoadBalancer{
		Type:                   cfn.String("application"),
		Scheme:                 cfn.String("internet-facing"),
		Subnets:                publicSubnets,
		SecurityGroups:         []string{cfn.GetAtt("AlbSecurityGroup", "GroupId")},
		LoadBalancerAttributes: loadBalancerAttributes(),
		Tags:                   []tags.Tag{{Key: "Name", Value: SiteStackName(a.Site) + "-alb"}},
	}
	notFound := []elbv2.Listener_Action{{Type: "fixed-response", FixedResponseConfig: &elbv2.Listener_FixedResponseConfig{
		StatusCode:  "404",
		ContentType: cfn.String("text/plain"),
		MessageBody: cfn.String("No spinbook server has this name. Run `spinbook up`, then open the URL it prints.\n"),
	}}}
	listeners := addListeners(t, a, "LoadBalancer", notFound)
	t.Outputs[exportListener] = cfn.Output{
		Value:       cfn.Ref(listeners[0]),
		Description: cfn.String("the shared load balancer's listener each server's rule joins"),
		Export:      &cfn.Export{Name: exportName(a.Site, exportListener)},
	}
	t.Outputs[outputLoadBalancerDNS] = cfn.Output{
		Value:       cfn.GetAtt("LoadBalancer", "DNSName"),
		Description: cfn.String(fmt.Sprintf("the shared load balancer: point *.%s (a wildcard CNAME or alias record) at it", a.Domain)),
	}
	return listeners[0]
}

// addFrontDoor adds to user's instance template t what carries requests
// to its target group, and the URL output; it returns the logical ids the
// ECS service must wait for (ECS refuses a target group that no load
// balancer uses yet) and the name the front door answers to, a template
// value. With a load balancer per server that is the load balancer and
// its listeners, and the load balancer's name; with a shared one, a rule
// of the site's listener for USER.DOMAIN, and that name.
func addFrontDoor(t *cfn.Template, cfg *config.Config, p InstanceParams, name func(string) []tags.Tag) (waitFor []string, host string) {
	a := cfg.AWS
	forward := []elbv2.Listener_Action{{Type: "forward", TargetGroupArn: cfn.RefPtr("TargetGroup")}}
	if a.SharedLoadBalancer {
		host = ServerHost(a, p.User)
		t.Resources["ListenerRule"] = &elbv2.ListenerRule{
			ListenerArn: cfn.String(cfn.ImportValue(exportName(a.Site, exportListener))),
			Priority:    p.rulePriority(),
			Conditions: []elbv2.ListenerRule_RuleCondition{{
				Field:            cfn.String("host-header"),
				HostHeaderConfig: &elbv2.ListenerRule_HostHeaderConfig{Values: []string{host}},
			}},
			Actions: []elbv2.ListenerRule_Action{{Type: "forward", TargetGroupArn: cfn.RefPtr("TargetGroup")}},
		}
		t.Outputs[outputURL] = cfn.Output{Value: urlScheme(a) + "://" + host + "/", Description: cfn.String("the server's front door")}
		return []string{"ListenerRule"}, host
	}
	var subnets []string
	for i := range publicSubnetCount(a) {
		subnets = append(subnets, cfn.ImportValue(exportName(a.Site, exportPublicSubnet(i))))
	}
	t.Resources["LoadBalancer"] = &elbv2.LoadBalancer{
		Type:                   cfn.String("application"),
		Scheme:                 cfn.String("internet-facing"),
		Subnets:                subnets,
		SecurityGroups:         []string{cfn.ImportValue(exportName(a.Site, exportAlbSG))},
		LoadBalancerAttributes: loadBalancerAttributes(),
		Tags:                   name("alb"),
	}
	listeners := addListeners(t, a, "LoadBalancer", forward)
	desc := "the server's front door"
	if a.CertificateARN == "" {
		desc += " (plain HTTP: set aws.certificate_arn)"
	}
	t.Outputs[outputURL] = cfn.Output{Value: cfn.Sub(urlScheme(a) + "://${LoadBalancer.DNSName}/"), Description: cfn.String(desc)}
	t.Outputs[outputLoadBalancerDNS] = cfn.Output{Value: cfn.GetAtt("LoadBalancer", "DNSName"), Description: cfn.String("the load balancer's name")}
	return listeners, cfn.GetAtt("LoadBalancer", "DNSName")
}
