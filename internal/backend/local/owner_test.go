package local

import (
	"os"
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
