package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// The secrets of one user's server, under SecretPrefix.
const (
	secretSpec         = "agent-spec"    // the agent spec, injected by ECS
	secretControlToken = "control-token" // read back by the command line for save and down
)

// storedSecret is a secret as stored: where, and which version.
type storedSecret struct {
	ARN, VersionID string
}

// putSecret stores value as the secret name, creating it or adding a
// version, and restoring it if a `down` deleted it. Errors name the
// secret, never the value.
func (a *AWS) putSecret(ctx context.Context, name, value string, tags map[string]string) (storedSecret, error) {
	token := requestToken()
	desc, err := a.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &name})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		var st []smtypes.Tag
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			st = append(st, smtypes.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
		}
		out, err := a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: &name, SecretString: &value, Tags: st, ClientRequestToken: &token,
			Description: awssdk.String("spinbook: a secret of one notebook server; deleted by `spinbook down`"),
		})
		if err != nil {
			return storedSecret{}, fmt.Errorf("create secret %s: %w", name, err)
		}
		return storedSecret{ARN: awssdk.ToString(out.ARN), VersionID: awssdk.ToString(out.VersionId)}, nil
	case err != nil:
		return storedSecret{}, fmt.Errorf("describe secret %s: %w", name, err)
	}
	if desc.DeletedDate != nil {
		if _, err := a.sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: desc.ARN}); err != nil {
			return storedSecret{}, fmt.Errorf("restore secret %s: %w", name, err)
		}
	}
	out, err := a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: desc.ARN, SecretString: &value, ClientRequestToken: &token})
	if err != nil {
		return storedSecret{}, fmt.Errorf("store secret %s: %w", name, err)
	}
	return storedSecret{ARN: awssdk.ToString(out.ARN), VersionID: awssdk.ToString(out.VersionId)}, nil
}

// getSecret returns the current value of the secret name; "" and no error
// when there is none.
func (a *AWS) getSecret(ctx context.Context, name string) (string, error) {
	out, err := a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
	var nf *smtypes.ResourceNotFoundException
	var ir *smtypes.InvalidRequestException // scheduled for deletion
	if errors.As(err, &nf) || errors.As(err, &ir) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", name, err)
	}
	return awssdk.ToString(out.SecretString), nil
}

// deleteSecret deletes the secret name at once; a missing one is no error.
func (a *AWS) deleteSecret(ctx context.Context, name string) error {
	_, err := a.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: &name, ForceDeleteWithoutRecovery: awssdk.Bool(true)})
	var nf *smtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}
