// Package models is the model store: named, checksummed files kept in an
// S3 bucket (AWS or any S3-compatible server) or in a directory, so that
// trained models outlive the servers that made them.
//
// Every object carries the SHA-256 of its contents (x-amz-meta-sha256 on
// S3, an extended attribute in a directory store), computed before it is
// stored and checked whenever it is read back. A put never leaves a partial
// object visible and never replaces one unless told to; names are checked by
// ValidateName, so no name reaches outside the store's prefix or directory.
package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"time"
)

// A Store keeps models by name. Methods are safe for concurrent use.
type Store interface {
	// URL is the store's location as configured (s3://bucket/prefix/ or
	// file:///dir/); it never holds a key.
	URL() string
	// Put stores size bytes read from r as name. sum is their SHA-256
	// (hex), known beforehand (see PutFile); the bytes are checked against
	// it as they stream, and if they differ nothing is stored. Put refuses
	// to replace an existing name (ErrExists) unless opts.Force.
	Put(ctx context.Context, name string, r io.Reader, size int64, sum string, opts PutOptions) error
	// Get opens name for reading. Reading to the end verifies the contents:
	// the last Read returns an error wrapping ErrChecksum instead of io.EOF
	// when they do not match the stored SHA-256. A missing name is
	// ErrNotFound. Close releases the transfer.
	Get(ctx context.Context, name string) (io.ReadCloser, Object, error)
	// Stat describes name; a missing one is ErrNotFound.
	Stat(ctx context.Context, name string) (Object, error)
	// List describes every object whose name starts with prefix, sorted by
	// name.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Remove deletes name; a missing one is ErrNotFound.
	Remove(ctx context.Context, name string) error
}

// PutOptions change how Put behaves.
type PutOptions struct {
	// Force replaces an existing object of the same name.
	Force bool
}

// Object describes one stored model.
type Object struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// SHA256 is the hex SHA-256 of the contents; "" for an object stored
	// by another tool, which Get cannot verify.
	SHA256 string `json:"sha256"`
}

// Errors a store returns, wrapped in an *Error; test with errors.Is.
var (
	ErrNotFound      = errors.New("no such model")
	ErrExists        = errors.New("a model of that name already exists")
	ErrChecksum      = errors.New("SHA-256 mismatch")
	ErrNoBucket      = errors.New("the store does not exist")
	ErrAccessDenied  = errors.New("access denied")
	ErrUnreachable   = errors.New("cannot reach the store")
	ErrNoCredentials = errors.New("no credentials")
	ErrUnknownScheme = errors.New("unknown store URL scheme")
)

// An Error is a failed store operation. Its message names the store's URL
// and the model, never a key, and says what to check.
type Error struct {
	Op   string // put, get, stat, ls, rm, open
	Name string // the model name or prefix; "" when there is none
	URL  string // the store's URL
	Kind error  // one of the Err values above; nil when unclassified
	Hint string // what to check or do
	Err  error  // the cause
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Name != "" {
		fmt.Fprintf(&b, " %s", e.Name)
	}
	if e.Op == "get" {
		b.WriteString(" from ")
	} else {
		b.WriteString(" in ")
	}
	b.WriteString(e.URL)
	b.WriteString(": ")
	switch {
	case e.Kind != nil && e.Err != nil && e.Err != e.Kind:
		fmt.Fprintf(&b, "%v (%v)", e.Kind, e.Err)
	case e.Kind != nil:
		b.WriteString(e.Kind.Error())
	default:
		fmt.Fprint(&b, e.Err)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's kind, so errors.Is(err, ErrNotFound) works.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Config says where a store is and how to reach it, with secrets resolved.
type Config struct {
	// URL is s3://bucket/prefix/ or file:///dir/.
	URL string
	// Endpoint is the S3 API's base URL for non-AWS stores; "" for AWS.
	Endpoint string
	// Region is the bucket's region; "" for AWS_REGION (s3sdk.Open: the
	// SDK's default), else us-east-1.
	Region string
	// PathStyle addresses buckets as endpoint/bucket rather than
	// bucket.endpoint, as most non-AWS stores want.
	PathStyle bool
	// AccessKeyID and SecretAccessKey are the keys; both "" for the
	// environment's (AWS_ACCESS_KEY_ID ...), else the ECS task role's
	// (s3sdk.Open: the SDK's whole default chain, ~/.aws included).
	AccessKeyID     string
	SecretAccessKey string
}

// Open returns the store cfg.URL names. It checks the URL only; the first
// operation finds out whether the store can be reached.
func Open(ctx context.Context, cfg Config) (Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, &Error{Op: "open", URL: cfg.URL, Err: err, Hint: "check models.url (s3://bucket/prefix/ or file:///dir/)"}
	}
	switch u.Scheme {
	case "s3":
		return openS3(cfg, u)
	case "file":
		return openFile(cfg.URL, u)
	default:
		return nil, &Error{Op: "open", URL: cfg.URL, Kind: ErrUnknownScheme,
			Err:  fmt.Errorf("scheme %q", u.Scheme),
			Hint: "models.url must start with s3:// or file:///"}
	}
}

// hashingReader checks that r yields exactly size bytes with SHA-256 sum:
// in place of io.EOF it returns an error wrapping ErrChecksum when they
// differ, so a store that stops at the first error stores nothing.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	size int64
	sum  string // "" = no check
}

func newHashingReader(r io.Reader, size int64, sum string) *hashingReader {
	return &hashingReader{r: r, h: sha256.New(), size: size, sum: strings.ToLower(sum)}
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	if hr.size >= 0 && hr.n > hr.size {
		return n, fmt.Errorf("%w: more than the expected %d bytes (did the file change?)", ErrChecksum, hr.size)
	}
	if errors.Is(err, io.EOF) {
		if err := hr.check(); err != nil {
			return n, err
		}
	}
	return n, err
}

func (hr *hashingReader) check() error {
	if hr.size >= 0 && hr.n != hr.size {
		return fmt.Errorf("%w: %d bytes, expected %d", ErrChecksum, hr.n, hr.size)
	}
	if hr.sum == "" {
		return nil
	}
	if got := hex.EncodeToString(hr.h.Sum(nil)); got != hr.sum {
		return fmt.Errorf("%w: the contents hash to %s, the store says %s", ErrChecksum, got, hr.sum)
	}
	return nil
}

// verifiedBody is what Get returns: the object's contents, checked at the end.
type verifiedBody struct {
	*hashingReader
	close func() error
}

func (v *verifiedBody) Close() error { return v.close() }

func validSum(sum string) bool {
	if len(sum) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(sum)
	return err == nil
}

// NewCheckedReader returns r checked as a put or get checks it: exactly
// size bytes (-1: any) with SHA-256 sum ("" = no check); in place of
// io.EOF the last Read returns an error wrapping ErrChecksum when they
// differ. For stores outside this package (s3sdk).
func NewCheckedReader(r io.Reader, size int64, sum string) io.Reader {
	return newHashingReader(r, size, sum)
}

// NewVerifiedBody is what Get returns: r checked as NewCheckedReader
// checks it, closed with close.
func NewVerifiedBody(r io.Reader, size int64, sum string, close func() error) io.ReadCloser {
	return &verifiedBody{hashingReader: newHashingReader(r, size, sum), close: close}
}

// ValidSHA256 reports whether sum is a SHA-256 in hex.
func ValidSHA256(sum string) bool { return validSum(sum) }
