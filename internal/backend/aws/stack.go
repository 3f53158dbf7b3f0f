package aws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
	cfn "github.com/awslabs/goformation/v7/cloudformation"

	"github.com/spinbook/spinbook/internal/backend"
)

// TemplateJSON renders t as indented JSON without HTML escaping, for
// review and for golden files.
func TemplateJSON(t *cfn.Template) ([]byte, error) {
	raw, err := t.JSON()
	if err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	return b.Bytes(), nil
}

// templateBody is t as the compact JSON sent to CloudFormation (an inline
// template may be 51,200 bytes).
func templateBody(t *cfn.Template) (string, error) {
	pretty, err := TemplateJSON(t)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, pretty); err != nil {
		return "", fmt.Errorf("render template: %w", err)
	}
	if b.Len() > 51200 {
		return "", fmt.Errorf("render template: %d bytes, more than CloudFormation takes inline (51200)", b.Len())
	}
	return b.String(), nil
}

// describe returns the stack called name, or nil when there is none.
func (a *AWS) describe(ctx context.Context, name string) (*types.Stack, error) {
	out, err := a.cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &name})
	if err != nil {
		if isNoStack(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("describe stack %s: %w", name, err)
	}
	for i := range out.Stacks {
		if s := &out.Stacks[i]; s.StackStatus != types.StackStatusDeleteComplete {
			return s, nil
		}
	}
	return nil, nil
}

// isNoStack recognises CloudFormation's answer about a missing stack: a
// ValidationError "Stack with id X does not exist".
func isNoStack(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist")
}

func isNoUpdate(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "No updates are to be performed")
}

// deployment is one stack to create or update.
type deployment struct {
	name       string
	body       string
	params     map[string]string
	tags       map[string]string
	keepFailed bool
	// roleARN is the service role CloudFormation acts with on the stack
	// ("": the caller's permissions). Every later operation, a delete
	// from inside included, uses it too.
	roleARN string
	// keep are parameters an update leaves as they are (UsePreviousValue):
	// those whose change would replace the instance, and its workspace.
	keep []string
}

// StackError is a stack operation that failed: the first resource that
// failed, and why, as CloudFormation said.
type StackError struct {
	Stack     string
	Operation string // "create", "update", "delete"
	Status    string // the stack's final status
	Resource  string // logical id of the first failed resource; "" if none
	Type      string
	Reason    string
	Kept      bool // the failed stack was left for inspection
}

func (e *StackError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stack %s: %s failed (%s)", e.Stack, e.Operation, e.Status)
	if e.Resource != "" {
		fmt.Fprintf(&b, ": %s (%s): %s", e.Resource, e.Type, e.Reason)
	} else if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.Kept {
		fmt.Fprintf(&b, "; the stack is left for inspection (CloudFormation console, or `aws cloudformation describe-stack-events --stack-name %s`); `spinbook down` removes it", e.Stack)
	}
	return b.String()
}

