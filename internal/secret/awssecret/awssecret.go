// Package awssecret resolves ${aws-sm:...} and ${aws-ssm:...} secret
// references with the AWS SDK, for the command line. It is kept out of
// package secret so that the agent binary, which resolves no reference,
// does not carry the SDK.
package awssecret

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spinbook/spinbook/internal/secret"
)

// Location is where ${aws-sm:...} and ${aws-ssm:...} references are
// looked up when they do not say: the config's aws.region and
// aws.profile. Empty fields leave it to the AWS SDK's default chain
// (AWS_REGION, AWS_PROFILE, ~/.aws). An ARN's own region always wins.
type Location struct {
	Region, Profile string
}

// With returns ctx under which secret.Resolve resolves AWS references
// at loc.
func With(ctx context.Context, loc Location) context.Context {
	return secret.WithAWS(ctx, func(ctx context.Context, r secret.Ref) (string, error) { return resolve(ctx, loc, r) })
}

// resolveAWS fetches an ${aws-sm:NAME-OR-ARN} reference from Secrets
// Manager (the current version's string) or an ${aws-ssm:NAME-OR-ARN} one
// from the SSM Parameter Store (SecureString parameters decrypted), with
// the credentials of the AWS SDK's default chain. Errors name the
// reference, never a value.
func resolve(ctx context.Context, loc Location, r secret.Ref) (string, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if loc.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(loc.Profile))
	}
	region := loc.Region
	if arnRegion := regionOfARN(r.Name); arnRegion != "" {
		region = arnRegion
	}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("%s: load the AWS configuration: %w", r, err)
	}
	if cfg.Region == "" {
		return "", fmt.Errorf("%s: no AWS region: give the full ARN, or set aws.region, AWS_REGION or a region in the profile", r)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return "", fmt.Errorf("%s: no AWS credentials (%v): run `aws configure` or `aws sso login`, or set AWS_PROFILE", r, err)
	}
	var v string
	switch r.Kind {
	case "aws-sm":
		out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &r.Name})
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", fmt.Errorf("%s: %w: Secrets Manager in %s has no such secret", r, secret.ErrMissing, cfg.Region)
		}
		if err != nil {
			return "", fmt.Errorf("%s: read it from Secrets Manager: %w", r, err)
		}
		switch {
		case out.SecretString != nil:
			v = *out.SecretString
		default:
			v = string(out.SecretBinary)
		}
	case "aws-ssm":
		out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: &r.Name, WithDecryption: aws(true)})
		var nf *ssmtypes.ParameterNotFound
		if errors.As(err, &nf) {
			return "", fmt.Errorf("%s: %w: the Parameter Store in %s has no such parameter", r, secret.ErrMissing, cfg.Region)
		}
		if err != nil {
			return "", fmt.Errorf("%s: read it from the Parameter Store: %w", r, err)
		}
		if out.Parameter != nil && out.Parameter.Value != nil {
			v = *out.Parameter.Value
		}
	}
	if v == "" {
		return "", fmt.Errorf("%s: %w: it is empty", r, secret.ErrMissing)
	}
	return v, nil
}

func aws(b bool) *bool { return &b }

// regionOfARN returns the region of an ARN (arn:PARTITION:SERVICE:REGION:...),
// or "" for a plain name.
func regionOfARN(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		return ""
	}
	parts := strings.SplitN(s, ":", 5)
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}
