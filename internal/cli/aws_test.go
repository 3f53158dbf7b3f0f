package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAWSRender: `aws render` writes both templates, as JSON, with no
// secret of the config in them, and needs no AWS at all.
func TestAWSRender(t *testing.T) {
	t.Setenv("SPINBOOK_CONFIG", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "spinbook.yaml")
	const canary = "CANARY-render-dw-password"
	os.WriteFile(cfg, []byte(`backend: aws
access: {allow: [203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24]}
warehouse: {host: dw.example, database: a, user: nb, password: `+canary+`}
aws: {site: team}
sizes: {gpu: {gpus: 1, instance_type: g5.2xlarge}}
`), 0o600)
	out := filepath.Join(dir, "review")
	code, stdout, stderr := runCLI(t, "aws", "render", "--config", cfg, "--user", "alice", "--size", "gpu", "--out", out)
	if code != 0 {
		t.Fatalf("aws render exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "PLAIN HTTP") {
		t.Errorf("no warning about plain HTTP without a certificate: %q", stderr)
	}
	for _, name := range []string{"spinbook-team.json", "spinbook-team-alice.json"} {
		p := filepath.Join(out, name)
		if !strings.Contains(stdout, p) {
			t.Errorf("stdout does not list %s: %q", p, stdout)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tpl struct{ Resources map[string]any }
		if err := json.Unmarshal(data, &tpl); err != nil || len(tpl.Resources) == 0 {
			t.Errorf("%s is not a template: %v", name, err)
		}
		if strings.Contains(string(data), canary) {
			t.Errorf("%s holds the warehouse password", name)
		}
	}
	if code, _, _ := runCLI(t, "aws", "render", "--config", cfg); code != exitUsage {
		t.Errorf("aws render without --out exited %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCLI(t, "aws", "render", "--config", cfg, "--size", "huge", "--out", out); code != exitUsage {
		t.Errorf("aws render --size huge exited %d, want %d", code, exitUsage)
	}
}
