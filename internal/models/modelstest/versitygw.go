// Package modelstest starts a real S3 server, versitygw, for the model
// store's tests and the end-to-end tests.
package modelstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spinbook/spinbook/internal/proc/proctest"
)

// Version is the versitygw that scripts/setup --for-tests installs.
const Version = "v1.8.0"

// Server is one running versitygw with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	// Dir is the posix directory behind it: an object KEY of the bucket is
	// the file Dir/Bucket/KEY.
	Dir string
}

// Binary returns the versitygw binary: on PATH, else where scripts/setup
// caches it; "" when there is none.
func Binary() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join("/var/cache/spinbook", "versitygw-"+Version, "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Start starts versitygw on a free loopback port, serving a fresh
// directory, with a bucket made through the S3 API; it is stopped when the
// test ends. Its keys reach it in a 0600 file, never argv or the environment. When
// versitygw is missing, the test is skipped with the command that
// installs it (CI runs that command, so CI never skips).
func Start(t testing.TB, secretKey string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skipf("versitygw %s is not installed: run scripts/setup --for-tests", Version)
	}
	if secretKey == "" {
		secretKey = "secret-" + randomHex(12)
	}
	s := &Server{
		Bucket:    "models",
		AccessKey: "AK" + randomHex(8),
		SecretKey: secretKey,
		Dir:       t.TempDir(),
	}
	addr := proctest.FreeAddr(t)
	s.Endpoint = "http://" + addr
	// The keys the tests use belong to an admin account in versitygw's IAM
	// file, so that they are in no process's argv or environment: the root
	// account, which needs one of those, gets keys of its own.
	iamDir := t.TempDir()
	users := map[string]any{"accessAccounts": map[string]any{
		s.AccessKey: map[string]any{"access": s.AccessKey, "secret": s.SecretKey, "role": "admin"},
	}}
	data, _ := json.Marshal(users)
	if err := os.WriteFile(filepath.Join(iamDir, "users.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "--iam-dir", iamDir, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=root"+randomHex(8), "ROOT_SECRET_ACCESS_KEY=root-"+randomHex(16))
	proctest.StartListening(t, "versitygw", cmd, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return s
}

// Client returns a plain S3 client for the server, for checks behind the
// store's back.
func (s *Server) Client(t testing.TB) *s3.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
