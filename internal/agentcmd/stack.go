package agentcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/awslite"
)

// Errors of DeleteOwnStack's refusals; test with errors.Is.
var (
	ErrNotInstanceStack = errors.New("not a spinbook instance stack")
	ErrNoRegion         = errors.New("no AWS region")
)

// deleteOwnStackCmd is the command a server's agent runs after an idle
// stop (the aws backend's ReleaseCommand).
func deleteOwnStackCmd(ctx context.Context, args []string, s stdio) error {
	fs := flags("aws delete-own-stack", s)
	stack := fs.String("stack", "", "the instance stack to delete (spinbook-SITE-USER)")
	region := fs.String("region", "", "the stack's region")
	wait := fs.Duration("wait", 4*time.Minute, "how long to wait while the stack is deleted (0: do not wait)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *stack == "" || *region == "" {
		return usagef("aws delete-own-stack: --stack NAME and --region REGION are required")
	}
	cf := &awslite.CloudFormation{Region: *region, Credentials: &awslite.Provider{}}
	// The AWS SDK's variables for another endpoint (tests, VPC endpoints).
	for _, env := range []string{"AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL"} {
		if cf.Endpoint == "" {
			cf.Endpoint = os.Getenv(env)
		}
	}
	return DeleteOwnStack(ctx, cf, *stack, *wait, func(msg string) { fmt.Fprintln(s.stderr, msg) })
}

// DeleteOwnStack is how a server's agent releases it after an idle stop:
// it deletes the instance stack name with cf's credentials — inside the
// server, its own task role, which may delete that stack and no other —
// and waits up to wait while CloudFormation removes it, so that the task,
// kept running, is stopped by the service's deletion instead of being
// started again by ECS. The delete runs with the stack's service role;
// once the task role itself is gone, the stack can no longer be asked
// about, which ends the wait without an error. progress gets a line for
// each step.
func DeleteOwnStack(ctx context.Context, cf *awslite.CloudFormation, name string, wait time.Duration, progress func(string)) error {
	if !strings.HasPrefix(name, "spinbook-") {
		return fmt.Errorf("delete stack %s: %w", name, ErrNotInstanceStack)
	}
	if cf.Region == "" {
		return fmt.Errorf("delete stack %s: %w", name, ErrNoRegion)
	}
	if err := cf.DeleteStack(ctx, name, requestToken()); err != nil {
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
		st, err := cf.DescribeStack(ctx, name)
		switch {
		case awslite.IsNoStack(err):
			progress(fmt.Sprintf("stack %s is deleted", name))
			return nil
		case ctx.Err() != nil:
			progress(fmt.Sprintf("stack %s: the delete goes on without waiting", name))
			return nil
		case err != nil:
			progress(fmt.Sprintf("stack %s: the delete goes on (%v)", name, err))
			return nil
		}
		switch st.StackStatus {
		case "DELETE_COMPLETE":
			progress(fmt.Sprintf("stack %s is deleted", name))
			return nil
		case "DELETE_FAILED":
			return fmt.Errorf("delete stack %s: %s: %s", name, st.StackStatus, st.StackStatusReason)
		}
		select {
		case <-ctx.Done():
			progress(fmt.Sprintf("stack %s: the delete goes on without waiting", name))
			return nil
		case <-time.After(poll):
		}
	}
}

// requestToken makes a ClientRequestToken: a retry is the same request.
func requestToken() string {
	var b [12]byte
	rand.Read(b[:])
	return "spinbook-" + hex.EncodeToString(b[:])
}
