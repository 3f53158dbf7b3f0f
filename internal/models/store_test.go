package models_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/models"
	"github.com/spinbook/spinbook/internal/models/modelstest"
	"github.com/spinbook/spinbook/internal/models/s3sdk"
)

// backing is a store under test and a way behind its back to the file that
// holds an object's bytes.
type backing struct {
	store models.Store
	// file is the path of the file holding name's contents.
	file func(name string) string
	// outside is a directory next to the store that nothing may touch.
	outside string
}

// opener opens a store: models.Open (its own S3 store, without the SDK:
// the agent's), or s3sdk.Open (the command line's, through the AWS SDK).
type opener func(context.Context, models.Config) (models.Store, error)

// s3Openers are the two S3 stores, each tested alike.
var s3Openers = []struct {
	name string
	open opener
}{{"s3", s3sdk.Open}, {"s3lite", models.Open}}

// stores runs test against a versitygw bucket through either S3 store and
// against a file:// directory.
func stores(t *testing.T, test func(t *testing.T, b backing)) {
	for _, o := range s3Openers {
		t.Run(o.name, func(t *testing.T) { test(t, newS3Backing(t, o.open)) })
	}
	t.Run("file", func(t *testing.T) { test(t, newFileBacking(t)) })
}

func newS3Backing(t *testing.T, open opener) backing {
	srv := modelstest.Start(t, "")
	s, err := open(t.Context(), models.Config{
		URL:             "s3://" + srv.Bucket + "/team/",
		Endpoint:        srv.Endpoint,
		PathStyle:       true,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(srv.Dir, "outside")
	writeSentinel(t, outside)
	return backing{
		store:   s,
		file:    func(name string) string { return filepath.Join(srv.Dir, srv.Bucket, "team", name) },
		outside: outside,
	}
}

func newFileBacking(t *testing.T) backing {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := models.Open(t.Context(), models.Config{URL: "file://" + dir + "/"})
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(parent, "outside")
	writeSentinel(t, outside)
	// A symlink inside the store that points out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	return backing{store: s, file: func(name string) string { return filepath.Join(dir, name) }, outside: outside}
}

// writeSentinel makes dir with files named like the targets of hostile names.
func writeSentinel(t *testing.T, dir string) {
	for _, p := range []string{"etc/passwd", "b", "abs", "secret"} {
		f := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte("untouched "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot records every file under dir with its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			m[p] = string(data)
		}
		return nil
	})
	return m
}

// randomFile writes size bytes from a fast seeded PRNG and returns the
// path and the SHA-256.
func randomFile(t *testing.T, dir string, size int64, seed uint64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, "model.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		for i := 0; i < len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		n := min(left, int64(len(buf)))
		f.Write(buf[:n])
		h.Write(buf[:n])
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func mustSHA256(t *testing.T, path string) string {
	t.Helper()
	sum, err := models.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestRoundTrip: a 300 MB file put, listed, fetched and removed; the
// fetched file has the same SHA-256, which ls and the store also report.
func TestRoundTrip(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		const size = 300 << 20
		src, sum := randomFile(t, t.TempDir(), size, 1)
		name := "churn/model-v1.bin"
		if err := models.PutFile(ctx, b.store, src, name, models.PutOptions{}, nil); err != nil {
			t.Fatalf("put: %v", err)
		}
		list, err := b.store.List(ctx, "churn/")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Name != name || list[0].Size != size || list[0].SHA256 != sum || list[0].Modified.IsZero() {
			t.Fatalf("ls churn/ = %+v, want one %s of %d bytes with sha256 %s", list, name, size, sum)
		}
		if all, _ := b.store.List(ctx, ""); len(all) != 1 {
			t.Fatalf("ls = %+v, want one object", all)
		}
		if none, _ := b.store.List(ctx, "other/"); len(none) != 0 {
			t.Fatalf("ls other/ = %+v, want nothing", none)
		}

		dir := t.TempDir()
		o, dest, err := models.GetFile(ctx, b.store, name, dir, nil)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if dest != filepath.Join(dir, "model-v1.bin") || o.SHA256 != sum {
			t.Errorf("get wrote %s (sha256 %s), want %s/model-v1.bin (sha256 %s)", dest, o.SHA256, dir, sum)
		}
		if got := mustSHA256(t, dest); got != sum {
			t.Fatalf("fetched file has sha256 %s, want %s", got, sum)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("get left %d entries in the target directory, want just the file", len(entries))
		}

		var out bytes.Buffer
		if _, err := models.Copy(ctx, b.store, name, &out, nil); err != nil {
			t.Fatalf("get to a writer: %v", err)
		}
		if h := sha256.Sum256(out.Bytes()); hex.EncodeToString(h[:]) != sum {
			t.Fatal("streamed contents differ")
		}

		if err := b.store.Remove(ctx, name); err != nil {
			t.Fatalf("rm: %v", err)
		}
		if _, err := b.store.Stat(ctx, name); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("stat after rm = %v, want ErrNotFound", err)
		}
		if err := b.store.Remove(ctx, name); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("second rm = %v, want ErrNotFound", err)
		}
		if list, _ := b.store.List(ctx, ""); len(list) != 0 {
			t.Fatalf("ls after rm = %+v, want nothing", list)
		}
	})
}

