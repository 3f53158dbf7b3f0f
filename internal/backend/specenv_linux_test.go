package backend

import (
	"encoding/json"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAgentSpecFromEnv: the spec comes out of the variable, the variable
// is gone from the environment children inherit, and on Linux the process
// is non-dumpable (its /proc/PID/environ, which keeps the variable, is
// root's).
func TestAgentSpecFromEnv(t *testing.T) {
	const name = "SPINBOOK_TEST_SPEC_JSON"
	want := AgentSpec{User: "alice", Workspace: "/home/jovyan/work", PasswordHash: "$argon2id$canary", ControlToken: "canary-token"}
	data, _ := json.Marshal(want)
	t.Setenv(name, string(data))
	got, err := AgentSpecFromEnv(name)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != want.User || got.PasswordHash != want.PasswordHash || got.ControlToken != want.ControlToken {
		t.Errorf("AgentSpecFromEnv = %+v, want %+v", got, want)
	}
	if _, ok := os.LookupEnv(name); ok {
		t.Errorf("%s is still set", name)
	}
	{
		if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
			t.Errorf("PR_GET_DUMPABLE = %d, %v; want 0", d, err)
		}
	}
	if _, err := AgentSpecFromEnv(name); err == nil {
		t.Error("a second read of the unset variable succeeded")
	}
}
