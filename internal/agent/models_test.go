package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/models"
	"github.com/spinbook/spinbook/internal/secret"
)

// TestPrepareModels: the agent gives kernels a spinbook config whose keys
// are references to 0600 files, 0600 AWS credentials and config files, and
// the environment that points at them; the secret is in no other file and
// not in the environment.
func TestPrepareModels(t *testing.T) {
	const secretKey = "models-secret-CANARY-0123456789"
	dir := filepath.Join(t.TempDir(), "credentials")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "inherited-should-go")
	var log bytes.Buffer
	a := New(backend.AgentSpec{
		User: "alice", Workspace: t.TempDir(), CredentialsDir: dir,
		Models: &backend.Models{URL: "s3://models/team/", Endpoint: "http://127.0.0.1:7070", PathStyle: true,
			AccessKeyID: "AKEXAMPLE", SecretAccessKey: secretKey},
	}, slog.New(slog.NewTextHandler(&log, nil)), &log)
	env, err := a.prepareModels()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string {
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v
			}
		}
		return ""
	}
	if _, ok := os.LookupEnv("AWS_SECRET_ACCESS_KEY"); ok {
		t.Error("an inherited AWS_SECRET_ACCESS_KEY would beat the credentials file; it must go")
	}
	if got := get("AWS_ENDPOINT_URL_S3"); got != "http://127.0.0.1:7070" {
		t.Errorf("AWS_ENDPOINT_URL_S3 = %q", got)
	}
	creds, cfgPath := get("AWS_SHARED_CREDENTIALS_FILE"), get("SPINBOOK_CONFIG")
	for _, f := range []string{creds, get("AWS_CONFIG_FILE"), cfgPath, filepath.Join(dir, ".spinbook", "models-secret-access-key")} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%q: %v; want a 0600 file", f, err)
		}
	}
	if data, _ := os.ReadFile(creds); string(data) != "[default]\naws_access_key_id = AKEXAMPLE\naws_secret_access_key = "+secretKey+"\n" {
		t.Errorf("credentials file:\n%s", data)
	}
	if data, _ := os.ReadFile(get("AWS_CONFIG_FILE")); !bytes.Contains(data, []byte("addressing_style = path")) || !bytes.Contains(data, []byte("region = us-east-1")) {
		t.Errorf("aws config file:\n%s", data)
	}

	// The in-server config loads, and its references give the keys back.
	data, _ := os.ReadFile(cfgPath)
	if bytes.Contains(data, []byte(secretKey)) {
		t.Fatalf("the spinbook config holds the key itself:\n%s", data)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("the in-server config does not load: %v\n%s", err, data)
	}
	if cfg.Models.URL != "s3://models/team/" || !cfg.Models.PathStyle || cfg.Models.Endpoint != "http://127.0.0.1:7070" {
		t.Errorf("in-server config models = %+v", cfg.Models)
	}
	if got, err := secret.Resolve(t.Context(), cfg.Models.SecretAccessKey); err != nil || got != secretKey {
		t.Errorf("secret_access_key resolves to %q, %v", got, err)
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.Contains(kv, secretKey) }) {
		t.Error("the secret is in the environment")
	}
	if strings.Contains(log.String(), secretKey) {
		t.Errorf("the secret is in the log:\n%s", log.String())
	}
}

// TestSpinbookOnPath: the agent's own directory comes first on PATH.
func TestSpinbookOnPath(t *testing.T) {
	env, err := spinbookOnPath("/usr/bin:/bin")
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if want := "PATH=" + filepath.Dir(exe) + ":/usr/bin:/bin"; len(env) != 1 || env[0] != want {
		t.Errorf("env = %q, want %q", env, want)
	}
}

// TestModelStoreForBundles: the agent opens the configured store, where a
// save's bundle goes under spinbook/bundles/<user>/; no store, no error.
func TestModelStoreForBundles(t *testing.T) {
	none := New(backend.AgentSpec{User: "alice", Workspace: t.TempDir()}, slog.New(slog.DiscardHandler), &bytes.Buffer{})
	if s, err := none.modelStore(t.Context()); s != nil || err != nil {
		t.Fatalf("modelStore without a store = %v, %v; want nil, nil", s, err)
	}
	dir := t.TempDir()
	a := New(backend.AgentSpec{User: "alice", Workspace: t.TempDir(), Models: &backend.Models{URL: "file://" + dir + "/"}},
		slog.New(slog.DiscardHandler), &bytes.Buffer{})
	store, err := a.modelStore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "main-20261125T210000Z.bundle")
	os.WriteFile(bundle, []byte("# v2 git bundle\n"), 0o644)
	name, err := models.PutBundle(t.Context(), store, a.spec.User, bundle)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(data) != "# v2 git bundle\n" || name != "spinbook/bundles/alice/main-20261125T210000Z.bundle" {
		t.Fatalf("bundle stored as %q: %q, %v", name, data, err)
	}
}
