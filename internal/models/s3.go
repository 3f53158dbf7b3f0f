package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spinbook/spinbook/internal/awslite"
)

const (
	// concurrency bounds the HEADs in flight when a listing asks for the
	// checksums.
	concurrency = 8
	// maxSinglePut is the most S3 takes in one PUT.
	maxSinglePut = 5 << 30
	// metaSHA256 is the user metadata key: the header x-amz-meta-sha256.
	metaSHA256 = "sha256"
)

// s3Store keeps models as objects under one bucket and key prefix, through
// package awslite: one request per put or get, no SDK. It is the store of
// the agent binary (bundles of a save that cannot reach the remote, and
// `spinbook models` inside servers: agentcmd/models.go); the
// command line uses package s3sdk, which splits large files into parallel
// parts. Both are tested alike (store_test.go).
type s3Store struct {
	url      string
	bucket   string
	prefix   string // "" or ending with /
	endpoint string // for error messages; "" = AWS
	s3       *awslite.S3
}

func openS3(cfg Config, u *url.URL) (*s3Store, error) {
	bucket, prefix, err := S3Prefix(cfg, u)
	if err != nil {
		return nil, err
	}
	creds := &awslite.Provider{} // the environment, else the ECS task role
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		creds = awslite.Static(awslite.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey})
	}
	region := cfg.Region
	for _, env := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = os.Getenv(env)
		}
	}
	client := &awslite.S3{Endpoint: cfg.Endpoint, Region: region, PathStyle: cfg.PathStyle, Credentials: creds}
	return &s3Store{url: cfg.URL, bucket: bucket, prefix: prefix, endpoint: cfg.Endpoint, s3: client}, nil
}

func (s *s3Store) URL() string { return s.url }

func (s *s3Store) key(name string) string { return s.prefix + name }

func (s *s3Store) Put(ctx context.Context, name string, r io.Reader, size int64, sum string, opts PutOptions) error {
	if err := ValidateName(name); err != nil {
		return s.fail(ctx, "put", name, err)
	}
	if !validSum(sum) {
		return s.fail(ctx, "put", name, fmt.Errorf("%q is not a SHA-256 in hex", sum))
	}
	if size > maxSinglePut {
		return &Error{Op: "put", Name: name, URL: s.url, Err: fmt.Errorf("%d bytes is more than S3 takes in one request", size),
			Hint: "put it from the spinbook command line, which sends large files in parts"}
	}
	if !opts.Force {
		// A clear answer up front; If-None-Match below closes the race
		// where the server supports it.
		switch _, err := s.head(ctx, name); {
		case err == nil:
			return s.fail(ctx, "put", name, errExists)
		case !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoBucket):
			return s.fail(ctx, "put", name, err)
		}
	}
	// The SHA-256 signs the request, so S3 itself refuses other bytes; the
	// reader stops a put whose source changed before the last byte leaves.
	err := s.s3.PutObject(ctx, s.bucket, s.key(name), newHashingReader(r, size, sum), size, strings.ToLower(sum), awslite.PutOptions{
		IfNoneMatch: !opts.Force,
		Metadata:    map[string]string{metaSHA256: strings.ToLower(sum)},
	})
	if err != nil {
		return s.fail(ctx, "put", name, err)
	}
	return nil
}

// errExists stands for a name found by the check before a put.
var errExists = errors.New("exists")

func (s *s3Store) Get(ctx context.Context, name string) (io.ReadCloser, Object, error) {
	if err := ValidateName(name); err != nil {
		return nil, Object{}, s.fail(ctx, "get", name, err)
	}
	body, info, err := s.s3.GetObject(ctx, s.bucket, s.key(name))
	if err != nil {
		return nil, Object{}, s.fail(ctx, "get", name, err)
	}
	o := s.object(name, info)
	return &verifiedBody{
		hashingReader: newHashingReader(ReadErrors(body, func(err error) error { return s.fail(ctx, "get", name, err) }), o.Size, o.SHA256),
		close:         body.Close,
	}, o, nil
}

func (s *s3Store) Stat(ctx context.Context, name string) (Object, error) {
	if err := ValidateName(name); err != nil {
		return Object{}, s.fail(ctx, "stat", name, err)
	}
	return s.head(ctx, name)
}

func (s *s3Store) head(ctx context.Context, name string) (Object, error) {
	info, err := s.s3.HeadObject(ctx, s.bucket, s.key(name))
	if err != nil {
		return Object{}, s.fail(ctx, "stat", name, err)
	}
	return s.object(name, info), nil
}

