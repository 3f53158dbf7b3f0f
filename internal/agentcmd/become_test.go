package agentcmd

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/spinbook/spinbook/internal/unixuser"
)

// TestGiveToImageUser: a missing home is made and given to the image's
// user, a home the image has stays as it is, the workspace is given over,
// and a symlink in the workspace's place is refused, not followed.
func TestGiveToImageUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root, which CI has")
		}
		t.Skip("needs root (chown)")
	}
	u := unixuser.User{UID: 4321, GID: 4322}
	dir := t.TempDir()
	owner := func(p string) (int, int) {
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		s := st.Sys().(*syscall.Stat_t)
		return int(s.Uid), int(s.Gid)
	}

	home := filepath.Join(dir, "home", "ada")
	if err := makeHome(home, u); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(home); uid != 4321 || gid != 4322 {
		t.Errorf("the made home is %d:%d, want 4321:4322", uid, gid)
	}
	existing := filepath.Join(dir, "opt-app")
	os.Mkdir(existing, 0o755)
	if err := makeHome(existing, u); err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(existing); uid != 0 {
		t.Errorf("a home the image has was given away (uid %d)", uid)
	}

	ws := filepath.Join(dir, "work")
	os.Mkdir(ws, 0o755)
	if err := ownWorkspace(ws, u); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(ws); uid != 4321 || gid != 4322 {
		t.Errorf("the workspace is %d:%d, want 4321:4322", uid, gid)
	}
	target := filepath.Join(dir, "etc")
	os.Mkdir(target, 0o755)
	link := filepath.Join(dir, "linked-work")
	os.Symlink(target, link)
	if err := ownWorkspace(link, u); err == nil {
		t.Error("a symlink in the workspace's place was accepted")
	}
	if uid, _ := owner(target); uid != 0 {
		t.Errorf("the symlink was followed: its target is uid %d", uid)
	}
}
