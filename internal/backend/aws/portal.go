package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/spinbook/spinbook/internal/backend"
)

// portalParams stores the portal's config (the text of the config file
// this command runs with) as the secret PortalConfigSecret, unless it
// holds that text already, and returns the site stack's parameters naming
// it. The text never reaches a template, parameter or log line.
func (a *AWS) portalParams(ctx context.Context, progress func(backend.Event)) (map[string]string, error) {
	if a.cfg.Path == "" {
		return nil, errors.New("aws.portal: the portal runs with this command's config file, and there is none: give the config with --config")
	}
	text, err := os.ReadFile(a.cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("aws.portal: read the config for the portal: %w", err)
	}
	for _, ref := range []string{"${env:", "${file:"} {
		if strings.Contains(string(text), ref) {
			progress(backend.Event{Message: fmt.Sprintf("WARNING: %s uses %s...} references, which the portal's task cannot resolve (no such variable or file there): use ${aws-sm:...} or ${aws-ssm:...} for what the portal needs", a.cfg.Path, ref)})
			break
		}
	}
	name := PortalConfigSecret(a.site())
	out, err := a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
	var nf *smtypes.ResourceNotFoundException
	var ir *smtypes.InvalidRequestException // scheduled for deletion
	var stored storedSecret
	switch {
	case err == nil && awssdk.ToString(out.SecretString) == string(text):
		stored = storedSecret{ARN: awssdk.ToString(out.ARN), VersionID: awssdk.ToString(out.VersionId)}
	case err == nil || errors.As(err, &nf) || errors.As(err, &ir):
		tags := baseTags(a.site())
		tags[tagRole] = "portal"
		progress(backend.Event{Message: fmt.Sprintf("storing the portal's config (%s) in Secrets Manager as %s", a.cfg.Path, name)})
		if stored, err = a.putSecret(ctx, name, string(text), tags); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return map[string]string{paramPortalConfigARN: stored.ARN, paramPortalConfigVersion: stored.VersionID}, nil
}