// deploy creates the stack, or updates it, and waits until it settles,
// reporting its events. A stack left failed by an earlier create is
// deleted first. An update with no changes is no error.
func (a *AWS) deploy(ctx context.Context, d deployment, progress func(backend.Event)) (*types.Stack, error) {
	st, err := a.describe(ctx, d.name)
	if err != nil {
		return nil, err
	}
	if st != nil && strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
		progress(backend.Event{Message: fmt.Sprintf("stack %s is busy (%s); waiting for it", d.name, st.StackStatus)})
		if st, err = a.settle(ctx, d.name); err != nil {
			return nil, err
		}
	}
	if st != nil {
		switch st.StackStatus {
		case types.StackStatusRollbackComplete, types.StackStatusRollbackFailed, types.StackStatusCreateFailed, types.StackStatusDeleteFailed:
			progress(backend.Event{Message: fmt.Sprintf("stack %s failed earlier (%s); deleting it before creating it again", d.name, st.StackStatus)})
			if err := a.deleteStack(ctx, d.name, progress); err != nil {
				return nil, err
			}
			st = nil
		}
	}
	var params []types.Parameter
	for _, k := range slices.Sorted(maps.Keys(d.params)) {
		params = append(params, types.Parameter{ParameterKey: awssdk.String(k), ParameterValue: awssdk.String(d.params[k])})
	}
	var tags []types.Tag
	for _, k := range slices.Sorted(maps.Keys(d.tags)) {
		tags = append(tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(d.tags[k])})
	}
	token := requestToken()
	caps := []types.Capability{types.CapabilityCapabilityIam}
	var role *string
	if d.roleARN != "" {
		role = &d.roleARN
	}
	op := "create"
	start := time.Now()
	if st == nil {
		onFailure := types.OnFailureRollback
		if d.keepFailed {
			onFailure = types.OnFailureDoNothing
		}
		progress(backend.Event{Message: fmt.Sprintf("creating stack %s", d.name)})
		_, err = a.cf.CreateStack(ctx, &cloudformation.CreateStackInput{
			StackName: &d.name, TemplateBody: &d.body, Parameters: params, Tags: tags,
			Capabilities: caps, OnFailure: onFailure, ClientRequestToken: &token, RoleARN: role,
		})
	} else {
		op = "update"
		for i, p := range params {
			if slices.Contains(d.keep, *p.ParameterKey) {
				params[i] = types.Parameter{ParameterKey: p.ParameterKey, UsePreviousValue: awssdk.Bool(true)}
			}
		}
		for _, k := range d.keep {
			if _, ok := d.params[k]; !ok {
				params = append(params, types.Parameter{ParameterKey: awssdk.String(k), UsePreviousValue: awssdk.Bool(true)})
			}
		}
		progress(backend.Event{Message: fmt.Sprintf("updating stack %s", d.name)})
		_, err = a.cf.UpdateStack(ctx, &cloudformation.UpdateStackInput{
			StackName: &d.name, TemplateBody: &d.body, Parameters: params, Tags: tags,
			Capabilities: caps, ClientRequestToken: &token, RoleARN: role,
		})
		if isNoUpdate(err) {
			progress(backend.Event{Message: fmt.Sprintf("stack %s is up to date", d.name)})
			return st, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s stack %s: %w", op, d.name, err)
	}
	final, err := a.wait(ctx, d.name, token, start, progress)
	if err != nil {
		return nil, err
	}
	switch final.StackStatus {
	case types.StackStatusCreateComplete, types.StackStatusUpdateComplete:
		return final, nil
	}
	serr := a.failure(ctx, d.name, op, final, token)
	if op == "create" {
		if d.keepFailed {
			serr.Kept = true
		} else {
			progress(backend.Event{Message: fmt.Sprintf("deleting the failed stack %s (--keep-failed keeps it for inspection)", d.name)})
			if err := a.deleteStack(ctx, d.name, progress); err != nil {
				return nil, errors.Join(serr, err)
			}
		}
	}
	return nil, serr
}

// settle waits, quietly, until stack name is in no *_IN_PROGRESS state.
func (a *AWS) settle(ctx context.Context, name string) (*types.Stack, error) {
	for n := 0; ; n++ {
		st, err := a.describe(ctx, name)
		if err != nil || st == nil || !strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
			return st, err
		}
		if err := a.sleep(ctx, n); err != nil {
			return nil, fmt.Errorf("wait for stack %s: %w", name, err)
		}
	}
}

// wait polls stack name until the operation with token ends, reporting
// each of its events once, oldest first. It returns the stack as it ended;
// nil when it is gone (a delete).
func (a *AWS) wait(ctx context.Context, name, token string, start time.Time, progress func(backend.Event)) (*types.Stack, error) {
	seen := map[string]bool{}
	for n := 0; ; n++ {
		a.report(ctx, name, token, start, seen, progress)
		st, err := a.describe(ctx, name)
		if err != nil {
			return nil, err
		}
		if st == nil || !strings.HasSuffix(string(st.StackStatus), "_IN_PROGRESS") {
			a.report(ctx, name, token, start, seen, progress)
			return st, nil
		}
		if err := a.sleep(ctx, n); err != nil {
			return nil, fmt.Errorf("wait for stack %s (%s): %w", name, st.StackStatus, err)
		}
	}
}

// sleep waits before the n-th poll (from 0): a fifth of a.poll more each
// time, up to a.poll, so that quick operations are seen quickly.
func (a *AWS) sleep(ctx context.Context, n int) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(min(a.poll, time.Duration(n+1)*a.poll/5)):
		return nil
	}
}

