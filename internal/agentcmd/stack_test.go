package agentcmd

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/awslite"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
)

// deletedStacks are the StackName of every DeleteStack the stand-in got.
func deletedStacks(si *awsstandin.StandIn) []string {
	var out []string
	for _, req := range si.CFNRequests {
		form, _ := url.ParseQuery(req)
		if form.Get("Action") == "DeleteStack" {
			out = append(out, form.Get("StackName"))
		}
	}
	return out
}

// TestDeleteOwnStack: the release after an idle stop deletes exactly the
// server's own stack, waits until it is gone, and leaves the others.
func TestDeleteOwnStack(t *testing.T) {
	si := awsstandin.New()
	t.Cleanup(si.Close)
	si.AddStack("spinbook-test-alice")
	si.AddStack("spinbook-test-bob")
	creds := awslite.Static(awslite.Credentials{AccessKeyID: "AKIDSTANDIN", SecretAccessKey: "stand-in-secret"})
	cf := &awslite.CloudFormation{Region: "us-east-1", Credentials: creds, Endpoint: si.URL}
	var lines []string
	if err := DeleteOwnStack(t.Context(), cf, "spinbook-test-alice", 10*time.Second, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("DeleteOwnStack: %v", err)
	}
	if got := deletedStacks(si); !slices.Equal(got, []string{"spinbook-test-alice"}) {
		t.Errorf("DeleteStack was called for %q, want only spinbook-test-alice", got)
	}
	if status, _, _, _ := si.Stack("spinbook-test-alice"); status != "DELETE_COMPLETE" {
		t.Errorf("alice's stack is %s after the wait, want DELETE_COMPLETE", status)
	}
	if status, _, _, _ := si.Stack("spinbook-test-bob"); status != "CREATE_COMPLETE" {
		t.Errorf("bob's stack is %s, want it untouched", status)
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
		{"no region", "spinbook-test-bob", &awslite.CloudFormation{Credentials: creds, Endpoint: si.URL}, ErrNoRegion},
		{"no credentials", "spinbook-test-bob", &awslite.CloudFormation{Region: "us-east-1", Endpoint: si.URL,
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
	if got := deletedStacks(si); len(got) != 1 {
		t.Errorf("a refused release still called DeleteStack: %q", got)
	}
}
