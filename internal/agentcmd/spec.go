package agentcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
)

// receiveSpec is what a container backend execs inside a started
// container to hand the waiting agent its spec: the spec arrives on stdin
// (never argv or Env) and is written 0600, as the container's user, into
// the container's tmpfs.
func receiveSpec(args []string, s stdio) error {
	fs := flags("receive-spec", s)
	to := fs.String("to", "", "where to write the spec")
	tokenTo := fs.String("control-token-file", "", "also keep the spec's control token in this file (0600), for `agent read-control-token`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usagef("receive-spec: --to FILE is required")
	}
	data, err := io.ReadAll(io.LimitReader(s.stdin, 4<<20))
	if err != nil {
		return fmt.Errorf("read agent spec: %w", err)
	}
	var spec backend.AgentSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode agent spec from stdin: %w", err)
	}
	if *tokenTo != "" && spec.ControlToken != "" {
		if err := atomicfile.Write(*tokenTo, []byte(spec.ControlToken), 0o600); err != nil {
			return fmt.Errorf("write control token: %w", err)
		}
	}
	return backend.WriteAgentSpec(*to, spec)
}

// readControlToken is what a container backend execs to read back the
// control token of a server's agent (the command line needs it for save
// and down), which lives only in the container's tmpfs.
func readControlToken(args []string, s stdio) error {
	fs := flags("read-control-token", s)
	file := fs.String("file", "", "the file receive-spec wrote")
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
