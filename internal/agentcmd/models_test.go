package agentcmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/models/modelstest"
)

// TestModelsInServer: in a server, `spinbook models` is the agent binary:
// with the config the agent writes (keys as ${file:...} references, values
// quoted as JSON) it puts, lists, gets and removes in a real S3 server,
// refuses a second put without --force, and never prints a key.
func TestModelsInServer(t *testing.T) {
	const canary = "CANARY-models-secret-key-123456"
	srv := modelstest.Start(t, canary)
	dir := t.TempDir()
	idFile, keyFile := filepath.Join(dir, "id"), filepath.Join(dir, "key")
	os.WriteFile(idFile, []byte(srv.AccessKey+"\n"), 0o600)
	os.WriteFile(keyFile, []byte(canary+"\n"), 0o600)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("# Written by the spinbook agent\nmodels:\n  url: "+q("s3://"+srv.Bucket+"/team/")+"\n  endpoint: "+q(srv.Endpoint)+
		"\n  path_style: true\n  access_key_id: "+q("${file:"+idFile+"}")+"\n  secret_access_key: "+q("${file:"+keyFile+"}")+"\n"), 0o600)
	t.Setenv("SPINBOOK_CONFIG", cfg)
	model := filepath.Join(dir, "model.bin")
	os.WriteFile(model, []byte("weights"), 0o644)
	t.Chdir(dir)

	steps := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"models", "put", model, "churn/m.bin"}, exitOK, "stored churn/m.bin in s3://", ""},
		{[]string{"models", "put", model, "churn/m.bin"}, exitFailure, "", "--force"},
		{[]string{"models", "put", model, "churn/m.bin", "--force"}, exitOK, "stored churn/m.bin", ""},
		{[]string{"models", "ls", "--json", "churn/"}, exitOK, `"name": "churn/m.bin"`, ""},
		{[]string{"models", "get", "churn/m.bin", "-"}, exitOK, "weights", ""},
		{[]string{"models", "get", "churn/m.bin", filepath.Join(dir, "out.bin")}, exitOK, "fetched churn/m.bin", ""},
		{[]string{"models", "rm", "churn/m.bin"}, exitOK, "removed churn/m.bin", ""},
		{[]string{"models", "get", "churn/m.bin", "-"}, exitFailure, "", "no such model"},
		{[]string{"models", "put", model, "../escape"}, exitUsage, "", "invalid"},
		{[]string{"models", "mv", "a", "b"}, exitUsage, "", "want put FILE"},
	}
	for _, st := range steps {
		code, stdout, stderr := run(t, "", st.args...)
		if code != st.code || !strings.Contains(stdout, st.stdout) || !strings.Contains(strings.ToLower(stderr), strings.ToLower(st.stderr)) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", strings.Join(st.args[1:], " "), code, stdout, stderr, st.code, st.stdout, st.stderr)
		}
		if strings.Contains(stdout+stderr, canary) {
			t.Errorf("%s printed the secret key", strings.Join(st.args[1:], " "))
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "out.bin")); string(data) != "weights" {
		t.Errorf("get wrote %q", data)
	}

	t.Setenv("SPINBOOK_CONFIG", "")
	if code, _, stderr := run(t, "", "models", "ls"); code != exitUsage || !strings.Contains(stderr, "SPINBOOK_CONFIG") {
		t.Errorf("models ls without a config: exit %d, %q", code, stderr)
	}
}
