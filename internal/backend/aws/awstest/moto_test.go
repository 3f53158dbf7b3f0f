package awstest

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// TestStart: moto answers at the endpoint with the test credentials, Reset
// forgets what it held, and EnforceIAM refuses a key its IAM never made
// while it takes one it did.
func TestStart(t *testing.T) {
	m := Start(t)
	if !strings.HasPrefix(m.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("Endpoint = %q, want a loopback URL", m.Endpoint)
	}
	ctx := t.Context()
	sm := secretsmanager.NewFromConfig(m.Config())
	name := "awstest/probe"
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretString: &name}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name}); err != nil || *out.SecretString != name {
		t.Fatalf("GetSecretValue = %v, %v", out, err)
	}
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name}); err == nil {
		t.Fatal("the secret is still there after Reset")
	}

	user := "awstest-probe"
	im := iam.NewFromConfig(m.Config())
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: &user}); err != nil {
		t.Fatal(err)
	}
	key, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: &user})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnforceIAM(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = sts.NewFromConfig(m.Config()).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidClientTokenId" {
		t.Errorf("GetCallerIdentity with a key IAM never made = %v, want InvalidClientTokenId", err)
	}
	as := m.ConfigAs(*key.AccessKey.AccessKeyId, *key.AccessKey.SecretAccessKey, "")
	id, err := sts.NewFromConfig(as).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !strings.HasSuffix(*id.Arn, ":user/"+user) {
		t.Errorf("GetCallerIdentity with the user's key = %v, %v", id, err)
	}
	// The user has no policy: everything else is refused.
	_, err = secretsmanager.NewFromConfig(as).ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	if !IsAccessDenied(err) {
		t.Errorf("ListSecrets without a policy = %v, want AccessDenied", err)
	}
}
