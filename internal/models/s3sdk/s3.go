// Package s3sdk is the model store on S3 through the AWS SDK, for the
// spinbook command line: the SDK's default credential chain (profiles,
// SSO, instance roles), retries, and multipart transfers in parallel parts.
// Package models has its own S3 store, without the SDK, for the agent
// binary; both pass the same tests (models' store_test.go).
package s3sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/spinbook/spinbook/internal/models"
)

// Open returns the store cfg.URL names: an S3 one through the SDK, any
// other as models.Open returns it.
func Open(ctx context.Context, cfg models.Config) (models.Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "s3" {
		return models.Open(ctx, cfg)
	}
	return openS3(ctx, cfg, u)
}

// Transfer tuning: parts of partSize bytes, concurrency of them in flight
// (see docs/benchmarks.md). Files smaller than one part go in one request.
const (
	partSize    = 16 << 20
	concurrency = 8
	// abortTimeout bounds the clean-up after a failed or cancelled put:
	// aborting the multipart upload gets a fresh context this long.
	abortTimeout = 15 * time.Second
	// metaSHA256 is the user metadata key: the header x-amz-meta-sha256.
	metaSHA256 = "sha256"
)

// s3Store keeps models as objects under one bucket and key prefix.
type s3Store struct {
	url      string
	bucket   string
	prefix   string // "" or ending with /
	endpoint string // for error messages; "" = AWS
	client   *s3.Client
	tm       *transfermanager.Client
}

func openS3(ctx context.Context, cfg models.Config, u *url.URL) (*s3Store, error) {
	bucket, prefix, err := models.S3Prefix(cfg, u)
	if err != nil {
		return nil, err
	}

	opts := []func(*awsconfig.LoadOptions) error{
		// Non-AWS stores reject the checksums the SDK would otherwise add
		// to every request; the SHA-256 in the metadata protects the data.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		awsconfig.WithRetryMaxAttempts(4),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = 2 * concurrency
		})),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, &models.Error{Op: "open", URL: cfg.URL, Err: err, Hint: "check ~/.aws/config and the AWS_* environment variables"}
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = partSize
		o.MultipartUploadThreshold = partSize
		o.Concurrency = concurrency
		o.FailTimeout = abortTimeout
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	return &s3Store{url: cfg.URL, bucket: bucket, prefix: prefix, endpoint: cfg.Endpoint, client: client, tm: tm}, nil
}

func (s *s3Store) URL() string { return s.url }

func (s *s3Store) key(name string) string { return s.prefix + name }

func (s *s3Store) Put(ctx context.Context, name string, r io.Reader, size int64, sum string, opts models.PutOptions) error {
	if err := models.ValidateName(name); err != nil {
		return s.fail(ctx, "put", name, err)
	}
	if !models.ValidSHA256(sum) {
		return s.fail(ctx, "put", name, fmt.Errorf("%q is not a SHA-256 in hex", sum))
	}
	if !opts.Force {
		// A clear answer up front; If-None-Match below closes the race
		// where the server supports it.
		switch _, err := s.head(ctx, name); {
		case err == nil:
			return s.fail(ctx, "put", name, errExists)
		case !errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrNoBucket):
			return s.fail(ctx, "put", name, err)
		}
	}
	in := &transfermanager.UploadObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.key(name)),
		Body:          models.NewCheckedReader(r, size, sum), // not a Seeker: read once, in order
		ContentLength: aws.Int64(size),
		Metadata:      map[string]string{metaSHA256: strings.ToLower(sum)},
	}
	if !opts.Force {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.tm.UploadObject(ctx, in); err != nil {
		return s.fail(ctx, "put", name, err)
	}
	return nil
}

// errExists stands for a name found by the check before a put.
var errExists = errors.New("exists")

func (s *s3Store) Get(ctx context.Context, name string) (io.ReadCloser, models.Object, error) {
	if err := models.ValidateName(name); err != nil {
		return nil, models.Object{}, s.fail(ctx, "get", name, err)
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return nil, models.Object{}, s.fail(ctx, "get", name, err)
	}
	o := s.object(name, head.ContentLength, head.LastModified, head.Metadata)
	body := newRangedReader(ctx, s.client, s.bucket, s.key(name), aws.ToString(head.ETag), o.Size)
	return models.NewVerifiedBody(models.ReadErrors(body, func(err error) error { return s.fail(ctx, "get", name, err) }), o.Size, o.SHA256, body.Close), o, nil
}

func (s *s3Store) Stat(ctx context.Context, name string) (models.Object, error) {
	if err := models.ValidateName(name); err != nil {
		return models.Object{}, s.fail(ctx, "stat", name, err)
	}
	return s.head(ctx, name)
}

