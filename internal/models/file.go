package models

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// fileStore keeps models as files under one directory, opened as an
// os.Root: no name, symlink or .. inside the directory can make it read or
// write anything outside. Each file's SHA-256 is its extended attribute
// user.spinbook.sha256, set before the file appears under its name.
type fileStore struct {
	url  string
	dir  string
	root *os.Root
}

const (
	xattrSHA256 = "user.spinbook.sha256"
	// partialDir holds files being written; its name starts with a dot, so
	// no valid model name can reach it.
	partialDir = ".spinbook-partial"
)

func openFile(raw string, u *url.URL) (*fileStore, error) {
	dir := u.Path
	if u.Host != "" && u.Host != "localhost" || !filepath.IsAbs(dir) || u.RawQuery != "" {
		return nil, &Error{Op: "open", URL: raw, Err: errors.New("not a local directory"),
			Hint: "write file:///absolute/dir/ (three slashes)"}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		e := &Error{Op: "open", URL: raw, Err: err, Hint: "check models.url"}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Kind, e.Hint = ErrNoBucket, fmt.Sprintf("create the directory %s or fix models.url", dir)
		case errors.Is(err, fs.ErrPermission):
			e.Kind, e.Hint = ErrAccessDenied, fmt.Sprintf("check the permissions of %s", dir)
		}
		return nil, e
	}
	return &fileStore{url: raw, dir: dir, root: root}, nil
}

func (s *fileStore) URL() string { return s.url }

func (s *fileStore) fail(op, name string, err error) error {
	e := &Error{Op: op, Name: name, URL: s.url, Err: err}
	switch {
	case errors.Is(err, ErrInvalidName):
		// The cause says it all, and wraps ErrInvalidName.
	case errors.Is(err, ErrChecksum):
		e.Kind = ErrChecksum
	case errors.Is(err, fs.ErrNotExist):
		e.Kind, e.Err, e.Hint = ErrNotFound, nil, "list the store with `spinbook models ls`"
	case errors.Is(err, fs.ErrExist):
		e.Kind, e.Err, e.Hint = ErrExists, nil, "pass --force to replace it"
	case errors.Is(err, fs.ErrPermission):
		e.Kind, e.Hint = ErrAccessDenied, fmt.Sprintf("check the permissions of %s", s.dir)
	case errors.Is(err, unix.ENOTSUP):
		e.Hint = "the directory's filesystem must support extended attributes (ext4, xfs, btrfs, tmpfs)"
	}
	return e
}

func (s *fileStore) Put(ctx context.Context, name string, r io.Reader, size int64, sum string, opts PutOptions) error {
	if err := ValidateName(name); err != nil {
		return s.fail("put", name, err)
	}
	if !validSum(sum) {
		return s.fail("put", name, fmt.Errorf("%q is not a SHA-256 in hex", sum))
	}
	if !opts.Force {
		if _, err := s.root.Lstat(name); err == nil {
			return s.fail("put", name, fs.ErrExist)
		}
	}
	if err := s.root.MkdirAll(partialDir, 0o700); err != nil {
		return s.fail("put", name, err)
	}
	s.removeStalePartials()
	if d := path.Dir(name); d != "." {
		if err := s.root.MkdirAll(d, 0o755); err != nil {
			return s.fail("put", name, err)
		}
	}
	tmp := path.Join(partialDir, randomName())
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return s.fail("put", name, err)
	}
	defer s.root.Remove(tmp) // after a successful link or rename, a no-op or the extra link
	err = copyCtx(ctx, f, newHashingReader(r, size, sum))
	if err == nil {
		err = unix.Fsetxattr(int(f.Fd()), xattrSHA256, []byte(strings.ToLower(sum)), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.fail("put", name, err)
	}
	if opts.Force {
		err = s.root.Rename(tmp, name)
	} else {
		err = s.root.Link(tmp, name) // fails if name appeared meanwhile
	}
	if err != nil {
		return s.fail("put", name, err)
	}
	s.syncDir(path.Dir(name))
	return nil
}

// stalePartial is the age after which a partial file is taken to be left
// by a put that was killed, and removed.
const stalePartial = 24 * time.Hour

// removeStalePartials removes what killed puts left in partialDir.
func (s *fileStore) removeStalePartials() {
	entries, _ := fs.ReadDir(s.root.FS(), partialDir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > stalePartial {
			s.root.Remove(path.Join(partialDir, e.Name()))
		}
	}
}

// syncDir makes a rename in dir durable.
func (s *fileStore) syncDir(dir string) {
	if d, err := s.root.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (s *fileStore) Get(ctx context.Context, name string) (io.ReadCloser, Object, error) {
	if err := ValidateName(name); err != nil {
		return nil, Object{}, s.fail("get", name, err)
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil, Object{}, s.fail("get", name, err)
	}
	o, err := s.describe(f, name)
	if err != nil {
		f.Close()
		return nil, Object{}, s.fail("get", name, err)
	}
	body := &verifiedBody{hashingReader: newHashingReader(ctxReader{ctx, f}, o.Size, o.SHA256), close: f.Close}
	return body, o, nil
}

func (s *fileStore) Stat(ctx context.Context, name string) (Object, error) {
	if err := ValidateName(name); err != nil {
		return Object{}, s.fail("stat", name, err)
	}
	f, err := s.root.Open(name)
	if err != nil {
		return Object{}, s.fail("stat", name, err)
	}
	defer f.Close()
	o, err := s.describe(f, name)
	if err != nil {
		return Object{}, s.fail("stat", name, err)
	}
	return o, nil
}

// describe reads what the store knows about the open file f.
func (s *fileStore) describe(f *os.File, name string) (Object, error) {
	fi, err := f.Stat()
	if err != nil {
		return Object{}, err
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fs.ErrNotExist // a directory is a prefix, not a model
	}
	o := Object{Name: name, Size: fi.Size(), Modified: fi.ModTime().UTC()}
	buf := make([]byte, 128)
	if n, err := unix.Fgetxattr(int(f.Fd()), xattrSHA256, buf); err == nil && validSum(string(buf[:n])) {
		o.SHA256 = string(buf[:n])
	}
	return o, nil
}

func (s *fileStore) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, s.fail("ls", prefix, err)
	}
	// Walk only the directory the prefix is in.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var out []Object
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != "." {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		f, err := s.root.Open(p)
		if err != nil {
			return err
		}
		o, err := s.describe(f, p)
		f.Close()
		if err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, s.fail("ls", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *fileStore) Remove(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return s.fail("rm", name, err)
	}
	fi, err := s.root.Lstat(name)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err == nil {
		err = s.root.Remove(name)
	}
	if err != nil {
		return s.fail("rm", name, err)
	}
	// Drop directories the removal left empty, up to the store's own.
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if s.root.Remove(d) != nil {
			break
		}
	}
	return nil
}

func randomName() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// copyCtx copies r to w, stopping when ctx is done.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) error {
	_, err := io.CopyBuffer(w, ctxReader{ctx, r}, make([]byte, 1<<20))
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
