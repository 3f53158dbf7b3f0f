package secret

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// A config value that holds a secret is either written literally or is a
// reference that names where the secret lives:
//
//	${env:NAME}      the environment variable NAME of the spinbook command
//	${file:PATH}     the contents of the file PATH, without a trailing newline
//	${aws-sm:ARN}    an AWS Secrets Manager secret (ARN or name)
//	${aws-ssm:NAME}  an AWS SSM Parameter Store parameter
//
// The AWS kinds are fetched with the AWS SDK's default credentials by the
// command line only (package awssecret, installed with WithAWS), so that
// the agent binary does not carry the SDK.
//
// References are resolved as late as possible (when a server starts, in
// the command that starts it) and the values are then handed to the agent
// in a 0600 file, never in argv. Errors name the reference, never a value.

// ErrMissing means a reference names a secret that is not there.
var ErrMissing = errors.New("secret not found")

// ErrUnavailable means a reference is well formed but this build cannot
// resolve its kind.
var ErrUnavailable = errors.New("not available in this build")

// Ref is a parsed reference.
type Ref struct {
	Kind string // "env", "file", "aws-sm" or "aws-ssm"
	Name string // the variable name, file path, secret ARN or parameter name
}

func (r Ref) String() string { return "${" + r.Kind + ":" + r.Name + "}" }

// kinds are the reference kinds ParseRef accepts.
var kinds = []string{"env", "file", "aws-sm", "aws-ssm"}

// ParseRef parses s as a reference. ok is false when s is not a reference
// at all (a literal value); err is set when s looks like one but is not
// well formed.
func ParseRef(s string) (ref Ref, ok bool, err error) {
	if !strings.HasPrefix(s, "${") {
		return Ref{}, false, nil
	}
	if !strings.HasSuffix(s, "}") {
		return Ref{}, true, fmt.Errorf("secret reference %q: missing the closing }", shortRef(s))
	}
	kind, name, found := strings.Cut(s[2:len(s)-1], ":")
	if !found || name == "" {
		return Ref{}, true, fmt.Errorf("secret reference %q: want ${env:NAME} or ${file:PATH}", shortRef(s))
	}
	switch kind {
	case "env", "file", "aws-sm", "aws-ssm":
	default:
		return Ref{}, true, fmt.Errorf("secret reference %q: unknown kind %q (valid: %s)", shortRef(s), kind, strings.Join(kinds, ", "))
	}
	if kind == "env" && strings.ContainsAny(name, "= \t\n") {
		return Ref{}, true, fmt.Errorf("secret reference %q: not an environment variable name", shortRef(s))
	}
	return Ref{Kind: kind, Name: name}, true, nil
}

// Resolve returns the secret that the config value s stands for: s itself
// when it is a literal, else what the reference names.
func Resolve(ctx context.Context, s string) (string, error) {
	ref, ok, err := ParseRef(s)
	if err != nil || !ok {
		return s, err
	}
	return ref.Resolve(ctx)
}

// Resolve fetches the secret r names.
func (r Ref) Resolve(ctx context.Context) (string, error) {
	switch r.Kind {
	case "env":
		v, ok := os.LookupEnv(r.Name)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: %w: the environment variable %s is not set; export it before running spinbook", r, ErrMissing, r.Name)
		}
		return v, nil
	case "file":
		data, err := os.ReadFile(r.Name)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: %w: no such file", r, ErrMissing)
		}
		if err != nil {
			// The error from os names the path and the cause only.
			return "", fmt.Errorf("%s: cannot read it: %w", r, err)
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s: %w: the file is empty", r, ErrMissing)
		}
		return v, nil
	case "aws-sm", "aws-ssm":
		aws, _ := ctx.Value(awsKey{}).(func(context.Context, Ref) (string, error))
		if aws == nil {
			return "", fmt.Errorf("%s: AWS references are resolved by the spinbook command line, not here", r)
		}
		return aws(ctx, r)
	}
	return "", fmt.Errorf("%s: unknown kind", r)
}

type awsKey struct{}

// WithAWS returns ctx under which Resolve hands ${aws-sm:...} and
// ${aws-ssm:...} references to resolve (the command line's
// awssecret.With); without it they fail.
func WithAWS(ctx context.Context, resolve func(context.Context, Ref) (string, error)) context.Context {
	return context.WithValue(ctx, awsKey{}, resolve)
}

// shortRef keeps an error about a malformed reference from echoing a long
// value that may be a pasted secret.
func shortRef(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
