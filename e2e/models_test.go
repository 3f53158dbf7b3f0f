package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spinbook/spinbook/internal/models/modelstest"
)

// modelWorld is a config whose model store is a fresh versitygw bucket or
// directory, with the secret key read from a 0600 file.
type modelWorld struct {
	kind    string // "s3" or "file"
	config  string
	env     []string
	url     string
	srv     *modelstest.Server // s3 only
	dir     string             // file only: the store's directory
	canary  string
	section string // the models: section of the config
}

func newModelWorld(t *testing.T, kind string) *modelWorld {
	t.Helper()
	m := &modelWorld{kind: kind, canary: "models-canary-" + newID()}
	switch kind {
	case "s3":
		m.srv = modelstest.Start(t, m.canary)
		keyFile := filepath.Join(t.TempDir(), "models-secret")
		if err := os.WriteFile(keyFile, []byte(m.canary+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.url = "s3://" + m.srv.Bucket + "/team/"
		m.section = fmt.Sprintf("models:\n  url: %s\n  endpoint: %s\n  path_style: true\n  access_key_id: %s\n  secret_access_key: ${file:%s}\n",
			m.url, m.srv.Endpoint, m.srv.AccessKey, keyFile)
	case "file":
		m.dir = t.TempDir()
		m.url = "file://" + m.dir + "/"
		m.section = fmt.Sprintf("models:\n  url: %s\n", m.url)
	}
	m.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	if err := os.WriteFile(m.config, []byte(m.section), 0o644); err != nil {
		t.Fatal(err)
	}
	m.env = append(os.Environ(), "SPINBOOK_CONFIG="+m.config)
	return m
}

// objectFile is where the store keeps name's bytes on disk.
func (m *modelWorld) objectFile(name string) string {
	if m.kind == "s3" {
		return filepath.Join(m.srv.Dir, m.srv.Bucket, "team", name)
	}
	return filepath.Join(m.dir, name)
}

// spinbook runs the binary with the world's config in dir.
func (m *modelWorld) spinbook(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir = m.env, dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run spinbook %q: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// writeRandom writes size bytes from a fast seeded PRNG to path and
// returns their SHA-256.
func writeRandom(t *testing.T, path string, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(uint64(size), 42))
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
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// TestModelsCommands drives `spinbook models` against both stores: put,
// ls, get (to a file and to stdout), overwrite refused without --force, a
// corrupted object refused on get with no file left, rm, hostile names
// refused with exit 2, and the secret key nowhere in argv, environments
// of other processes, output or errors.
func TestModelsCommands(t *testing.T) {
	for _, kind := range []string{"s3", "file"} {
		t.Run(kind, func(t *testing.T) {
			m := newModelWorld(t, kind)
			leaks := watchForLeaks(t, m.canary)
			work := t.TempDir()
			sum := writeRandom(t, filepath.Join(work, "model.bin"), 48<<20+3)
			run := func(args ...string) result {
				t.Helper()
				r := m.spinbook(t, work, args...)
				leaks.check(t, "spinbook "+strings.Join(args, " "), r.String())
				return r
			}

			if r := run("models", "put", "model.bin", "churn/model-v1.bin"); r.code != 0 || !strings.Contains(r.stdout, sum) {
				t.Fatalf("put: %s", r)
			}
			r := run("models", "ls", "--json", "churn/")
			var list []struct {
				Name     string    `json:"name"`
				Size     int64     `json:"size"`
				Modified time.Time `json:"modified"`
				SHA256   string    `json:"sha256"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 ||
				list[0].Name != "churn/model-v1.bin" || list[0].Size != 48<<20+3 || list[0].SHA256 != sum || list[0].Modified.IsZero() {
				t.Fatalf("ls --json churn/ = %+v (%v), want the model with size and sha256: %s", list, err, r)
			}
			if r := run("models", "ls"); r.code != 0 || !strings.Contains(r.stdout, "churn/model-v1.bin") || !strings.Contains(r.stdout, sum) {
				t.Fatalf("ls: %s", r)
			}

			r = run("models", "put", "model.bin", "churn/model-v1.bin")
			if r.code == 0 || !strings.Contains(r.stderr, "--force") || !strings.Contains(r.stderr, m.url) {
				t.Fatalf("a second put without --force must fail naming the store and --force: %s", r)
			}
			if r := run("models", "put", "model.bin", "churn/model-v1.bin", "--force"); r.code != 0 {
				t.Fatalf("put --force: %s", r)
			}

			if r := run("models", "get", "churn/model-v1.bin"); r.code != 0 {
				t.Fatalf("get: %s", r)
			}
			if got := sha256File(t, filepath.Join(work, "model-v1.bin")); got != sum {
				t.Fatalf("fetched file sha256 %s, want %s", got, sum)
			}
			r = run("models", "get", "churn/model-v1.bin", "-")
			if h := sha256.Sum256([]byte(r.stdout)); r.code != 0 || hex.EncodeToString(h[:]) != sum {
				t.Fatalf("get - wrote %d bytes (exit %d), want the model's; stderr: %s", len(r.stdout), r.code, r.stderr)
			}

			// Corrupt the stored bytes behind the store's back.
			f, err := os.OpenFile(m.objectFile("churn/model-v1.bin"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("corrupt"), 1<<20)
			f.Close()
			dest := filepath.Join(t.TempDir(), "out")
			os.Mkdir(dest, 0o755)
			r = run("models", "get", "churn/model-v1.bin", filepath.Join(dest, "m.bin"))
			if r.code != 1 || !strings.Contains(r.stderr, "SHA-256 mismatch") || !strings.Contains(r.stderr, m.url) {
				t.Fatalf("get of a corrupted model: want exit 1 and a SHA-256 mismatch naming the store: %s", r)
			}
			if entries, _ := os.ReadDir(dest); len(entries) != 0 {
				t.Fatalf("a failed get left %v behind", entries)
			}
			if r := run("models", "get", "churn/model-v1.bin", "-"); r.code != 1 || !strings.Contains(r.stderr, "SHA-256 mismatch") {
				t.Fatalf("get - of a corrupted model must exit 1 at the end: exit %d, stderr %s", r.code, r.stderr)
			}

			if r := run("models", "rm", "churn/model-v1.bin"); r.code != 0 {
				t.Fatalf("rm: %s", r)
			}
			r = run("models", "get", "churn/model-v1.bin")
			if r.code != 1 || !strings.Contains(r.stderr, "no such model") || !strings.Contains(r.stderr, m.url) || !strings.Contains(r.stderr, "spinbook models ls") {
				t.Fatalf("get after rm: want 'no such model' naming the store and ls: %s", r)
			}

			for _, name := range []string{"../../etc/passwd", "/abs", "a/../../b", "nul\x00byte", "new\nline"} {
				if strings.Contains(name, "\x00") {
					continue // argv cannot carry a NUL; the store tests cover it
				}
				for _, args := range [][]string{{"models", "put", "model.bin", name}, {"models", "get", name}, {"models", "rm", name}} {
					if r := run(args...); r.code != 2 || !strings.Contains(r.stderr, "invalid model name") {
						t.Errorf("spinbook %q: want exit 2 and invalid model name: %s", args, r)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(work, "passwd")); err == nil {
				t.Error("a hostile get wrote a file")
			}
			if m.kind == "s3" {
				leaks.scanTree(t, m.srv.Dir, "")
			}
		})
	}
}

// TestModelsErrorsNameTheStore: an unreachable endpoint and a missing
// bucket are reported with the store's URL and what to check, exit 1; an
// unknown scheme and a missing secret are config errors, exit 2; none
// carries the secret key.
func TestModelsErrorsNameTheStore(t *testing.T) {
	m := newModelWorld(t, "s3")
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "m.bin"), []byte("model"), 0o644)
	write := func(section string) {
		if err := os.WriteFile(m.config, []byte(section), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, r result, code int, want ...string) {
		t.Helper()
		if strings.Contains(r.String(), m.canary) {
			t.Errorf("%s: the output carries the secret key", what)
		}
		if r.code != code {
			t.Errorf("%s: exit %d, want %d: %s", what, r.code, code, r)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q: %s", what, w, r)
			}
		}
	}
	write(strings.Replace(m.section, m.srv.Endpoint, strings.Replace(m.srv.Endpoint, "127.0.0.1", "127.0.0.2", 1), 1))
	check("unreachable endpoint", m.spinbook(t, work, "models", "ls"), 1, "cannot reach the store", "models.endpoint", m.url)
	write(strings.Replace(m.section, "s3://models/", "s3://no-such-bucket/", 1))
	check("missing bucket", m.spinbook(t, work, "models", "put", "m.bin"), 1, "does not exist", "s3://no-such-bucket/team/", "models.url")
	write(strings.Replace(m.section, "s3://models/", "gs://models/", 1))
	check("unknown scheme", m.spinbook(t, work, "models", "ls"), 2, "gs://models/team/", "unknown scheme")
	write(strings.Replace(m.section, "secret_access_key: ${file:", "secret_access_key: ${file:/nonexistent", 1))
	check("missing secret", m.spinbook(t, work, "models", "ls"), 2, "models.secret_access_key", "no such file")
}

// TestModelsPutKilled: a put killed with SIGKILL in the middle of a
// multipart upload leaves no object under its name (only an incomplete
// upload, which no get or ls sees); in a file store, no file. A put
// interrupted with SIGINT (Ctrl-C) also aborts its multipart upload.
func TestModelsPutKilled(t *testing.T) {
	for _, tc := range []struct {
		kind string
		sig  syscall.Signal
	}{{"s3", syscall.SIGKILL}, {"file", syscall.SIGKILL}, {"s3", syscall.SIGINT}} {
		t.Run(tc.kind+"-"+tc.sig.String(), func(t *testing.T) {
			m := newModelWorld(t, tc.kind)
			work := t.TempDir()
			writeRandom(t, filepath.Join(work, "big.bin"), 400<<20)

			cmd := exec.Command(bin, "models", "put", "big.bin", "big/model.bin")
			cmd.Env, cmd.Dir = m.env, work
			var errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })

			// Kill it once some of the bytes have reached the store.
			started := func() bool {
				if m.kind == "file" {
					found := false
					filepath.WalkDir(filepath.Join(m.dir, ".spinbook-partial"), func(_ string, d fs.DirEntry, err error) error {
						if err == nil && !d.IsDir() {
							if fi, err := d.Info(); err == nil && fi.Size() > 8<<20 {
								found = true
							}
						}
						return nil
					})
					return found
				}
				out, err := m.srv.Client(t).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(m.srv.Bucket)})
				if err != nil || len(out.Uploads) == 0 {
					return false
				}
				parts, err := m.srv.Client(t).ListParts(t.Context(), &s3.ListPartsInput{Bucket: aws.String(m.srv.Bucket), Key: out.Uploads[0].Key, UploadId: out.Uploads[0].UploadId})
				return err == nil && len(parts.Parts) > 0
			}
			deadline := time.Now().Add(2 * time.Minute)
			for !started() {
				select {
				case <-exited:
					t.Fatalf("put ended before it could be killed mid-way: %s", errb.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("no upload in progress after 2 minutes")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cmd.Process.Signal(tc.sig)
			<-exited
			if cmd.ProcessState.Success() {
				t.Fatalf("put exited 0 after %v", tc.sig)
			}
			if tc.sig == syscall.SIGINT {
				out, err := m.srv.Client(t).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(m.srv.Bucket)})
				if err != nil || len(out.Uploads) != 0 {
					t.Fatalf("after Ctrl-C the multipart upload is still there (%v): %d uploads; stderr: %s", err, len(out.Uploads), errb.String())
				}
			}

			if r := m.spinbook(t, work, "models", "ls", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
				t.Fatalf("ls after a killed put: want [], got %s", r)
			}
			if r := m.spinbook(t, work, "models", "get", "big/model.bin"); r.code != 1 || !strings.Contains(r.stderr, "no such model") {
				t.Fatalf("get after a killed put: want no such model, got %s", r)
			}
			if _, err := os.Stat(m.objectFile("big/model.bin")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a killed put left %s: %v", m.objectFile("big/model.bin"), err)
			}
			// And a new put of the same name goes through.
			if r := m.spinbook(t, work, "models", "put", "big.bin", "big/model.bin"); r.code != 0 {
				t.Fatalf("put after a killed put: %s", r)
			}
		})
	}
}

// TestModelsInsideServer: in a server of the local backend running the
// venv's JupyterLab, a kernel fetches a model with `!spinbook models get`
// (the agent put spinbook on PATH and gave it a config), with boto3 and
// with `aws s3 cp` (the venv's, activated; the agent wrote
// ~/.aws/credentials and config and AWS_ENDPOINT_URL_S3, which both honour:
// no endpoint is passed); the secret key is in no argv, no log, no
// environment and no file but the 0600 credential files.
func TestModelsInsideServer(t *testing.T) {
	lab := jupyterFlavour(t, flavourLab4)
	m := newModelWorld(t, "s3")
	leaks := watchForLeaks(t, m.canary) // registered first: it checks last, after down
	work := t.TempDir()
	sum := writeRandom(t, filepath.Join(work, "model.bin"), 20<<20+5)
	if r := m.spinbook(t, work, "models", "put", "model.bin", "churn/model.bin"); r.code != 0 {
		t.Fatalf("put: %s", r)
	}

	const user = "modeller"
	w := newWorld(t, lab.config+m.section)
	w.users[user] = true
	r := w.run("up", "--json", "--user", user)
	leaks.check(t, "up", r.String())
	if r.code != 0 {
		t.Fatalf("up: %s", leaks.hide(r.String()))
	}
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || !s.Ready {
		t.Fatalf("up --json: %v\n%s", err, r)
	}
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %s", resp.Status)
	}
	kernel := startKernel(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, kernel, b.origin())
	if err != nil {
		t.Fatalf("kernel websocket: %v", err)
	}
	defer conn.CloseNow()

	out := execute(ctx, t, conn, `
import subprocess, hashlib, os
r = subprocess.run(["spinbook", "models", "get", "churn/model.bin", "fetched.bin"], capture_output=True, text=True)
print("exit", r.returncode)
print("stderr", r.stderr.replace("\n", " | "))
print("sha256", hashlib.sha256(open("fetched.bin", "rb").read()).hexdigest() if r.returncode == 0 else "-")
`)
	if !strings.Contains(out, "exit 0\n") || !strings.Contains(out, "sha256 "+sum) {
		t.Fatalf("!spinbook models get in a kernel:\n%s", leaks.hide(out))
	}

	out = execute(ctx, t, conn, fmt.Sprintf(`
import boto3, hashlib, os, shutil
boto3.client("s3").download_file(%q, "team/churn/model.bin", "boto.bin")
print("sha256", hashlib.sha256(open("boto.bin", "rb").read()).hexdigest())
print("pid", os.getpid())
print("aws", shutil.which("aws"))
`, m.srv.Bucket))
	if !strings.Contains(out, "sha256 "+sum) {
		t.Fatalf("boto3 download_file in a kernel:\n%s", leaks.hide(out))
	}
	if !strings.Contains(out, "aws "+lab.venv+"/bin/aws\n") {
		t.Errorf("the kernel's aws is not the venv's (%s/bin/aws):\n%s", lab.venv, out)
	}
	cli := execute(ctx, t, conn, fmt.Sprintf(`
import hashlib, subprocess
r = subprocess.run(["aws", "s3", "cp", "--only-show-errors", "s3://%s/team/churn/model.bin", "cli.bin"], capture_output=True, text=True)
print("exit", r.returncode, r.stderr.replace("\n", " | "))
print("sha256", hashlib.sha256(open("cli.bin", "rb").read()).hexdigest() if r.returncode == 0 else "-")
`, m.srv.Bucket))
	if !strings.Contains(cli, "exit 0") || !strings.Contains(cli, "sha256 "+sum) {
		t.Fatalf("aws s3 cp in a kernel:\n%s", leaks.hide(cli))
	}
	var kernelPID int
	fmt.Sscanf(out[strings.Index(out, "pid "):], "pid %d", &kernelPID)
	env := environ(t, kernelPID)
	var credFile, cfgFile string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_SHARED_CREDENTIALS_FILE":
			credFile = v
		case "SPINBOOK_CONFIG":
			cfgFile = v
		case "AWS_ENDPOINT_URL_S3":
			if v != m.srv.Endpoint {
				t.Errorf("AWS_ENDPOINT_URL_S3 = %q, want %q", v, m.srv.Endpoint)
			}
		}
	}
	for _, f := range []string{credFile, cfgFile} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%q: %v, mode %v; want a 0600 file", f, err, fi)
		}
	}
	if data, _ := os.ReadFile(credFile); !bytes.Contains(data, []byte("[default]")) || !bytes.Contains(data, []byte(m.canary)) {
		t.Errorf("%s holds no [default] profile with the key", credFile)
	}
	conn.Close(1000, "")

	r = w.run("logs", "--user", user)
	leaks.check(t, "the server log", r.String())
	if r := w.run("down", "--user", user); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	// The key is in the two 0600 files meant for it and in no other file
	// the server wrote.
	credDir := filepath.Dir(filepath.Dir(credFile))
	allowed := map[string]bool{credFile: true, filepath.Join(credDir, ".spinbook", "models-secret-access-key"): true}
	filepath.WalkDir(w.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte(m.canary)) && !allowed[p] {
			t.Errorf("the secret key is in %s", p)
		}
		if allowed[p] {
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
		return nil
	})
}
