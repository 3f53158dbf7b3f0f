package aws

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/spinbook/spinbook/internal/backend"
)

// agentBinary is the agent binary instances fetch: its key in the site
// bucket is agent/SHA256/spinbook, so a new spinbook version is a new key
// and an instance checks what it got.
type agentBinary struct {
	path, sum, key string
	size           int64
}

// agent checks that the binary at a.agentPath can run on the instances (a
// static linux/amd64 executable) and sums it.
func (a *AWS) agent() (agentBinary, error) {
	f, err := os.Open(a.agentPath)
	if err != nil {
		return agentBinary{}, backend.MissingAgent(a.agentPath, err)
	}
	defer f.Close()
	if err := checkStaticLinuxAMD64(a.agentPath); err != nil {
		return agentBinary{}, fmt.Errorf("agent binary %s cannot run on the instances: %w; build one with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o spinbook-agent ./cmd/spinbook-agent and put it beside spinbook", a.agentPath, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return agentBinary{}, fmt.Errorf("agent binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return agentBinary{path: a.agentPath, sum: sum, key: "agent/" + sum + "/spinbook", size: n}, nil
}

// ensureAgent uploads the agent binary to bucket unless it is there.
func (a *AWS) ensureAgent(ctx context.Context, bucket string, progress func(backend.Event)) (agentBinary, error) {
	bin, err := a.agent()
	if err != nil {
		return bin, err
	}
	_, err = a.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &bin.key})
	if err == nil {
		return bin, nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || (ae.ErrorCode() != "NotFound" && ae.ErrorCode() != "NoSuchKey") {
		return bin, fmt.Errorf("look for the agent in s3://%s/%s: %w", bucket, bin.key, err)
	}
	f, err := os.Open(bin.path)
	if err != nil {
		return bin, fmt.Errorf("agent binary: %w", err)
	}
	defer f.Close()
	progress(backend.Event{Message: fmt.Sprintf("uploading the agent (%d MiB) to s3://%s/%s", bin.size>>20, bucket, bin.key)})
	_, err = a.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &bin.key, Body: f, ContentLength: awssdk.Int64(bin.size),
		ContentType: awssdk.String("application/octet-stream"),
		Metadata:    map[string]string{"sha256": bin.sum},
	})
	if err != nil {
		return bin, fmt.Errorf("upload the agent to s3://%s/%s: %w", bucket, bin.key, err)
	}
	return bin, nil
}

// removeAgents deletes every agent binary from bucket (site down: a
// bucket must be empty to go).
func (a *AWS) removeAgents(ctx context.Context, bucket string) error {
	p := s3.NewListObjectsV2Paginator(a.s3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: awssdk.String("agent/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
				return nil
			}
			return fmt.Errorf("list s3://%s/agent/: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if _, err := a.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				return fmt.Errorf("delete s3://%s/%s: %w", bucket, awssdk.ToString(o.Key), err)
			}
		}
	}
	return nil
}

// checkStaticLinuxAMD64 says why the file at p is not a static
// linux/amd64 executable.
func checkStaticLinuxAMD64(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("not a Linux executable: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %s, the instances run x86_64", f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("it is dynamically linked (built with cgo)")
		}
	}
	return nil
}
