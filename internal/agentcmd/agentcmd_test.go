package agentcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork"
)

// run runs the agent binary's command line in-process.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestCommandLine: the command lines backends run give the exit codes and
// messages they rely on; bad usage is exit 2 with a sentence saying what to do.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"version"}, exitOK, "spinbook-agent ", ""},
		{"help", []string{"help"}, exitOK, "agent read-control-token", ""},
		{"unknown command", []string{"up"}, exitUsage, "", "this is the agent binary"},
		{"no spec", []string{"agent"}, exitUsage, "", "pass --spec FILE or set SPINBOOK_AGENT_SPEC"},
		{"unknown flag", []string{"agent", "--nope"}, exitUsage, "", "flag provided but not defined"},
		{"stray argument", []string{"agent", "read-control-token", "--file", "x", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"spec-stdin, stdin closed with nothing", []string{"agent", "--spec-stdin", "1m"}, exitFailure, "", "stdin closed with no spec"},
		{"stage with a bad owner", []string{"agent", "stage", "--owner", "root"}, exitUsage, "", "want UID:GID"},
		{"git-credential without an operation", []string{"git-credential"}, exitUsage, "", "want one of get, store, erase"},
		{"git-credential outside a server", []string{"git-credential", "get"}, exitFailure, "", "run git inside a spinbook server"},
		{"aws, another command", []string{"aws", "render"}, exitUsage, "", "only `aws delete-own-stack`"},
		{"delete-own-stack without a region", []string{"aws", "delete-own-stack", "--stack", "spinbook-a-b"}, exitUsage, "", "--region REGION are required"},
	}
	t.Setenv("SPINBOOK_AGENT_SPEC", "")
	t.Setenv(gitwork.SocketEnv, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestControlTokenKept: the control token of a spec read from stdin is
// kept 0600 and read back by read-control-token, as down and save do.
func TestControlTokenKept(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := keepControlToken(tokenFile, "CANARY-control-token"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", tokenFile, st, err)
	}
	code, stdout, _ := run(t, "", "agent", "read-control-token", "--file", tokenFile)
	if code != 0 || stdout != "CANARY-control-token" {
		t.Errorf("read-control-token = %d, %q", code, stdout)
	}
}