// TestOverwriteRefused: a second put of a name fails without Force and
// leaves the first contents; with Force it replaces them.
func TestOverwriteRefused(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		put := func(content string, force bool) error {
			h := sha256.Sum256([]byte(content))
			return b.store.Put(ctx, "m.pkl", strings.NewReader(content), int64(len(content)), hex.EncodeToString(h[:]), models.PutOptions{Force: force})
		}
		if err := put("first", false); err != nil {
			t.Fatal(err)
		}
		err := put("second", false)
		if !errors.Is(err, models.ErrExists) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), b.store.URL()) {
			t.Fatalf("second put = %v, want models.ErrExists naming the store and --force", err)
		}
		if got := readAll(t, b.store, "m.pkl"); got != "first" {
			t.Fatalf("after a refused put the model holds %q, want \"first\"", got)
		}
		if err := put("second", true); err != nil {
			t.Fatalf("put --force: %v", err)
		}
		if got := readAll(t, b.store, "m.pkl"); got != "second" {
			t.Fatalf("after put --force the model holds %q, want \"second\"", got)
		}
	})
}

// TestPutChecksWhatItSends: bytes that do not match the given SHA-256 (a
// file that changed after it was hashed) are refused and nothing is stored.
func TestPutChecksWhatItSends(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		h := sha256.Sum256([]byte("original"))
		for _, size := range []int64{8, 40 << 20} { // one request, and multipart
			body := bytes.Repeat([]byte("x"), int(size))
			err := b.store.Put(ctx, "changed.bin", bytes.NewReader(body), size, hex.EncodeToString(h[:]), models.PutOptions{})
			if !errors.Is(err, models.ErrChecksum) {
				t.Fatalf("put of %d bytes with a wrong sha256 = %v, want ErrChecksum", size, err)
			}
			if _, err := b.store.Stat(ctx, "changed.bin"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("after a refused put, stat = %v, want ErrNotFound", err)
			}
		}
	})
}

// TestCorruptionDetected: a stored object changed behind the store's back
// fails get with models.ErrChecksum and leaves no file.
func TestCorruptionDetected(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		src, _ := randomFile(t, t.TempDir(), 20<<20+17, 2)
		if err := models.PutFile(ctx, b.store, src, "a/m.bin", models.PutOptions{}, nil); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(b.file("a/m.bin"), os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open the stored file behind the store's back: %v", err)
		}
		if _, err := f.WriteAt([]byte{0xde, 0xad}, 12345); err != nil {
			t.Fatal(err)
		}
		f.Close()

		dir := t.TempDir()
		_, _, err = models.GetFile(ctx, b.store, "a/m.bin", filepath.Join(dir, "m.bin"), nil)
		if !errors.Is(err, models.ErrChecksum) {
			t.Fatalf("get of a corrupted object = %v, want ErrChecksum", err)
		}
		if !strings.Contains(err.Error(), "a/m.bin") || !strings.Contains(err.Error(), b.store.URL()) {
			t.Errorf("error %q does not name the model and the store", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("a failed get left %v in the target directory", entries)
		}
		if _, err := models.Copy(ctx, b.store, "a/m.bin", io.Discard, nil); !errors.Is(err, models.ErrChecksum) {
			t.Fatalf("streaming a corrupted object = %v, want models.ErrChecksum at the end", err)
		}
	})
}

