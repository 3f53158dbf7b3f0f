package agentcmd

import (
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/spinbook/spinbook/internal/awslite"
	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
)

// TestDeleteOwnStack: the release after an idle stop deletes exactly the
// server's own stack in moto, with the agent's SDK-free CloudFormation
// client, waits until it is gone, and leaves the others.
func TestDeleteOwnStack(t *testing.T) {
	m := awstest.Start(t)
	sdk := cloudformation.NewFromConfig(m.Config())
	for _, name := range []string{"spinbook-test-alice", "spinbook-test-bob"} {
		if _, err := sdk.CreateStack(t.Context(), &cloudformation.CreateStackInput{
			StackName:    awssdk.String(name),
			TemplateBody: awssdk.String(`{"Resources":{"Topic":{"Type":"AWS::SNS::Topic"}}}`),
		}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	status := func(name string) types.StackStatus {
		out, err := sdk.DescribeStacks(t.Context(), &cloudformation.DescribeStacksInput{StackName: awssdk.String(name)})
		if err != nil || len(out.Stacks) == 0 {
			return "gone"
		}
		return out.Stacks[0].StackStatus
	}
	creds := awslite.Static(awslite.Credentials{AccessKeyID: "AKIDMOTO", SecretAccessKey: "moto-secret"})
	cf := &awslite.CloudFormation{Region: m.Region, Credentials: creds, Endpoint: m.Endpoint}
	var lines []string
	if err := DeleteOwnStack(t.Context(), cf, "spinbook-test-alice", 30*time.Second, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("DeleteOwnStack: %v", err)
	}
	if got := status("spinbook-test-alice"); got != "gone" && got != types.StackStatusDeleteComplete {
		t.Errorf("alice's stack is %s after the wait, want it deleted", got)
	}
	if got := status("spinbook-test-bob"); got != types.StackStatusCreateComplete {
		t.Errorf("bob's stack is %s, want it untouched", got)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "spinbook-test-alice is deleted") {
		t.Errorf("progress does not say the stack is deleted: %q", lines)
	}

	tests := []struct {
		name  string
		stack string
		cf    *awslite.CloudFormation
		want  error
	}{
		{"not a spinbook stack", "production-db", cf, ErrNotInstanceStack},
		{"no region", "spinbook-test-bob", &awslite.CloudFormation{Credentials: creds, Endpoint: m.Endpoint}, ErrNoRegion},
		{"no credentials", "spinbook-test-bob", &awslite.CloudFormation{Region: m.Region, Endpoint: m.Endpoint,
			Credentials: &awslite.Provider{Getenv: func(string) string { return "" }}}, awslite.ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DeleteOwnStack(t.Context(), tt.cf, tt.stack, time.Second, func(string) {})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.stack) {
				t.Errorf("DeleteOwnStack = %v, want %v naming %s", err, tt.want, tt.stack)
			}
		})
	}
	if got := status("spinbook-test-bob"); got != types.StackStatusCreateComplete {
		t.Errorf("a refused release touched bob's stack: %s", got)
	}
}
