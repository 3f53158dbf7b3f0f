package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
)

// commandTimeout is --timeout when given, else what a slow backend asks
// for (backend.Patient), else the flag's default.
func commandTimeout(cmd *cobra.Command, be backend.Backend, command string, flag time.Duration) time.Duration {
	if cmd.Flags().Changed("timeout") {
		return flag
	}
	if p, ok := be.(backend.Patient); ok {
		return max(flag, p.Timeout(command))
	}
	return flag
}

func newAWS(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aws",
		Short: "AWS backend tools: render the CloudFormation templates for review",
		Long: `Tools for the aws backend (see docs/aws.md). The stacks themselves are made by
` + "`spinbook site up`" + ` (the site) and ` + "`spinbook up`" + ` (each user's server).`,
		Example: `  spinbook aws render --out review/`,
		Args:    cobra.NoArgs,
	}
	var out, size string
	render := &cobra.Command{
		Use:   "render --out DIR",
		Short: "Write the site, workspace and instance CloudFormation templates, as `site up` and `up` would deploy them",
		Long: `Write, for review, the three CloudFormation templates the aws backend deploys:
DIR/spinbook-SITE.json (the site stack: network, security groups, cluster,
roles, agent bucket), DIR/spinbook-SITE-USER-Workspace.json (the user's
workspace volume, kept across down and up) and DIR/spinbook-SITE-USER.json
(the user's server: load balancer, instance, its own task role, ECS
service). Nothing is contacted; no credentials are needed. The templates
hold no secret: the instance stack takes the spec secret's ARN and version
as parameters, filled in by ` + "`spinbook up`" + `; the workspace stack takes
its zone, that of the site's private subnet.`,
		Example: `  spinbook aws render --out review/
  spinbook aws render --user alice --size gpu --out review/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("aws render: --out DIR is required")
			}
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			user, err := e.resolveUser()
			if err != nil {
				return err
			}
			p := aws.InstanceParams{User: user, SizeName: size}
			if size != "" {
				if p.Size, err = cfg.LookupSize(size); err != nil {
					return usageError{err}
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("aws render: %w", err)
			}
			site, err := aws.TemplateJSON(aws.SiteTemplate(cfg))
			if err != nil {
				return err
			}
			inst, err := aws.TemplateJSON(aws.InstanceTemplate(cfg, p))
			if err != nil {
				return err
			}
			ws, err := aws.TemplateJSON(aws.WorkspaceTemplate(cfg, user, cfg.WorkspaceGiB(size)))
			if err != nil {
				return err
			}
			files := map[string][]byte{
				filepath.Join(out, aws.SiteStackName(cfg.AWS.Site)+".json"):            site,
				filepath.Join(out, aws.WorkspaceStackName(cfg.AWS.Site, user)+".json"): ws,
				filepath.Join(out, aws.InstanceStackName(cfg.AWS.Site, user)+".json"):  inst,
			}
			for _, name := range []string{aws.SiteStackName(cfg.AWS.Site), aws.WorkspaceStackName(cfg.AWS.Site, user), aws.InstanceStackName(cfg.AWS.Site, user)} {
				path := filepath.Join(out, name+".json")
				if err := os.WriteFile(path, files[path], 0o644); err != nil {
					return fmt.Errorf("aws render: %w", err)
				}
				fmt.Fprintln(e.stdout, path)
			}
			if cfg.AWS.CertificateARN == "" {
				fmt.Fprintln(e.stderr, "WARNING: no aws.certificate_arn: the load balancers would serve PLAIN HTTP")
			}
			return nil
		},
	}
	render.Flags().StringVar(&out, "out", "", "the directory to write the templates to")
	render.Flags().StringVar(&size, "size", "", "render the instance stack for this size")
	cmd.AddCommand(render) // and the hidden `aws delete-own-stack`: see run
	return cmd
}
