package awslite

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// S3 calls one S3 endpoint: AWS's for Region, or Endpoint.
type S3 struct {
	// Endpoint is the base URL of a non-AWS S3 API; "" for AWS.
	Endpoint string
	// Region signs the requests (and picks AWS's endpoint); "" is us-east-1.
	Region string
	// PathStyle addresses buckets as endpoint/bucket/key.
	PathStyle bool
	// Credentials sign every request.
	Credentials *Provider
	// HTTP sends the requests; nil for http.DefaultClient.
	HTTP *http.Client
}

// ObjectInfo is what a HEAD or GET tells of an object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
	ETag     string
	// Metadata holds the x-amz-meta-* headers, names lowercased without
	// the prefix.
	Metadata map[string]string
}

func (s *S3) region() string {
	if s.Region == "" {
		return "us-east-1"
	}
	return s.Region
}

func (s *S3) client() *client {
	return &client{service: "s3", region: s.region(), creds: s.Credentials, http: s.HTTP}
}

// url addresses key (may be "") in bucket, with query q.
func (s *S3) url(bucket, key string, q url.Values) (*url.URL, error) {
	base := s.Endpoint
	if base == "" {
		base = "https://s3." + s.region() + ".amazonaws.com"
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("s3 endpoint %q is not a URL", base)
	}
	path := strings.TrimSuffix(u.Path, "/")
	if s.PathStyle {
		path += "/" + bucket
	} else {
		u.Host = bucket + "." + u.Host
	}
	if key != "" || !s.PathStyle {
		path += "/" + key
	}
	u.Path = path
	u.RawPath = escapePath(path)
	u.RawQuery = q.Encode()
	return u, nil
}

func (s *S3) request(ctx context.Context, method, bucket, key string, q url.Values, body io.Reader) (*http.Request, error) {
	u, err := s.url(bucket, key, q)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.URL = u // keep RawPath exactly as signed
	return req, nil
}

// HeadObject describes key; a missing one is a *ResponseError with
// status 404 and no code (a HEAD answer has no body).
func (s *S3) HeadObject(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	req, err := s.request(ctx, http.MethodHead, bucket, key, nil, nil)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp, err := s.client().do(req, EmptySHA256)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp.Body.Close()
	return objectInfo(key, resp), nil
}

// GetObject opens key for reading; the caller closes the body.
func (s *S3) GetObject(ctx context.Context, bucket, key string) (io.ReadCloser, ObjectInfo, error) {
	req, err := s.request(ctx, http.MethodGet, bucket, key, nil, nil)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	resp, err := s.client().do(req, EmptySHA256)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return resp.Body, objectInfo(key, resp), nil
}

func objectInfo(key string, resp *http.Response) ObjectInfo {
	o := ObjectInfo{Key: key, Size: resp.ContentLength, ETag: resp.Header.Get("ETag"), Metadata: map[string]string{}}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		o.Modified = t.UTC()
	}
	for name, v := range resp.Header {
		if l := strings.ToLower(name); strings.HasPrefix(l, "x-amz-meta-") && len(v) > 0 {
			o.Metadata[strings.TrimPrefix(l, "x-amz-meta-")] = v[0]
		}
	}
	return o
}

// PutOptions change PutObject.
type PutOptions struct {
	// IfNoneMatch makes the put fail (412 PreconditionFailed) when key
	// exists.
	IfNoneMatch bool
	// Metadata becomes x-amz-meta-* headers.
	Metadata    map[string]string
	ContentType string
}

// PutObject stores size bytes of body as key in one request (S3 takes up
// to 5 GiB so). sha256Hex is their SHA-256, which signs the request: S3
// refuses a body that does not match it.
func (s *S3) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, sha256Hex string, o PutOptions) error {
	if size == 0 {
		body = http.NoBody
	}
	req, err := s.request(ctx, http.MethodPut, bucket, key, nil, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	if o.IfNoneMatch {
		req.Header.Set("If-None-Match", "*")
	}
	if o.ContentType != "" {
		req.Header.Set("Content-Type", o.ContentType)
	}
	for k, v := range o.Metadata {
		req.Header.Set("X-Amz-Meta-"+k, v)
	}
	resp, err := s.client().do(req, strings.ToLower(sha256Hex))
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// DeleteObject removes key.
func (s *S3) DeleteObject(ctx context.Context, bucket, key string) error {
	return s.bodiless(ctx, http.MethodDelete, bucket, key)
}

// HeadBucket checks that bucket exists and may be used.
func (s *S3) HeadBucket(ctx context.Context, bucket string) error {
	return s.bodiless(ctx, http.MethodHead, bucket, "")
}

// bodiless sends a request without a body whose answer says nothing but
// its status.
func (s *S3) bodiless(ctx context.Context, method, bucket, key string) error {
	req, err := s.request(ctx, method, bucket, key, nil, nil)
	if err != nil {
		return err
	}
	resp, err := s.client().do(req, EmptySHA256)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ListObjects returns every object whose key starts with prefix
// (ListObjectsV2, page after page). Metadata is not listed.
func (s *S3) ListObjects(ctx context.Context, bucket, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		req, err := s.request(ctx, http.MethodGet, bucket, "", q, nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.client().do(req, EmptySHA256)
		if err != nil {
			return nil, err
		}
		var page struct {
			Contents []struct {
				Key          string
				Size         int64
				LastModified time.Time
				ETag         string
			}
			IsTruncated           bool
			NextContinuationToken string
		}
		err = xml.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: read the answer: %w", bucket, prefix, err)
		}
		for _, c := range page.Contents {
			out = append(out, ObjectInfo{Key: c.Key, Size: c.Size, Modified: c.LastModified.UTC(), ETag: c.ETag})
		}
		if !page.IsTruncated || page.NextContinuationToken == "" {
			return out, nil
		}
		token = page.NextContinuationToken
	}
}
