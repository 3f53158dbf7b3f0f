package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Models is the model store that `spinbook models put/get/ls/rm` use, on
// your machine and inside every server, where boto3 and the aws CLI get the
// same credentials. Leave it out for no store.
type Models struct {
	// URL is where models are kept: s3://bucket/prefix/ (AWS or any
	// S3-compatible server: MinIO, SeaweedFS, versitygw...) or
	// file:///dir/ (a directory on this machine, which must exist).
	// Required when any other models key is set.
	URL string `yaml:"url"`

	// Endpoint is the S3 API's base URL for a store that is not AWS, such
	// as http://minio.internal:9000. Default: AWS.
	Endpoint string `yaml:"endpoint"`

	// Region is the bucket's region. Default: the AWS SDK's (AWS_REGION,
	// ~/.aws/config), else us-east-1.
	Region string `yaml:"region"`

	// PathStyle addresses buckets as ENDPOINT/bucket instead of
	// bucket.ENDPOINT, as most non-AWS stores need. Default: false.
	PathStyle bool `yaml:"path_style"`

	// AccessKeyID and SecretAccessKey are the store's keys, best as
	// references (${env:NAME}, ${file:PATH}). Leave both out to use the
	// AWS SDK's own chain: AWS_* variables, ~/.aws, or on AWS the
	// instance's role.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
}

// Enabled reports whether a model store is configured.
func (m *Models) Enabled() bool { return m.URL != "" }

func (v *validation) models() {
	m := &v.c.Models
	if *m == (Models{}) {
		return
	}
	if m.URL == "" {
		v.missing("models.url", "required when a model store is configured: s3://bucket/prefix/ or file:///dir/")
	} else if msg := checkModelsURL(m.URL); msg != "" {
		v.problemf("models.url", "%s", msg)
	}
	if m.Endpoint != "" {
		if u, err := url.Parse(m.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			// Never quoted whole: it might carry credentials.
			v.problemf("models.endpoint", "not an http:// or https:// URL of an S3 API (example: http://minio.internal:9000)")
		}
	}
	if strings.ContainsFunc(m.Region, isControl) || strings.ContainsAny(m.Region, " /") {
		v.problemf("models.region", "%q is not a region (example: eu-west-1)", m.Region)
	}
	if (m.AccessKeyID == "") != (m.SecretAccessKey == "") {
		v.missing("models.secret_access_key", "set both access_key_id and secret_access_key, or neither (to use the AWS SDK's credentials or the instance role)")
	}
	if strings.HasPrefix(m.URL, "file:") && (m.Endpoint != "" || m.AccessKeyID != "") {
		v.problemf("models.url", "a file:// store takes no endpoint or keys")
	}
}

// checkModelsURL says what is wrong with models.url, or "".
func checkModelsURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return "not a URL; write s3://bucket/prefix/ or file:///dir/"
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return fmt.Sprintf("%q names no bucket; write s3://bucket/prefix/", raw)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Sprintf("%q: a query or # is not allowed", raw)
		}
		for seg := range strings.SplitSeq(strings.Trim(u.Path, "/"), "/") {
			if seg == ".." || seg == "." {
				return fmt.Sprintf("%q: the prefix must not hold . or ..", raw)
			}
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" || !filepath.IsAbs(u.Path) {
			return fmt.Sprintf("%q is not a local directory; write file:///absolute/dir/ (three slashes)", raw)
		}
	default:
		return fmt.Sprintf("%q: unknown scheme %q; the store is s3://bucket/prefix/ or file:///dir/", raw, u.Scheme)
	}
	return ""
}
