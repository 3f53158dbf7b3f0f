package local

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func owner(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// TestChownTreeNeverFollowsLinks: handing a workspace over changes what is
// in it, never what a link in it points to.
func TestChownTreeNeverFollowsLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown (CI runs as root)")
	}
	const uid, gid = 65534, 65534
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	ws := filepath.Join(t.TempDir(), "ws")
	os.MkdirAll(filepath.Join(ws, "sub", "deeper"), 0o755)
	os.WriteFile(filepath.Join(ws, "sub", "deeper", "f"), []byte("x"), 0o644)
	os.Symlink(secret, filepath.Join(ws, "file-link"))
	os.Symlink(outside, filepath.Join(ws, "sub", "dir-link"))

	if err := chownTree(ws, uid, gid); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ws, filepath.Join(ws, "sub"), filepath.Join(ws, "sub", "deeper", "f"),
		filepath.Join(ws, "file-link"), filepath.Join(ws, "sub", "dir-link")} {
		if got := owner(t, p); got != uid {
			t.Errorf("%s: uid %d, want %d", p, got, uid)
		}
	}
	for _, p := range []string{outside, secret} {
		if got := owner(t, p); got != 0 {
			t.Errorf("%s, outside the tree, now belongs to uid %d", p, got)
		}
	}
	if fi, _ := os.Stat(ws); fi.Mode().Perm() != 0o700 {
		t.Errorf("workspace mode %v, want 0700", fi.Mode().Perm())
	}
	// The tree itself a link: refused.
	link := filepath.Join(t.TempDir(), "ws-link")
	os.Symlink(outside, link)
	if err := chownTree(link, uid, gid); err == nil {
		t.Error("chownTree followed a link at its top")
	}
	if got := owner(t, outside); got != 0 {
		t.Errorf("%s now belongs to uid %d", outside, got)
	}
}

// TestReadOwned: what the agent's account wrote is read only as a plain
// file: a link or a FIFO planted in its place neither leaks nor blocks.
func TestReadOwned(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "exit.json")
	os.WriteFile(plain, []byte(`{"code":0}`), 0o600)
	if got, err := readOwned(plain); err != nil || string(got) != `{"code":0}` {
		t.Fatalf("readOwned(plain) = %q, %v", got, err)
	}
	link := filepath.Join(dir, "link.json")
	os.Symlink(plain, link)
	if _, err := readOwned(link); err == nil {
		t.Error("readOwned followed a link")
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := readOwned(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("readOwned read a FIFO")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readOwned blocks on a FIFO")
	}
}

func TestPassable(t *testing.T) {
	closed := t.TempDir()
	os.Chmod(closed, 0o700)
	if err := passable(filepath.Join(closed, "state")); err == nil || !strings.Contains(err.Error(), "chmod o+x "+closed) {
		t.Errorf("passable under a 0700 directory: %v, want an error saying chmod o+x %s", err, closed)
	}
	os.Chmod(closed, 0o711)
	if err := passable(filepath.Join(closed, "state")); err != nil && !strings.Contains(err.Error(), filepath.Dir(closed)) {
		t.Errorf("passable under a 0711 directory: %v", err)
	}
}

// TestReachableAgent: run as root, a spinbook binary only root can reach
// (a clone under /root) is copied where the servers' accounts can run it,
// once per build; one they can reach is used where it is.
func TestReachableAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root)")
	}
	private := t.TempDir()
	os.Chmod(private, 0o700)
	bin := filepath.Join(private, "spinbook")
	os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o755)
	state := filepath.Join(t.TempDir(), "state")
	os.Chmod(filepath.Dir(state), 0o711)
	os.Chmod(filepath.Dir(filepath.Dir(state)), 0o711) // t.TempDir's parent
	l := &Local{stateDir: state, agentPath: bin, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	acct := account{Name: "nobody", UID: 65534, GID: 65534, Switch: true}

	got, err := l.reachableAgent(acct)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(state, "bin", "spinbook")
	if got != want {
		t.Fatalf("reachableAgent = %q, want the copy %q", got, want)
	}
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", got).Output()
	if err != nil || string(out) != "v1\n" {
		t.Fatalf("nobody running the copy: %q, %v", out, err)
	}
	// A new build is copied again.
	os.WriteFile(bin, []byte("#!/bin/sh\necho v2!\n"), 0o755)
	if got, err := l.reachableAgent(acct); err != nil || got != want {
		t.Fatalf("reachableAgent after a rebuild = %q, %v", got, err)
	}
	if data, _ := os.ReadFile(want); string(data) != "#!/bin/sh\necho v2!\n" {
		t.Errorf("the copy after a rebuild holds %q", data)
	}
	// Reachable: used where it is.
	os.Chmod(private, 0o755)
	if got, err := l.reachableAgent(acct); err != nil || got != bin {
		t.Errorf("reachableAgent of a reachable binary = %q, %v; want %q", got, err, bin)
	}
	if got, err := l.reachableAgent(account{}); err != nil || got != bin {
		t.Errorf("reachableAgent not as root = %q, %v", got, err)
	}
}
