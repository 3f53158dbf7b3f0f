package awslite

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// CloudFormation calls CloudFormation's query API in one region.
type CloudFormation struct {
	// Endpoint is the API's base URL; "" for AWS's in Region.
	Endpoint    string
	Region      string
	Credentials *Provider
	// HTTP sends the requests; nil for http.DefaultClient.
	HTTP *http.Client
}

// Stack is what DescribeStacks tells of one stack.
type Stack struct {
	StackID           string `xml:"StackId"`
	StackName         string
	StackStatus       string
	StackStatusReason string
}

// call posts action with params and decodes the answer into out (nil:
// ignore it).
func (c *CloudFormation) call(ctx context.Context, action string, params url.Values, out any) error {
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "https://cloudformation." + c.Region + ".amazonaws.com/"
	}
	form := url.Values{"Action": {action}, "Version": {"2010-05-15"}}
	for k, v := range params {
		form[k] = v
	}
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("cloudformation %s: %w", action, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	cl := &client{service: "cloudformation", region: c.Region, creds: c.Credentials, http: c.HTTP}
	resp, err := cl.do(req, hexSHA256([]byte(body)))
	if err != nil {
		return fmt.Errorf("cloudformation %s: %w", action, err)
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := xml.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("cloudformation %s: read the answer: %w", action, err)
	}
	return nil
}

// DeleteStack asks CloudFormation to delete the stack name (a name or an
// ID); token makes a retry the same request.
func (c *CloudFormation) DeleteStack(ctx context.Context, name, token string) error {
	p := url.Values{"StackName": {name}}
	if token != "" {
		p.Set("ClientRequestToken", token)
	}
	return c.call(ctx, "DeleteStack", p, nil)
}

// DescribeStack describes the stack name. A stack that does not exist is
// a *ResponseError with code ValidationError (see IsNoStack).
func (c *CloudFormation) DescribeStack(ctx context.Context, name string) (Stack, error) {
	var out struct {
		Stacks []Stack `xml:"DescribeStacksResult>Stacks>member"`
	}
	if err := c.call(ctx, "DescribeStacks", url.Values{"StackName": {name}}, &out); err != nil {
		return Stack{}, err
	}
	if len(out.Stacks) == 0 {
		return Stack{}, fmt.Errorf("cloudformation DescribeStacks: %w", &ResponseError{Status: http.StatusBadRequest, Code: "ValidationError", Message: "Stack with id " + name + " does not exist"})
	}
	return out.Stacks[0], nil
}

// IsNoStack reports whether err says the stack does not exist.
func IsNoStack(err error) bool {
	return IsCode(err, "ValidationError") && strings.Contains(err.Error(), "does not exist")
}
