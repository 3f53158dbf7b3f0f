package awssecret

import (
	"errors"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/secret"
)

// awsStandIn points the AWS SDK's default chain at a stand-in for Secrets
// Manager and SSM (see package awsstandin), with static test credentials.
func awsStandIn(t *testing.T) *awsstandin.StandIn {
	t.Helper()
	si := awsstandin.New()
	t.Cleanup(si.Close)
	t.Setenv("AWS_ENDPOINT_URL", si.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	return si
}

func TestAWSReferences(t *testing.T) {
	si := awsStandIn(t)
	const value = "CANARY-dw-password-from-aws"
	arn := si.PutSecret("team/dw", value)
	si.Parameters["/team/dw/password"] = value + "-ssm"

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
	awsStandIn(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := secret.Resolve(With(t.Context(), Location{}), "${aws-sm:team/dw}")
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials") || !strings.Contains(err.Error(), "${aws-sm:team/dw}") {
		t.Errorf("Resolve without credentials = %v, want an error naming the reference and what is missing", err)
	}
}