func (s *s3Store) object(name string, info awslite.ObjectInfo) Object {
	o := Object{Name: name, Size: info.Size, Modified: info.Modified}
	if v := strings.ToLower(info.Metadata[metaSHA256]); validSum(v) {
		o.SHA256 = v
	}
	return o
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, s.fail(ctx, "ls", prefix, err)
	}
	listed, err := s.s3.ListObjects(ctx, s.bucket, s.key(prefix))
	if err != nil {
		return nil, s.fail(ctx, "ls", prefix, err)
	}
	var out []Object
	for _, obj := range listed {
		name := strings.TrimPrefix(obj.Key, s.prefix)
		if ValidateName(name) != nil {
			continue // a folder marker, or a key no model could have
		}
		out = append(out, Object{Name: name, Size: obj.Size, Modified: obj.Modified})
	}
	// The checksums are in each object's metadata: ask in parallel.
	return FillSHA256(ctx, out, concurrency, s.head)
}

func (s *s3Store) Remove(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	if _, err := s.head(ctx, name); err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	if err := s.s3.DeleteObject(ctx, s.bucket, s.key(name)); err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	return nil
}

// fail classifies err into an *Error that names the store and says what to
// check. An error that already is one keeps its kind and hint.
func (s *s3Store) fail(ctx context.Context, op, name string, err error) error {
	var se *Error
	if errors.As(err, &se) {
		if se.Op == op {
			return se
		}
		return &Error{Op: op, Name: name, URL: s.url, Kind: se.Kind, Hint: se.Hint, Err: se.Err}
	}
	e := &Error{Op: op, Name: name, URL: s.url, Err: err}
	where := "the S3 endpoint of AWS"
	if s.endpoint != "" {
		where = s.endpoint
	}
	code, status := "", 0
	var re *awslite.ResponseError
	if errors.As(err, &re) {
		code, status = re.Code, re.Status
	}
	var sendErr *awslite.SendError
	switch {
	case err == errExists:
		e.Kind, e.Err, e.Hint = ErrExists, nil, "pass --force to replace it"
	case errors.Is(err, ErrInvalidName):
		// The cause says it all, and wraps ErrInvalidName.
	case errors.Is(err, ErrChecksum):
		e.Kind = ErrChecksum
	case code == "XAmzContentSHA256Mismatch" || code == "BadDigest":
		e.Kind, e.Err = ErrChecksum, fmt.Errorf("the store got other bytes than were sent (%s)", code)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Err = context.Cause(ctx)
		if e.Err == nil {
			e.Err = err
		}
	case code == "NoSuchKey" || (code == "NotFound" || code == "" && status == http.StatusNotFound) && !s.bucketMissing(ctx):
		e.Kind, e.Err, e.Hint = ErrNotFound, nil, "list the store with `spinbook models ls`"
	case code == "NoSuchBucket" || code == "NotFound" || status == http.StatusNotFound:
		e.Kind, e.Err, e.Hint = ErrNoBucket, nil, fmt.Sprintf("no bucket %q at %s; check models.url and models.endpoint, or create the bucket", s.bucket, where)
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		if op == "put" {
			e.Kind, e.Err, e.Hint = ErrExists, nil, "pass --force to replace it"
		} else {
			e.Hint = "the object changed while it was read; try again"
		}
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "Forbidden" || status == http.StatusForbidden:
		e.Kind, e.Err = ErrAccessDenied, fmt.Errorf("%s", NonEmpty(code, "403"))
		e.Hint = "check models.access_key_id and models.secret_access_key (or the instance role's policy) and that they may use this bucket"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		e.Hint = "the bucket is in another region: set models.region"
	case errors.Is(err, awslite.ErrNoCredentials):
		e.Kind, e.Err = ErrNoCredentials, nil
		e.Hint = "set models.access_key_id and models.secret_access_key, or run where AWS credentials or a task role are available"
	case errors.As(err, &sendErr):
		e.Kind, e.Err = ErrUnreachable, fmt.Errorf("%s: %w", where, Innermost(sendErr.Err))
		e.Hint = "check models.endpoint and that the store is running and reachable from here"
	}
	return e
}

// bucketMissing tells a missing bucket from a missing key after a 404
// without a body (HEAD).
func (s *s3Store) bucketMissing(ctx context.Context) bool {
	return awslite.IsStatus(s.s3.HeadBucket(ctx, s.bucket), http.StatusNotFound)
}
