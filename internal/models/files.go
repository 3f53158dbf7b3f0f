package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Progress hears how far a transfer is. Start begins a phase ("checksum",
// "upload", "download") of total bytes; Add reports n more bytes done.
// Add may be called from the transfer's goroutines, one at a time.
type Progress interface {
	Start(phase string, total int64)
	Add(n int64)
}

// PutFile stores the regular file at path as name: it hashes the file
// first (S3 takes the metadata before the first byte), then uploads it,
// checking the bytes against that hash as they go, so a file that changes
// meanwhile is refused rather than stored with a wrong checksum.
// progress may be nil.
func PutFile(ctx context.Context, s Store, path, name string, opts PutOptions, progress Progress) error {
	if err := ValidateName(name); err != nil {
		return &Error{Op: "put", Name: name, URL: s.URL(), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("put %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("put %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("put %s: not a regular file", path)
	}
	if !opts.Force {
		// Refuse before reading what may be gigabytes; Put checks again.
		switch _, err := s.Stat(ctx, name); {
		case err == nil:
			return &Error{Op: "put", Name: name, URL: s.URL(), Kind: ErrExists, Hint: "pass --force to replace it"}
		case !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoBucket):
			var se *Error
			if errors.As(err, &se) {
				se.Op = "put"
			}
			return err
		}
	}
	progress = orNop(progress)
	progress.Start("checksum", fi.Size())
	h := sha256.New()
	if _, err := io.CopyBuffer(h, &countingReader{r: ctxReader{ctx, f}, p: progress}, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("put %s: read: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("put %s: %w", path, err)
	}
	progress.Start("upload", fi.Size())
	return s.Put(ctx, name, &countingReader{r: f, p: progress}, fi.Size(), sum, opts)
}

// GetFile fetches name into the file at path ("" or a directory: the
// name's last part there). It writes a temporary file next to path, checks
// the SHA-256, and only then renames it into place, replacing any older
// file; on any error, a mismatch included, no file is left. It returns the
// object and the path it wrote.
func GetFile(ctx context.Context, s Store, name, dest string, progress Progress) (Object, string, error) {
	if err := ValidateName(name); err != nil {
		return Object{}, "", &Error{Op: "get", Name: name, URL: s.URL(), Err: err}
	}
	if dest == "" {
		dest = path.Base(name)
	} else if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		dest = filepath.Join(dest, path.Base(name))
	}
	body, o, err := s.Get(ctx, name)
	if err != nil {
		return Object{}, "", err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".spinbook-*")
	if err != nil {
		return o, "", fmt.Errorf("get %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	progress = orNop(progress)
	progress.Start("download", o.Size)
	if _, err := io.CopyBuffer(tmp, &countingReader{r: body, p: progress}, make([]byte, 1<<20)); err != nil {
		return o, "", wrapGet(s, name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return o, "", fmt.Errorf("get %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return o, "", fmt.Errorf("get %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return o, "", fmt.Errorf("get %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return o, "", fmt.Errorf("get %s: %w", name, err)
	}
	done = true
	return o, dest, nil
}

// Copy writes name's contents to w (stdout, for `get NAME -`); the error
// after the last byte says whether they matched their SHA-256.
func Copy(ctx context.Context, s Store, name string, w io.Writer, progress Progress) (Object, error) {
	body, o, err := s.Get(ctx, name)
	if err != nil {
		return Object{}, err
	}
	defer body.Close()
	progress = orNop(progress)
	progress.Start("download", o.Size)
	if _, err := io.CopyBuffer(w, &countingReader{r: body, p: progress}, make([]byte, 1<<20)); err != nil {
		return o, wrapGet(s, name, err)
	}
	return o, nil
}

// wrapGet makes a checksum mismatch (or a failed write) a store error
// naming the model.
func wrapGet(s Store, name string, err error) error {
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	e := &Error{Op: "get", Name: name, URL: s.URL(), Err: err}
	if errors.Is(err, ErrChecksum) {
		e.Kind = ErrChecksum
		e.Hint = "the stored object is damaged or was changed by another tool; nothing was written (with -, the output is incomplete)"
	}
	return e
}

// BundlesPrefix is the part of the store that holds the git bundles of
// every user's work, BundlesPrefix + <user>/<file>. Servers may create
// bundles only under their own user's part, and delete none (see the
// model store's policy in docs/models.md).
const BundlesPrefix = "spinbook/bundles/"

// BundleName is where a git bundle of user's work is kept in the store:
// spinbook/bundles/<user>/<file>.
func BundleName(user, file string) (string, error) {
	name := BundlesPrefix + user + "/" + file
	if strings.Contains(user, "/") || strings.Contains(file, "/") {
		return "", fmt.Errorf("%w %q: user and file name must not contain /", ErrInvalidName, name)
	}
	return name, ValidateName(name)
}

// StopRecordsPrefix is where the agent of user's server keeps the records
// of stops it did not choose (a spot interruption), one object each,
// beside the user's bundles: only that user's server may write there.
func StopRecordsPrefix(user string) string { return BundlesPrefix + user + "/stops/" }

// StopRecordName is the name of user's stop record for a stop at at
// (UTC, to the second: a second record of the same stop is refused).
func StopRecordName(user string, at time.Time) string {
	return StopRecordsPrefix(user) + at.UTC().Format("20060102T150405Z") + ".json"
}

// PutBundle stores the git bundle at path as BundleName(user, base of path),
// never replacing an older bundle, and returns the name it used. Bundles
// are written once: give each a unique file name, such as
// <branch>-<UTC time>.bundle. Storing the same bundle again is not an
// error (a save that finds nothing new reuses its last bundle).
func PutBundle(ctx context.Context, s Store, user, path string) (string, error) {
	name, err := BundleName(user, filepath.Base(path))
	if err != nil {
		return "", err
	}
	err = PutFile(ctx, s, path, name, PutOptions{}, nil)
	if errors.Is(err, ErrExists) {
		if obj, serr := s.Stat(ctx, name); serr == nil && obj.SHA256 != "" {
			if sum, herr := fileSHA256(path); herr == nil && sum == obj.SHA256 {
				return name, nil
			}
		}
	}
	return name, err
}

// fileSHA256 is the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type countingReader struct {
	r io.Reader
	p Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.Add(int64(n))
	}
	return n, err
}

type nopProgress struct{}

func (nopProgress) Start(string, int64) {}
func (nopProgress) Add(int64)           {}

func orNop(p Progress) Progress {
	if p == nil {
		return nopProgress{}
	}
	return p
}
