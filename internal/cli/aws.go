package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
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
	cmd.AddCommand(render, newDeleteOwnStack(e))
	return cmd
}

// newDeleteOwnStack is the command a server's agent runs after an idle
// stop (aws.ReleaseCommand): hidden, as no person needs it.
func newDeleteOwnStack(e *env) *cobra.Command {
	var stack, region string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "delete-own-stack --stack NAME --region REGION",
		Short: "Delete this server's own instance stack (run by the agent after an idle stop)",
		Long: `Delete the instance stack NAME, with the credentials of the AWS SDK's default
chain: inside a server, its task role, which may delete its own stack and no
other. The agent runs this after an idle stop, once the work is saved; use
` + "`spinbook down`" + ` instead, which saves first.`,
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stack == "" || region == "" {
				return usagef("aws delete-own-stack: --stack NAME and --region REGION are required")
			}
			sdk, err := awsconfig.LoadDefaultConfig(cmd.Context(), awsconfig.WithRegion(region))
			if err != nil {
				return fmt.Errorf("aws delete-own-stack: load the AWS configuration: %w", err)
			}
			return aws.DeleteOwnStack(cmd.Context(), sdk, stack, wait, func(msg string) { fmt.Fprintln(e.stderr, msg) })
		},
	}
	cmd.Flags().StringVar(&stack, "stack", "", "the instance stack to delete (spinbook-SITE-USER)")
	cmd.Flags().StringVar(&region, "region", "", "the stack's region")
	cmd.Flags().DurationVar(&wait, "wait", 4*time.Minute, "how long to wait while the stack is deleted (0: do not wait)")
	return cmd
}