func (s *s3Store) head(ctx context.Context, name string) (models.Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return models.Object{}, s.fail(ctx, "stat", name, err)
	}
	return s.object(name, out.ContentLength, out.LastModified, out.Metadata), nil
}

func (s *s3Store) object(name string, size *int64, modified *time.Time, meta map[string]string) models.Object {
	o := models.Object{Name: name, Size: aws.ToInt64(size), Modified: aws.ToTime(modified).UTC()}
	for k, v := range meta { // keys come back in any case
		if strings.EqualFold(k, metaSHA256) && models.ValidSHA256(strings.ToLower(v)) {
			o.SHA256 = strings.ToLower(v)
		}
	}
	return o
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]models.Object, error) {
	if err := models.ValidatePrefix(prefix); err != nil {
		return nil, s.fail(ctx, "ls", prefix, err)
	}
	var out []models.Object
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.key(prefix)),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "ls", prefix, err)
		}
		for _, obj := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), s.prefix)
			if models.ValidateName(name) != nil {
				continue // a folder marker, or a key no model could have
			}
			out = append(out, models.Object{Name: name, Size: aws.ToInt64(obj.Size), Modified: aws.ToTime(obj.LastModified).UTC()})
		}
	}
	// The checksums are in each object's metadata: ask in parallel.
	return models.FillSHA256(ctx, out, concurrency, s.head)
}

func (s *s3Store) Remove(ctx context.Context, name string) error {
	if err := models.ValidateName(name); err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	if _, err := s.head(ctx, name); err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return s.fail(ctx, "rm", name, err)
	}
	return nil
}

// fail classifies err into an *models.Error that names the store and says what to
// check. An error that already is one keeps its kind and hint.
func (s *s3Store) fail(ctx context.Context, op, name string, err error) error {
	var se *models.Error
	if errors.As(err, &se) {
		if se.Op == op {
			return se
		}
		return &models.Error{Op: op, Name: name, URL: s.url, Kind: se.Kind, Hint: se.Hint, Err: se.Err}
	}
	e := &models.Error{Op: op, Name: name, URL: s.url, Err: err}
	where := "the S3 endpoint of AWS"
	if s.endpoint != "" {
		where = s.endpoint
	}
	code, status := "", 0
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var sendErr *smithyhttp.RequestSendError
	switch {
	case err == errExists:
		e.Kind, e.Err, e.Hint = models.ErrExists, nil, "pass --force to replace it"
	case errors.Is(err, models.ErrInvalidName):
		// The cause says it all, and wraps models.ErrInvalidName.
	case errors.Is(err, models.ErrChecksum):
		e.Kind = models.ErrChecksum
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Err = context.Cause(ctx)
		if e.Err == nil {
			e.Err = err
		}
	case code == "NoSuchKey" || (code == "NotFound" || status == http.StatusNotFound) && !s.bucketMissing(ctx):
		e.Kind, e.Err, e.Hint = models.ErrNotFound, nil, "list the store with `spinbook models ls`"
	case code == "NoSuchBucket" || code == "NotFound" || status == http.StatusNotFound:
		e.Kind, e.Err, e.Hint = models.ErrNoBucket, nil, fmt.Sprintf("no bucket %q at %s; check models.url and models.endpoint, or create the bucket", s.bucket, where)
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		if op == "put" {
			e.Kind, e.Err, e.Hint = models.ErrExists, nil, "pass --force to replace it"
		} else {
			e.Hint = "the object changed while it was read; try again"
		}
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "Forbidden" || status == http.StatusForbidden:
		e.Kind, e.Err = models.ErrAccessDenied, fmt.Errorf("%s", models.NonEmpty(code, "403"))
		e.Hint = "check models.access_key_id and models.secret_access_key (or the instance role's policy) and that they may use this bucket"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		e.Hint = "the bucket is in another region: set models.region"
	case strings.Contains(err.Error(), "failed to retrieve credentials"):
		e.Kind, e.Err = models.ErrNoCredentials, nil
		e.Hint = "set models.access_key_id and models.secret_access_key, or run where AWS credentials or an instance role are available"
	case errors.As(err, &sendErr):
		e.Kind, e.Err = models.ErrUnreachable, fmt.Errorf("%s: %w", where, models.Innermost(sendErr.Err))
		e.Hint = "check models.endpoint and that the store is running and reachable from here"
	}
	return e
}

// bucketMissing tells a missing bucket from a missing key after a 404
// without a body (HEAD).
func (s *s3Store) bucketMissing(ctx context.Context) bool {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
