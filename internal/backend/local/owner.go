package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/spinbook/spinbook/internal/backend"
)

// The state directory, when spinbook runs as root:
//
//	STATE/                      root 0711: people pass through, list nothing
//	  servers/                  root 0711; USER.lock files root 0600
//	    USER/                   root 0711: record.json, agent.log (root's own)
//	      agent/                USER 0700: the agent's state (spec, exit.json,
//	                            jupyter.json, TLS certificate)
//	      credentials/          USER 0700: .pgpass, model-store keys
//	      bundles/              USER 0700: bundles of unsaved work
//	  workspaces/               root 0711
//	    USER/                   USER 0700
//	  homes/                    root 0711
//	    USER/                   USER 0700: HOME of a created account
//
// Files root acts on (the record, the log) lie in directories the person
// cannot write, so no one can swap them for a link; what the agent writes,
// root reads with readOwned. Run as anyone else, everything belongs to
// that user and the directories are 0700.

// agentDir is the directory the agent keeps its own state in.
func (l *Local) agentDir(user string) string { return filepath.Join(l.serverDir(user), "agent") }

// prepareDirs makes user's directories, owned as above by acct, and hands
// over to acct what an older spinbook left owned by root (a workspace made
// before servers had accounts of their own).
func (l *Local) prepareDirs(user string, acct account) error {
	rootMode := os.FileMode(0o700)
	if acct.Switch {
		rootMode = 0o711
		if err := passable(l.stateDir); err != nil {
			return err
		}
	}
	for _, dir := range []string{l.stateDir, filepath.Join(l.stateDir, "servers"), l.serverDir(user),
		filepath.Join(l.stateDir, "workspaces")} {
		if err := rootDir(dir, rootMode); err != nil {
			return err
		}
	}
	owned := []string{l.agentDir(user), filepath.Join(l.serverDir(user), "credentials"),
		filepath.Join(l.serverDir(user), "bundles"), l.workspace(user)}
	if home := filepath.Join(l.stateDir, "homes", user); acct.Home == home {
		if err := rootDir(filepath.Dir(home), rootMode); err != nil {
			return err
		}
		owned = append(owned, home)
	}
	for _, dir := range owned {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	// The self-signed certificate an older spinbook kept beside the record.
	for _, name := range []string{"tls-cert.pem", "tls-key.pem"} {
		old, now := filepath.Join(l.serverDir(user), name), filepath.Join(l.agentDir(user), name)
		if _, err := os.Lstat(now); errors.Is(err, fs.ErrNotExist) {
			os.Rename(old, now)
		}
	}
	if !acct.Switch {
		return nil
	}
	for _, dir := range owned {
		if err := chownTree(dir, acct.UID, acct.GID); err != nil {
			return fmt.Errorf("give %s to the OS account %s: %w", dir, acct.Name, err)
		}
	}
	return nil
}

// rootDir makes dir (if missing) and gives it mode; when spinbook runs as
// root it must belong to root.
func rootDir(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state dir: %s is not a directory", dir)
	}
	if os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*unix.Stat_t); ok && st.Uid != 0 {
			return fmt.Errorf("state dir: %s belongs to uid %d, not root; only root may own it when spinbook serves several people", dir, st.Uid)
		}
	}
	if fi.Mode().Perm() != mode {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}

// passable checks that every directory above dir lets other users pass
// (x for others), as the servers' accounts must to reach their own
// directories inside it.
func passable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("local.state_dir %s lies in %s (mode %04o), which the servers' own OS accounts cannot pass through: "+
				"stop its servers (spinbook down), move it (mv %s /var/lib/spinbook) and set local.state_dir: /var/lib/spinbook "+
				"(the default for root when ~/.local/state/spinbook is gone), or chmod o+x %s", dir, d, fi.Mode().Perm(), dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// chownTree gives dir and everything below it to uid:gid, and makes dir
// 0700. It walks by file descriptors and never follows a symbolic link, so
// a link planted in the tree cannot make root change a file outside it.
func chownTree(dir string, uid, gid int) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		unix.Close(fd)
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		unix.Close(fd) // already handed over: its contents are the account's own doing
		return nil
	}
	return chownDir(fd, dir, uid, gid)
}

// chownDir chowns the directory open as fd (named name, for errors) and
// its contents, and closes fd.
func chownDir(fd int, name string, uid, gid int) error {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			path := name + "/" + n
			var st unix.Stat_t
			if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("stat %s: %w", path, err)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				cfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("open %s: %w", path, err)
				}
				if err := chownDir(cfd, path, uid, gid); err != nil {
					return err
				}
				continue
			}
			if int(st.Uid) != uid || int(st.Gid) != gid {
				if err := unix.Fchownat(fd, n, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return fmt.Errorf("chown %s: %w", path, err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
}

// readOwned reads a small file the agent wrote (as the person's account):
// never through a link, never blocking on a FIFO, at most 1 MiB.
func readOwned(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// writeSpec writes the agent spec to path, in the agent's own directory,
// 0600 and owned by acct. The directory is the account's, so root creates
// a new file (O_EXCL: never through a link planted there), hands it over,
// and renames it into place.
func writeSpec(path string, spec backend.AgentSpec, acct account) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode agent spec: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".agent-spec-*")
	if err != nil {
		return fmt.Errorf("write agent spec: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing is left to remove
	_, err = f.Write(data)
	if err == nil && acct.Switch {
		err = f.Chown(acct.UID, acct.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write agent spec: %w", err)
	}
	return nil
}

// reachableAgent returns a path of the agent binary that acct can run.
// Run as root, spinbook may itself lie where only root can reach it (a
// clone under /root); then it is copied, once per build, to STATE/bin/,
// root's and 0755 there.
func (l *Local) reachableAgent(acct account) (string, error) {
	if !acct.Switch {
		return l.agentPath, nil
	}
	fi, err := os.Stat(l.agentPath)
	if err != nil {
		return "", backend.MissingAgent(l.agentPath, err)
	}
	if fi.Mode().Perm()&0o005 == 0o005 && passable(l.agentPath) == nil {
		return l.agentPath, nil
	}
	binDir := filepath.Join(l.stateDir, "bin")
	for _, dir := range []string{l.stateDir, binDir} {
		if err := rootDir(dir, 0o711); err != nil {
			return "", err
		}
	}
	dst := filepath.Join(binDir, "spinbook")
	if have, err := os.Lstat(dst); err == nil && have.Mode().IsRegular() && have.Size() == fi.Size() && have.ModTime().Equal(fi.ModTime()) {
		return dst, nil
	}
	src, err := os.Open(l.agentPath)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(binDir, ".spinbook-*")
	if err != nil {
		return "", fmt.Errorf("copy the agent binary: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is left to remove
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", fmt.Errorf("copy the agent binary to %s: %w", dst, err)
	}
	l.log.Info("copied the agent binary where the servers' accounts can run it", "from", l.agentPath, "to", dst)
	return dst, nil
}
