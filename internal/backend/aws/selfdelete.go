package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// ErrNotInstanceStack refuses a stack DeleteOwnStack has no business with.
var ErrNotInstanceStack = errors.New("not a spinbook instance stack")

// DeleteOwnStack is how a server's agent releases it after an idle stop
// (ReleaseCommand): it deletes the instance stack name with the
// credentials sdk holds — inside the server, its own task role, which may
// delete that stack and no other — and waits up to wait while
// CloudFormation removes it, so that the task, kept running, is stopped by
// the service's deletion instead of being started again by ECS. The
// delete runs with the stack's service role; once the task role itself is
// gone, the stack can no longer be asked about, which ends the wait
// without an error. progress gets a line for each step.
func DeleteOwnStack(ctx context.Context, sdk awssdk.Config, name string, wait time.Duration, progress func(string)) error {
	if !strings.HasPrefix(name, "spinbook-") {
		return fmt.Errorf("delete stack %s: %w", name, ErrNotInstanceStack)
	}
	if sdk.Region == "" {
		return fmt.Errorf("delete stack %s: %w", name, ErrNoRegion)
	}
	if sdk.Credentials == nil {
		return fmt.Errorf("delete stack %s: %w", name, ErrNoCredentials)
	}
	cf := cloudformation.NewFromConfig(sdk)
	token := requestToken()
	if _, err := cf.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: &name, ClientRequestToken: &token}); err != nil {
		return fmt.Errorf("delete stack %s: %w", name, err)
	}
	progress(fmt.Sprintf("deleting stack %s", name))
	if wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	poll := min(5*time.Second, max(wait/20, 10*time.Millisecond))
	for {
		out, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &name})
		switch {
		case isNoStack(err):
			progress(fmt.Sprintf("stack %s is deleted", name))
			return nil
		case ctx.Err() != nil:
			progress(fmt.Sprintf("stack %s: the delete goes on without waiting", name))
			return nil
		case err != nil:
			progress(fmt.Sprintf("stack %s: the delete goes on (%v)", name, err))
			return nil
		}
		for _, st := range out.Stacks {
			switch st.StackStatus {
			case types.StackStatusDeleteComplete:
				progress(fmt.Sprintf("stack %s is deleted", name))
				return nil
			case types.StackStatusDeleteFailed:
				return fmt.Errorf("delete stack %s: %s: %s", name, st.StackStatus, awssdk.ToString(st.StackStatusReason))
			}
		}
		select {
		case <-ctx.Done():
			progress(fmt.Sprintf("stack %s: the delete goes on without waiting", name))
			return nil
		case <-time.After(poll):
		}
	}
}
