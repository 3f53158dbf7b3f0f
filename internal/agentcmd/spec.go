package agentcmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// keepControlToken keeps the control token of a spec read from stdin in
// file (0600, in the container's tmpfs), for `agent read-control-token`:
// the command line needs it for save and down.
func keepControlToken(file, token string) error {
	if err := atomicfile.Write(file, []byte(token), 0o600); err != nil {
		return fmt.Errorf("keep the control token: %w", err)
	}
	return nil
}

// readControlToken is what a container backend execs to read back the
// control token of a server's agent (the command line needs it for save
// and down), which lives only in the container's tmpfs.
func readControlToken(args []string, s stdio) error {
	fs := flags("read-control-token", s)
	file := fs.String("file", "", "the file agent --control-token-file wrote")
	if err := parse(fs, args); err != nil {
		return err
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("read control token: %w", err)
	}
	_, err = s.stdout.Write(data)
	return err
}

// stage is the init container of a kubernetes server: it runs from the
// agent image (which holds only this binary), as root, and prepares the
// pod for the image's user before Jupyter's container starts — the binary
// into a shared emptyDir, the spec from the Secret (mounted into this init
// container only) into the agent's private in-memory directory, 0600 and
// owned by that user, so that the agent reads and removes it as on the
// other backends, and the workspace volume owned by that user.
func stage(args []string, s stdio) error {
	fs := flags("stage", s)
	binDir := fs.String("bin-dir", "", "where to copy this binary (an emptyDir the main container mounts)")
	specFrom := fs.String("spec-from", "", "the spec as the Secret volume holds it")
	specTo := fs.String("spec-to", "", "where the agent reads it (a memory emptyDir)")
	workspace := fs.String("workspace", "", "the workspace volume's mount point, to own")
	owner := fs.String("owner", "", "UID:GID of the image's user")
	if err := parse(fs, args); err != nil {
		return err
	}
	uid, gid, err := parseOwner(*owner)
	if err != nil {
		return err
	}
	if *binDir == "" || *specFrom == "" || *specTo == "" {
		return usagef("stage: --bin-dir, --spec-from and --spec-to are required")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("stage: find this binary: %w", err)
	}
	if err := copyFile(self, filepath.Join(*binDir, "spinbook"), 0o755, -1, -1); err != nil {
		return fmt.Errorf("stage: copy the agent: %w", err)
	}
	dir := filepath.Dir(*specTo)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if err := copyFile(*specFrom, *specTo, 0o600, uid, gid); err != nil {
		return fmt.Errorf("stage: copy the spec: %w", err)
	}
	if *workspace != "" {
		// A fresh volume is root's; the image's user must write it. Only
		// the top directory: what is inside is the user's already.
		if st, err := os.Stat(*workspace); err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Uid == 0 {
				if err := os.Chown(*workspace, uid, gid); err != nil {
					return fmt.Errorf("stage: own the workspace: %w", err)
				}
			}
		}
	}
	return nil
}

func parseOwner(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, usagef("stage: --owner %q: want UID:GID", s)
	}
	return uid, gid, nil
}

// copyFile copies from to to with mode, owned by uid:gid (-1: unchanged).
func copyFile(from, to string, mode os.FileMode, uid, gid int) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFunc(to, mode, func(out *os.File) error {
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		if uid >= 0 || gid >= 0 {
			return out.Chown(uid, gid)
		}
		return nil
	})
}
