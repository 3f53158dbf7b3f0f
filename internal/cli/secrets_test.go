package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/backend/aws/awstest"
)

const testCanary = "canary-cli-3d9f:pw\\x"

// secretWorld writes a config with a warehouse whose password is
// password, in its own state dir, and returns the config path and the
// state dir.
func secretWorld(t *testing.T, password string) (cfgPath, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfgPath = filepath.Join(dir, "spinbook.yaml")
	cfg := "warehouse:\n  host: 127.0.0.1\n  database: analytics\n  user: nb\n  password: " + password +
		"\nlocal:\n  state_dir: " + stateDir + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPINBOOK_CONFIG", "")
	return cfgPath, stateDir
}

// TestUpMissingSecret: up with an unset ${env:...} fails with exit 2 and
// an error naming the reference and its line, before anything exists.
func TestUpMissingSecret(t *testing.T) {
	cfgPath, stateDir := secretWorld(t, "${env:SPINBOOK_TEST_DW_UNSET}")
	os.Unsetenv("SPINBOOK_TEST_DW_UNSET")
	code, stdout, stderr := runCLI(t, "up", "--config", cfgPath, "--user", "bob")
	if code != exitUsage {
		t.Fatalf("up exited %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, stdout, stderr)
	}
	for _, want := range []string{"${env:SPINBOOK_TEST_DW_UNSET}", "warehouse.password", cfgPath + " line 5", "nothing was started", "export it"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("the state dir exists after a failed up (%v); nothing should have been created", err)
	}
}

// TestUpMissingAWSSecret: an ${aws-sm:...} reference Secrets Manager does
// not hold (moto here, see package awstest) stops up with exit 2, naming
// the reference.
func TestUpMissingAWSSecret(t *testing.T) {
	awstest.Start(t).Setenv(t)
	cfgPath, _ := secretWorld(t, "${aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:dw}")
	code, _, stderr := runCLI(t, "up", "--config", cfgPath, "--user", "bob")
	if code != exitUsage || !strings.Contains(stderr, "${aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:dw}") ||
		!strings.Contains(stderr, "no such secret") {
		t.Fatalf("up exited %d, want %d and an error naming the reference:\n%s", code, exitUsage, stderr)
	}
}

func TestStatusReportsSecrets(t *testing.T) {
	cfgPath, _ := secretWorld(t, "${env:SPINBOOK_TEST_DW_PASSWORD}")

	t.Setenv("SPINBOOK_TEST_DW_PASSWORD", testCanary)
	code, stdout, stderr := runCLI(t, "status", "--config", cfgPath, "--user", "bob", "--json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, stderr)
	}
	var got struct {
		State   string       `json:"state"`
		Secrets []secretJSON `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	want := []secretJSON{{Name: "warehouse.password", Ref: "${env:SPINBOOK_TEST_DW_PASSWORD}", Resolved: true}}
	if diff := cmp.Diff(want, got.Secrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	code, stdout, _ = runCLI(t, "status", "--config", cfgPath, "--user", "bob")
	if code != 0 || !strings.Contains(stdout, "secrets:    warehouse.password: ${env:SPINBOOK_TEST_DW_PASSWORD} (resolved)") {
		t.Errorf("status exited %d, want the secret listed as resolved:\n%s", code, stdout)
	}
	if strings.Contains(stdout, "canary") {
		t.Errorf("status shows the secret:\n%s", stdout)
	}

	os.Unsetenv("SPINBOOK_TEST_DW_PASSWORD")
	code, stdout, _ = runCLI(t, "status", "--config", cfgPath, "--user", "bob", "--json")
	if code != 0 {
		t.Fatalf("status exited %d with a missing secret, want 0 (it reports, it does not fail)", code)
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Secrets) != 1 || got.Secrets[0].Resolved || !strings.Contains(got.Secrets[0].Error, "${env:SPINBOOK_TEST_DW_PASSWORD}") {
		t.Errorf("secrets = %+v, want warehouse.password unresolved with an error naming the reference", got.Secrets)
	}
	_, stdout, _ = runCLI(t, "status", "--config", cfgPath, "--user", "bob")
	if !strings.Contains(stdout, "warehouse.password: missing: ${env:SPINBOOK_TEST_DW_PASSWORD}") {
		t.Errorf("status does not show the secret as missing:\n%s", stdout)
	}
}

func TestStatusLiteralSecret(t *testing.T) {
	cfgPath, _ := secretWorld(t, "'"+testCanary+"'")
	code, stdout, stderr := runCLI(t, "status", "--config", cfgPath, "--user", "bob", "--json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "canary") {
		t.Fatalf("status --json shows a literal secret:\n%s", stdout)
	}
	if !strings.Contains(stdout, `"name": "warehouse.password"`) || !strings.Contains(stdout, `"literal": true`) {
		t.Errorf("status --json does not report the literal secret:\n%s", stdout)
	}
}