// TestHostileNames: names that could reach outside the store are refused
// by put, get, stat and rm, and nothing outside is touched.
func TestHostileNames(t *testing.T) {
	hostile := []string{
		"../../etc/passwd", "../outside/secret", "/abs", "/etc/passwd", "a/../../b", "a/./b", "..", ".",
		"a//b", "a/", "", "nul\x00byte", "new\nline", "tab\tname", "back\\slash", ".hidden", "a/.spinbook-partial/x",
		strings.Repeat("x", models.MaxNameLen+1),
	}
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		before := snapshot(t, b.outside)
		content := "hostile"
		h := sha256.Sum256([]byte(content))
		sum := hex.EncodeToString(h[:])
		for _, name := range hostile {
			if err := b.store.Put(ctx, name, strings.NewReader(content), int64(len(content)), sum, models.PutOptions{Force: true}); !errors.Is(err, models.ErrInvalidName) {
				t.Errorf("put %q = %v, want ErrInvalidName", name, err)
			}
			if _, _, err := b.store.Get(ctx, name); !errors.Is(err, models.ErrInvalidName) {
				t.Errorf("get %q = %v, want ErrInvalidName", name, err)
			}
			if _, err := b.store.Stat(ctx, name); !errors.Is(err, models.ErrInvalidName) {
				t.Errorf("stat %q = %v, want ErrInvalidName", name, err)
			}
			if err := b.store.Remove(ctx, name); !errors.Is(err, models.ErrInvalidName) {
				t.Errorf("rm %q = %v, want ErrInvalidName", name, err)
			}
		}
		// In the file store, "escape" is a symlink to the outside directory:
		// valid names through it must not reach it either.
		for _, name := range []string{"escape/secret", "escape/new"} {
			b.store.Put(ctx, name, strings.NewReader(content), int64(len(content)), sum, models.PutOptions{Force: true})
			if rc, _, err := b.store.Get(ctx, name); err == nil {
				data, _ := io.ReadAll(rc)
				rc.Close()
				if strings.Contains(string(data), "untouched") {
					t.Errorf("get %q read a file outside the store", name)
				}
			}
			b.store.Remove(ctx, name)
		}
		after := snapshot(t, b.outside)
		if len(after) != len(before) {
			t.Errorf("files outside the store changed: before %v, after %v", before, after)
		}
		for p, c := range before {
			if after[p] != c {
				t.Errorf("%s outside the store changed to %q", p, after[p])
			}
		}
	})
}