// events returns the events of the operation with token, oldest first.
func (a *AWS) events(ctx context.Context, name, token string, start time.Time) []types.StackEvent {
	var out []types.StackEvent
	p := cloudformation.NewDescribeStackEventsPaginator(a.cf, &cloudformation.DescribeStackEventsInput{StackName: &name})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			a.log.Debug("stack events", "stack", name, "err", err)
			break
		}
		older := false
		for _, ev := range page.StackEvents {
			if ev.Timestamp != nil && ev.Timestamp.Before(start.Add(-time.Minute)) {
				older = true
				continue
			}
			if awssdk.ToString(ev.ClientRequestToken) == token {
				out = append(out, ev)
			}
		}
		if older {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// report passes the operation's new events to progress.
func (a *AWS) report(ctx context.Context, name, token string, start time.Time, seen map[string]bool, progress func(backend.Event)) {
	for _, ev := range a.events(ctx, name, token, start) {
		id := awssdk.ToString(ev.EventId)
		if seen[id] {
			continue
		}
		seen[id] = true
		msg := fmt.Sprintf("stack %s: %s", name, ev.ResourceStatus)
		if awssdk.ToString(ev.LogicalResourceId) != name {
			msg = fmt.Sprintf("%s (%s): %s", awssdk.ToString(ev.LogicalResourceId), strings.TrimPrefix(awssdk.ToString(ev.ResourceType), "AWS::"), ev.ResourceStatus)
		}
		if r := awssdk.ToString(ev.ResourceStatusReason); r != "" && strings.HasSuffix(string(ev.ResourceStatus), "FAILED") {
			msg += ": " + r
		}
		progress(backend.Event{Message: msg})
	}
}

// failure finds the first resource of the operation that failed, leaving
// out those CloudFormation cancelled because of it.
func (a *AWS) failure(ctx context.Context, name, op string, st *types.Stack, token string) *StackError {
	e := &StackError{Stack: name, Operation: op, Status: string(st.StackStatus), Reason: awssdk.ToString(st.StackStatusReason)}
	for _, ev := range a.events(ctx, name, token, time.Time{}) {
		reason := awssdk.ToString(ev.ResourceStatusReason)
		if !strings.HasSuffix(string(ev.ResourceStatus), "_FAILED") || awssdk.ToString(ev.LogicalResourceId) == name ||
			strings.Contains(reason, "cancelled") {
			continue
		}
		e.Resource, e.Type, e.Reason = awssdk.ToString(ev.LogicalResourceId), awssdk.ToString(ev.ResourceType), reason
		break
	}
	return e
}

// deleteStack deletes stack name and waits until it is gone; a missing
// stack is no error.
func (a *AWS) deleteStack(ctx context.Context, name string, progress func(backend.Event)) error {
	st, err := a.describe(ctx, name)
	if err != nil || st == nil {
		return err
	}
	token := requestToken()
	start := time.Now()
	progress(backend.Event{Message: fmt.Sprintf("deleting stack %s", name)})
	if _, err := a.cf.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: st.StackId, ClientRequestToken: &token}); err != nil {
		return fmt.Errorf("delete stack %s: %w", name, err)
	}
	final, err := a.wait(ctx, name, token, start, progress)
	if err != nil {
		return err
	}
	if final != nil && final.StackStatus != types.StackStatusDeleteComplete {
		return a.failure(ctx, name, "delete", final, token)
	}
	return nil
}

// output returns the stack's output key, or "".
func output(st *types.Stack, key string) string {
	for _, o := range st.Outputs {
		if awssdk.ToString(o.OutputKey) == key {
			return awssdk.ToString(o.OutputValue)
		}
	}
	return ""
}

// tag returns the stack's tag key, or "".
func tag(st *types.Stack, key string) string {
	for _, t := range st.Tags {
		if awssdk.ToString(t.Key) == key {
			return awssdk.ToString(t.Value)
		}
	}
	return ""
}

func requestToken() string {
	var b [12]byte
	rand.Read(b[:])
	return "spinbook-" + hex.EncodeToString(b[:])
}
