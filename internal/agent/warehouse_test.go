package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/backend"
)

func TestPgpassEscapesAsLibpqRequires(t *testing.T) {
	tests := []struct {
		name string
		w    backend.Warehouse
		want string
	}{
		{
			name: "plain",
			w:    backend.Warehouse{Host: "dw.example.com", Port: 5439, Database: "dev", User: "nb", Password: "s3cret"},
			want: "dw.example.com:5439:*:nb:s3cret\n",
		},
		{
			name: "colons and backslashes",
			w:    backend.Warehouse{Host: "::1", Port: 5432, Database: "db", User: `a:b\c`, Password: `p:w\:x\\`},
			want: `\:\:1:5432:*:a\:b\\c:p\:w\\\:x\\\\` + "\n",
		},
		{
			name: "unix socket directory",
			w:    backend.Warehouse{Host: "/run/pg", Port: 5433, Database: "db", User: "nb", Password: "pw"},
			want: "/run/pg:5433:*:nb:pw\nlocalhost:5433:*:nb:pw\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pgpass(&tt.w); got != tt.want {
				t.Errorf("pgpass = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWritePgpass(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "credentials")
	w := &backend.Warehouse{Host: "dw", Port: 5432, Database: "db", User: "nb", Password: "first:pw"}
	path, err := writePgpass(dir, w)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, ".pgpass") {
		t.Errorf("path = %s, want %s/.pgpass", path, dir)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, path, 0o600)

	// A second start replaces the file, also one someone loosened.
	os.Chmod(path, 0o644)
	w.Password = "second"
	if _, err := writePgpass(dir, w); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	data, _ := os.ReadFile(path)
	if string(data) != "dw:5432:*:nb:second\n" {
		t.Errorf(".pgpass = %q", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the credentials dir holds %d entries, want only .pgpass (no temporary files left)", len(entries))
	}

	w.Password = "line\nbr3ak-canary"
	if _, err := writePgpass(dir, w); err == nil || strings.Contains(err.Error(), "canary") {
		t.Errorf("a password with a line break: %v, want an error that does not quote it", err)
	}
}

// TestWritePgpassOwner: run as root into a directory owned by another user
// (a container's Jupyter user's home), the file is handed to that user.
func TestWritePgpassOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a file for another user; CI runs as root")
	}
	dir := t.TempDir()
	const nobody = 65534
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	path, err := writePgpass(dir, &backend.Warehouse{Host: "dw", Port: 5432, Database: "db", User: "nb", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobody || st.Gid != nobody {
		t.Errorf(".pgpass is owned by %d:%d, want %d:%d (the directory's owner)", st.Uid, st.Gid, nobody, nobody)
	}
	checkMode(t, path, 0o600)
}

func TestPrepareWarehouseEnvironment(t *testing.T) {
	const canary = "canary-pw-5b1e"
	t.Setenv("PGPASSWORD", "inherited-pw")
	t.Setenv("PGHOST", "elsewhere")
	t.Setenv("DW_PASSWORD", canary)
	dir := filepath.Join(t.TempDir(), "credentials")
	spec := backend.AgentSpec{
		User: "alice", Workspace: t.TempDir(), CredentialsDir: dir,
		Warehouse: &backend.Warehouse{Host: "dw.example.com", Port: 5439, Database: "dev", User: "nb", Password: canary, SSLMode: "require"},
		Secrets:   []string{canary},
	}
	var log bytes.Buffer
	a := New(spec, slog.New(slog.NewTextHandler(&log, nil)), &log)
	a.scrubEnv() // as Run does first
	env, err := a.prepareWarehouse()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PGHOST=dw.example.com", "PGPORT=5439", "PGDATABASE=dev", "PGUSER=nb", "PGSSLMODE=require",
		"PGPASSFILE=" + filepath.Join(dir, ".pgpass"),
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("prepareWarehouse env (-want +got):\n%s", diff)
	}
	for _, name := range []string{"PGPASSWORD", "PGHOST", "DW_PASSWORD"} {
		if v, ok := os.LookupEnv(name); ok {
			t.Errorf("%s=%s is still in the agent's environment, which Jupyter inherits", name, v)
		}
	}
	if slices.ContainsFunc(os.Environ(), func(kv string) bool { return strings.Contains(kv, canary) }) {
		t.Error("the secret is still in the agent's environment")
	}
	if strings.Contains(log.String(), canary) {
		t.Errorf("the log shows the secret:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "DW_PASSWORD") {
		t.Errorf("the log does not say which variable it removed:\n%s", log.String())
	}
	data, _ := os.ReadFile(filepath.Join(dir, ".pgpass"))
	if string(data) != "dw.example.com:5439:*:nb:"+canary+"\n" {
		t.Errorf(".pgpass = %q", data)
	}
}

func TestPrepareWithoutWarehouse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "credentials")
	a := New(backend.AgentSpec{User: "alice", Workspace: t.TempDir(), CredentialsDir: dir}, slog.New(slog.DiscardHandler), &bytes.Buffer{})
	env, err := a.prepareWarehouse()
	if err != nil || len(env) != 0 {
		t.Fatalf("prepareWarehouse = %q, %v; want no environment", env, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("credentials dir made without a warehouse: %v", err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}
