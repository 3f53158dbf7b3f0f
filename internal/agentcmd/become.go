package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/spinbook/spinbook/internal/unixuser"
)

// becomeImageUser is the docker backend's first step inside a container:
// the agent starts as root so that it can give the workspace to the
// image's user itself (a new volume is root's; an image may lack the
// home), with no round trips through the Engine before the start, and then
// becomes that user for good, before Jupyter or anything of the image
// runs. userSpec is the image's USER as Docker reads it; an image that
// runs as root keeps running as root, as it did.
func becomeImageUser(userSpec, home, workspace string) error {
	if os.Geteuid() != 0 {
		return nil // started as someone already: nothing to give, nothing to drop
	}
	passwd, err := readSmall("/etc/passwd")
	if err != nil {
		return err
	}
	group, err := readSmall("/etc/group")
	if err != nil {
		return err
	}
	u, err := unixuser.Resolve(userSpec, passwd, group)
	if err != nil {
		return fmt.Errorf("the image's user: %w", err)
	}
	if u.UID == 0 {
		return nil
	}
	if err := makeHome(home, u); err != nil {
		return err
	}
	if err := ownWorkspace(workspace, u); err != nil {
		return err
	}
	return unixuser.Become(u)
}

// makeHome makes the home, owned by u, when the image has none; a home the
// image has is left as it is.
func makeHome(home string, u unixuser.User) error {
	if home == "" {
		return nil
	}
	if _, err := os.Lstat(home); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("make the home %s: %w", home, err)
	}
	if err := os.Lchown(home, u.UID, u.GID); err != nil {
		return fmt.Errorf("give the home %s to uid %d: %w", home, u.UID, err)
	}
	return nil
}

// ownWorkspace gives the workspace directory (the volume's mount point;
// only it, not what is inside) to u; a symlink is never followed.
func ownWorkspace(dir string, u unixuser.User) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("give the workspace to uid %d: %w", u.UID, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("give the workspace to uid %d: %s is not a directory", u.UID, dir)
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) == u.UID && int(s.Gid) == u.GID {
		return nil
	}
	if err := os.Lchown(dir, u.UID, u.GID); err != nil {
		return fmt.Errorf("give the workspace %s to uid %d: %w", dir, u.UID, err)
	}
	return nil
}

// readSmall reads an /etc file of the image (nil when it has none).
func readSmall(name string) ([]byte, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the image's user: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("the image's user: read %s: %w", name, err)
	}
	return data, nil
}
