package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// The pieces both S3 stores share: this package's and s3sdk's.

// S3Prefix checks an s3:// URL u (cfg.URL parsed) and returns its bucket
// and key prefix ("" or ending with /).
func S3Prefix(cfg Config, u *url.URL) (bucket, prefix string, err error) {
	if u.Host == "" {
		return "", "", &Error{Op: "open", URL: cfg.URL, Err: errors.New("no bucket"), Hint: "write s3://bucket/prefix/"}
	}
	prefix = strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if p := strings.TrimSuffix(prefix, "/"); p != "" {
		if err := ValidateName(p); err != nil {
			return "", "", &Error{Op: "open", URL: cfg.URL, Err: fmt.Errorf("the key prefix: %w", err), Hint: "check models.url"}
		}
	}
	return u.Host, prefix, nil
}

// FillSHA256 asks head for the checksum of each listed object (a listing
// does not carry the metadata), concurrency at a time, and returns objs
// sorted by name.
func FillSHA256(ctx context.Context, objs []Object, concurrency int, head func(context.Context, string) (Object, error)) ([]Object, error) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for i := range objs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if o, err := head(ctx, objs[i].Name); err == nil {
				objs[i].SHA256 = o.SHA256
			}
		})
	}
	wg.Wait()
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	return objs, ctx.Err()
}

// ReadErrors returns r with every error but io.EOF passed through wrap:
// a transfer's errors become store errors.
func ReadErrors(r io.Reader, wrap func(error) error) io.Reader {
	return &errReader{r: r, wrap: wrap}
}

type errReader struct {
	r    io.Reader
	wrap func(error) error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = e.wrap(err)
	}
	return n, err
}

// Innermost returns the innermost error of err's chain: "connection
// refused" rather than the layers around it.
func Innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// NonEmpty is s, or fallback when s is "".
func NonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
