package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/config"
)

// runCLI runs the command line in-process and returns its exit code and
// output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	t.Setenv("SPINBOOK_CONFIG", "")
	t.Chdir(t.TempDir())
	tests := []struct {
		name     string
		args     []string
		want     int
		inStderr string
	}{
		{"unknown flag", []string{"status", "--bogus"}, exitUsage, "unknown flag"},
		{"unknown command", []string{"fly"}, exitUsage, "unknown command"},
		{"extra argument", []string{"up", "now"}, exitUsage, "unknown command"},
		{"bad user", []string{"status", "--user", "Bob"}, exitUsage, "lowercase letters, digits and '-'"},
		{"empty user", []string{"status", "--user", ""}, exitUsage, "lowercase letters, digits and '-'"},
		{"missing config", []string{"status", "--config", "/nonexistent/spinbook.yaml"}, exitUsage, "spinbook init"},
		{"version", []string{"version"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != tt.want || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("spinbook %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.want, tt.inStderr)
			}
		})
	}
}

func TestUserComesFromEnvThenFlag(t *testing.T) {
	t.Setenv("SPINBOOK_USER", "from-env")
	e := &env{}
	if u, err := e.resolveUser(); err != nil || u != "from-env" {
		t.Fatalf("resolveUser with $SPINBOOK_USER = %q, %v", u, err)
	}
	e.user.Set("from-flag")
	if u, err := e.resolveUser(); err != nil || u != "from-flag" {
		t.Fatalf("resolveUser with --user = %q, %v", u, err)
	}
	t.Setenv("SPINBOOK_USER", "Not_Valid")
	e = &env{}
	if _, err := e.resolveUser(); err == nil || !strings.Contains(err.Error(), "$SPINBOOK_USER") {
		t.Fatalf("an invalid $SPINBOOK_USER must be refused, naming where it came from: %v", err)
	}
}

func TestGeneratedPasswords(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p := generatePassword()
		if len(p) != 24 || strings.Count(p, "-") != 4 || strings.ContainsAny(p, "il0o1") {
			t.Fatalf("generatePassword() = %q, want five dash-separated groups of four without look-alikes", p)
		}
		if seen[p] {
			t.Fatalf("generatePassword repeated %q", p)
		}
		seen[p] = true
	}
}

func TestEveryCommandHelpHasAnExample(t *testing.T) {
	root := newRoot(&env{})
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" {
			t.Errorf("spinbook %s --help has no example", c.Name())
		}
	}
}

func TestReachabilityHint(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		warn bool
	}{
		{"defaults", "", false},
		{"all interfaces, default allow", "local: {listen: 0.0.0.0}", true},
		{"all interfaces, loopback allow", "local: {listen: 0.0.0.0}\naccess: {allow: [127.0.0.1/32]}", true},
		{"all interfaces, office allowed", "local: {listen: 0.0.0.0}\naccess: {allow: [203.0.113.0/24]}", false},
		{"a LAN address, default allow", "local: {listen: 192.0.2.10}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.yaml), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := reachabilityHint(cfg); (got != "") != tt.warn {
				t.Fatalf("reachabilityHint(%q) = %q, want a warning: %v", tt.yaml, got, tt.warn)
			}
		})
	}
}
