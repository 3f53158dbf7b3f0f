package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// newAgentStage is the init container of a kubernetes server: it runs from
// the agent image (which holds only this binary), as root, and prepares the
// pod for the image's user before Jupyter's container starts — the binary
// into a shared emptyDir, the spec from the Secret (mounted into this init
// container only) into the agent's private in-memory directory, 0600 and
// owned by that user, so that the agent reads and removes it as on the
// other backends, and the workspace volume owned by that user.
func newAgentStage() *cobra.Command {
	var binDir, specFrom, specTo, workspace, owner string
	cmd := &cobra.Command{
		Use:    "stage --bin-dir DIR --spec-from FILE --spec-to FILE --owner UID:GID",
		Short:  "Internal: prepare a kubernetes pod for the agent (init container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uid, gid, err := parseOwner(owner)
			if err != nil {
				return err
			}
			if binDir == "" || specFrom == "" || specTo == "" {
				return usagef("stage: --bin-dir, --spec-from and --spec-to are required")
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("stage: find this binary: %w", err)
			}
			if err := copyFile(self, filepath.Join(binDir, "spinbook"), 0o755, -1, -1); err != nil {
				return fmt.Errorf("stage: copy the agent: %w", err)
			}
			dir := filepath.Dir(specTo)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("stage: %w", err)
			}
			if err := os.Chmod(dir, 0o700); err != nil {
				return fmt.Errorf("stage: %w", err)
			}
			if err := os.Chown(dir, uid, gid); err != nil {
				return fmt.Errorf("stage: %w", err)
			}
			if err := copyFile(specFrom, specTo, 0o600, uid, gid); err != nil {
				return fmt.Errorf("stage: copy the spec: %w", err)
			}
			if workspace != "" {
				// A fresh volume is root's; the image's user must write it.
				// Only the top directory: what is inside is the user's already.
				if st, err := os.Stat(workspace); err == nil {
					if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Uid == 0 {
						if err := os.Chown(workspace, uid, gid); err != nil {
							return fmt.Errorf("stage: own the workspace: %w", err)
						}
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&binDir, "bin-dir", "", "where to copy this binary (an emptyDir the main container mounts)")
	cmd.Flags().StringVar(&specFrom, "spec-from", "", "the spec as the Secret volume holds it")
	cmd.Flags().StringVar(&specTo, "spec-to", "", "where the agent reads it (a memory emptyDir)")
	cmd.Flags().StringVar(&workspace, "workspace", "", "the workspace volume's mount point, to own")
	cmd.Flags().StringVar(&owner, "owner", "", "UID:GID of the image's user")
	return cmd
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
