package agentcmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
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
		{"help", []string{"help"}, exitOK, "agent receive-spec", ""},
		{"unknown command", []string{"up"}, exitUsage, "", "this is the agent binary"},
		{"no spec", []string{"agent"}, exitUsage, "", "pass --spec FILE or set SPINBOOK_AGENT_SPEC"},
		{"unknown flag", []string{"agent", "--nope"}, exitUsage, "", "flag provided but not defined"},
		{"stray argument", []string{"agent", "receive-spec", "--to", "x", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"receive-spec without --to", []string{"agent", "receive-spec"}, exitUsage, "", "--to FILE is required"},
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

// TestReceiveSpec: the spec arrives on stdin and is written 0600; the
// control token is kept apart, and read back by read-control-token.
func TestReceiveSpec(t *testing.T) {
	dir := t.TempDir()
	spec := backend.AgentSpec{User: "alice", Workspace: dir, ControlToken: "CANARY-control-token"}
	data, _ := json.Marshal(spec)
	to, tokenFile := filepath.Join(dir, "spec.json"), filepath.Join(dir, "token")
	if code, _, stderr := run(t, string(data), "agent", "receive-spec", "--to", to, "--control-token-file", tokenFile); code != 0 {
		t.Fatalf("receive-spec exited %d: %s", code, stderr)
	}
	for _, f := range []string{to, tokenFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, st, err)
		}
	}
	got, err := backend.ReadAgentSpec(to)
	if err != nil || got.User != "alice" {
		t.Errorf("the written spec reads back as %+v, %v", got, err)
	}
	code, stdout, _ := run(t, "", "agent", "read-control-token", "--file", tokenFile)
	if code != 0 || stdout != "CANARY-control-token" {
		t.Errorf("read-control-token = %d, %q", code, stdout)
	}
	if code, _, stderr := run(t, "not json", "agent", "receive-spec", "--to", filepath.Join(dir, "other.json")); code != exitFailure || strings.Contains(stderr, "not json") && !strings.Contains(stderr, "decode agent spec") {
		t.Errorf("a spec that is not JSON: exit %d, %q", code, stderr)
	}
}