// TestListPrefixRefusesHostile: ls refuses prefixes that climb out.
func TestListPrefixRefusesHostile(t *testing.T) {
	b := newFileBacking(t)
	for _, p := range []string{"../", "/", "a/../..", "x\x00"} {
		if _, err := b.store.List(t.Context(), p); !errors.Is(err, models.ErrInvalidName) {
			t.Errorf("ls %q = %v, want ErrInvalidName", p, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"m.pkl", "team/churn/model-v3.pkl", "a b/c (1).bin", "ünï/cødé", "spinbook/bundles/alice/x.bundle", strings.Repeat("y", models.MaxNameLen)} {
		if err := models.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
}

func readAll(t *testing.T, s models.Store, name string) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := models.Copy(t.Context(), s, name, &b, nil); err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return b.String()
}

// TestErrorsAreClear: each failure names the store's URL, says what to
// check, and never carries the secret key.
func TestErrorsAreClear(t *testing.T) {
	for _, o := range s3Openers {
		t.Run(o.name, func(t *testing.T) { testErrorsAreClear(t, o.open) })
	}
}

func testErrorsAreClear(t *testing.T, openStore opener) {
	const canary = "CANARY-secret-0123456789abcdef"
	srv := modelstest.Start(t, canary)
	ctx := t.Context()
	open := func(t *testing.T, url, endpoint, secret string) models.Store {
		s, err := openStore(ctx, models.Config{URL: url, Endpoint: endpoint, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	closedPort := func() string {
		// A port nothing listens on: versitygw's, after a copy of it is gone.
		return strings.Replace(srv.Endpoint, "127.0.0.1", "127.0.0.2", 1)
	}
	tests := []struct {
		name  string
		store func(t *testing.T) models.Store
		op    func(s models.Store) error
		kind  error
		hint  string
	}{
		{"no such model", func(t *testing.T) models.Store { return open(t, "s3://models/p/", srv.Endpoint, canary) },
			func(s models.Store) error { _, _, err := s.Get(ctx, "nope.bin"); return err }, models.ErrNotFound, "spinbook models ls"},
		{"missing bucket", func(t *testing.T) models.Store { return open(t, "s3://no-such-bucket/", srv.Endpoint, canary) },
			func(s models.Store) error { _, err := s.Stat(ctx, "m"); return err }, models.ErrNoBucket, "models.url"},
		{"missing bucket on ls", func(t *testing.T) models.Store { return open(t, "s3://no-such-bucket/", srv.Endpoint, canary) },
			func(s models.Store) error { _, err := s.List(ctx, ""); return err }, models.ErrNoBucket, "models.url"},
		{"access denied", func(t *testing.T) models.Store { return open(t, "s3://models/", srv.Endpoint, "wrong-"+canary) },
			func(s models.Store) error { _, err := s.List(ctx, ""); return err }, models.ErrAccessDenied, "models.secret_access_key"},
		{"unreachable", func(t *testing.T) models.Store { return open(t, "s3://models/", closedPort(), canary) },
			func(s models.Store) error { _, err := s.Stat(ctx, "m"); return err }, models.ErrUnreachable, "models.endpoint"},
		{"unknown scheme", nil, func(models.Store) error {
			_, err := models.Open(ctx, models.Config{URL: "gs://bucket/x/", SecretAccessKey: canary})
			return err
		}, models.ErrUnknownScheme, "s3://"},
		{"missing directory", nil, func(models.Store) error {
			_, err := models.Open(ctx, models.Config{URL: "file:///nonexistent/spinbook-models/"})
			return err
		}, models.ErrNoBucket, "create the directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s models.Store
			if tt.store != nil {
				s = tt.store(t)
			}
			err := tt.op(s)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			msg := err.Error()
			if s != nil && !strings.Contains(msg, s.URL()) {
				t.Errorf("error %q does not name the store %s", msg, s.URL())
			}
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("error %q does not say to check %q", msg, tt.hint)
			}
			if strings.Contains(msg, canary) || strings.Contains(msg, srv.AccessKey) {
				t.Errorf("error %q carries a key", msg)
			}
		})
	}
}

// TestPutBundle: a git bundle goes to spinbook/bundles/<user>/<file>, is
// never replaced (storing the very same bundle again is fine), and user or
// file names cannot climb out.
func TestPutBundle(t *testing.T) {
	b := newFileBacking(t)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "main-20261125T210000Z.bundle")
	os.WriteFile(path, []byte("# v2 git bundle\n"), 0o644)
	name, err := models.PutBundle(ctx, b.store, "alice", path)
	if err != nil || name != "spinbook/bundles/alice/main-20261125T210000Z.bundle" {
		t.Fatalf("PutBundle = %q, %v", name, err)
	}
	if got := readAll(t, b.store, name); got != "# v2 git bundle\n" {
		t.Fatalf("stored bundle holds %q", got)
	}
	if again, err := models.PutBundle(ctx, b.store, "alice", path); err != nil || again != name {
		t.Fatalf("storing the same bundle again = %q, %v; want %q and no error", again, err, name)
	}
	os.WriteFile(path, []byte("# v2 git bundle\nother contents\n"), 0o644)
	if _, err := models.PutBundle(ctx, b.store, "alice", path); !errors.Is(err, models.ErrExists) {
		t.Fatalf("a different bundle under the same name = %v, want ErrExists", err)
	}
	if got := readAll(t, b.store, name); got != "# v2 git bundle\n" {
		t.Fatalf("the stored bundle was replaced: %q", got)
	}
	for _, user := range []string{"..", "a/b", ".x", ""} {
		if _, err := models.BundleName(user, "x.bundle"); !errors.Is(err, models.ErrInvalidName) {
			t.Errorf("BundleName(%q) = %v, want ErrInvalidName", user, err)
		}
	}
}

// TestConcurrentPutsOneWins: two puts of one name at once both pass the
// check up front, and still exactly one stores its bytes: the other fails
// with models.ErrExists (If-None-Match on S3, link(2) in a directory).
func TestConcurrentPutsOneWins(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		ctx := t.Context()
		errs := make(chan error, 2)
		for i := range 2 {
			body := bytes.Repeat([]byte{byte('a' + i)}, 24<<20)
			h := sha256.Sum256(body)
			go func() {
				errs <- b.store.Put(ctx, "race.bin", bytes.NewReader(body), int64(len(body)), hex.EncodeToString(h[:]), models.PutOptions{})
			}()
		}
		var ok, exists int
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.Is(err, models.ErrExists):
				exists++
			default:
				t.Fatalf("put: %v", err)
			}
		}
		if ok != 1 || exists != 1 {
			t.Fatalf("%d puts succeeded and %d were refused; want exactly one of each", ok, exists)
		}
		if got := readAll(t, b.store, "race.bin"); len(got) != 24<<20 || strings.Trim(got, got[:1]) != "" {
			t.Fatal("the stored model is not one put's bytes")
		}
	})
}

// TestEmptyModel: a zero-byte model round-trips and verifies.
func TestEmptyModel(t *testing.T) {
	stores(t, func(t *testing.T, b backing) {
		path := filepath.Join(t.TempDir(), "empty")
		os.WriteFile(path, nil, 0o644)
		if err := models.PutFile(t.Context(), b.store, path, "empty", models.PutOptions{}, nil); err != nil {
			t.Fatal(err)
		}
		o, dest, err := models.GetFile(t.Context(), b.store, "empty", t.TempDir(), nil)
		if err != nil || o.Size != 0 || o.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
			t.Fatalf("get = %+v, %v", o, err)
		}
		if fi, err := os.Stat(dest); err != nil || fi.Size() != 0 {
			t.Fatalf("fetched %s: %v", dest, err)
		}
	})
}
