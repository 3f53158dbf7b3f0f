package awssecret

import (
	"errors"
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
	"github.com/spinbook/spinbook/internal/secret"
)

// awsMoto points the AWS SDK's default chain at moto (package awstest),
// with static test credentials.
func awsMoto(t *testing.T) *awstest.AWS {
	t.Helper()
	m := awstest.Start(t)
	m.Setenv(t)
	return m
}

func TestAWSReferences(t *testing.T) {
	m := awsMoto(t)
	const value = "CANARY-dw-password-from-aws"
	out, err := secretsmanager.NewFromConfig(m.Config()).CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: awssdk.String("team/dw"), SecretString: awssdk.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	arn := *out.ARN
	if _, err := ssm.NewFromConfig(m.Config()).PutParameter(t.Context(), &ssm.PutParameterInput{
		Name: awssdk.String("/team/dw/password"), Value: awssdk.String(value + "-ssm"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		in   string
		want string
	}{
		{"${aws-sm:team/dw}", value},
		{"${aws-sm:" + arn + "}", value},
		{"${aws-ssm:/team/dw/password}", value + "-ssm"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := secret.Resolve(With(t.Context(), Location{}), tt.in)
			if err != nil || got != tt.want {
				t.Errorf("Resolve(%q) = %q, %v; want the stored value", tt.in, got, err)
			}
		})
	}
	for _, missing := range []string{"${aws-sm:team/none}", "${aws-ssm:/team/none}"} {
		t.Run(missing, func(t *testing.T) {
			_, err := secret.Resolve(With(t.Context(), Location{}), missing)
			if !errors.Is(err, secret.ErrMissing) || !strings.Contains(err.Error(), missing) {
				t.Errorf("Resolve(%q) = %v, want ErrMissing naming the reference", missing, err)
			}
		})
	}
}

func TestAWSReferenceWithoutCredentials(t *testing.T) {
	awsMoto(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := secret.Resolve(With(t.Context(), Location{}), "${aws-sm:team/dw}")
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials") || !strings.Contains(err.Error(), "${aws-sm:team/dw}") {
		t.Errorf("Resolve without credentials = %v, want an error naming the reference and what is missing", err)
	}
}
