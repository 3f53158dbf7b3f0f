package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/spinbook/spinbook/internal/backend"
)

// SiteUp implements backend.SiteManager: it creates or updates the site
// stack, uploads the agent binary to its bucket and reports the egress
// address to allowlist in the warehouse.
func (a *AWS) SiteUp(ctx context.Context, progress func(backend.Event)) error {
	if err := a.checkCredentials(ctx); err != nil {
		return err
	}
	body, err := templateBody(SiteTemplate(a.cfg))
	if err != nil {
		return err
	}
	tags := baseTags(a.site())
	tags[tagRole] = "site"
	tags[tagDeployDigest] = digestOf(body)
	var params map[string]string
	if a.cfg.AWS.Portal.Enabled {
		if params, err = a.portalParams(ctx, progress); err != nil {
			return err
		}
	}
	st, err := a.deploy(ctx, deployment{name: SiteStackName(a.site()), body: body, params: params, tags: tags}, progress)
	if err != nil {
		return err
	}
	if _, err := a.ensureAgent(ctx, output(st, outputAgentBucket), progress); err != nil {
		return err
	}
	if url := output(st, outputPortalURL); url != "" {
		progress(backend.Event{Message: fmt.Sprintf("the portal: %s (its state is on the EFS file system %s-portal, kept by site down)", url, SiteStackName(a.site()))})
	}
	if ip := output(st, outputNatAddress); ip != "" {
		progress(backend.Event{Message: fmt.Sprintf("egress address (NAT gateway): %s — allowlist %s/32 in the warehouse (Redshift: the cluster's security group, inbound port 5439)", ip, ip)})
	} else {
		progress(backend.Event{Message: fmt.Sprintf("servers reach out through the NAT of the private subnets of %s", a.cfg.AWS.VPCID)})
	}
	if dns := output(st, outputLoadBalancerDNS); dns != "" {
		progress(backend.Event{Message: fmt.Sprintf("shared load balancer: %s — point a wildcard DNS record *.%s (CNAME, or a Route 53 alias) at it", dns, a.cfg.AWS.Domain)})
	}
	if a.cfg.AWS.CertificateARN == "" {
		progress(backend.Event{Message: "WARNING: no aws.certificate_arn: load balancers will serve PLAIN HTTP; set a certificate"})
	}
	return nil
}

// SiteDown implements backend.SiteManager: it refuses while any instance
// or workspace stack of the site exists, else empties the agent bucket and deletes the
// site stack.
func (a *AWS) SiteDown(ctx context.Context, progress func(backend.Event)) error {
	if err := a.checkCredentials(ctx); err != nil {
		return err
	}
	instances, workspaces, err := a.stacks(ctx)
	if err != nil {
		return err
	}
	if len(instances) > 0 {
		var users []string
		for _, st := range instances {
			users = append(users, tag(st, tagUser))
		}
		slices.Sort(users)
		return fmt.Errorf("site %s still has %d server(s) (of: %s); run `spinbook down --user USER` for each first",
			a.site(), len(instances), strings.Join(users, ", "))
	}
	if len(workspaces) > 0 {
		users := slices.Sorted(maps.Keys(workspaces))
		return fmt.Errorf("site %s still keeps %d workspace volume(s) (of: %s); run `spinbook down --purge --user USER` for each first (with --snapshot to keep a last copy)",
			a.site(), len(workspaces), strings.Join(users, ", "))
	}
	st, err := a.describe(ctx, SiteStackName(a.site()))
	if err != nil || st == nil {
		return err
	}
	if bucket := output(st, outputAgentBucket); bucket != "" {
		progress(backend.Event{Message: fmt.Sprintf("emptying s3://%s", bucket)})
		if err := a.removeAgents(ctx, bucket); err != nil {
			return err
		}
	}
	if err := a.deleteStack(ctx, SiteStackName(a.site()), progress); err != nil {
		return err
	}
	if a.cfg.AWS.Portal.Enabled {
		return a.deleteSecret(ctx, PortalConfigSecret(a.site()))
	}
	return nil
}

// checkSite says what is wrong with the site stack st for this
// configuration: missing, failed, or made from another one (the allowlist,
// the certificate, the network or the model store changed since), which
// `spinbook site up` fixes.
func (a *AWS) checkSite(st *types.Stack) error {
	name := SiteStackName(a.site())
	switch {
	case st == nil:
		return fmt.Errorf("the site stack %s does not exist: run `spinbook site up` first", name)
	case st.StackStatus != types.StackStatusCreateComplete && st.StackStatus != types.StackStatusUpdateComplete &&
		st.StackStatus != types.StackStatusUpdateRollbackComplete:
		return fmt.Errorf("the site stack %s is %s: run `spinbook site up` first", name, st.StackStatus)
	}
	body, err := templateBody(SiteTemplate(a.cfg))
	if err != nil {
		return err
	}
	if tag(st, tagDeployDigest) != digestOf(body) {
		return fmt.Errorf("the site stack %s was made from another configuration (access.allow, aws.*, models, or another spinbook version): run `spinbook site up` to bring it up to date first", name)
	}
	return nil
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
