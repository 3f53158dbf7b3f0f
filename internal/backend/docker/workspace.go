package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// The workspace belongs to the image's user, whatever the image contains.
//
// A new volume mounted where the image has a directory starts as a copy of
// it, owner included; where the image has none (an image whose user has
// no ~/work, or no home at all), the Engine makes the mount point owned by
// root, and the image's user could save nothing. So before the container
// starts, the backend hands the Engine a tar holding only directory
// entries: the home (when the image lacks it) and the workspace, owned by
// the image's user. Extracting a directory over an existing one changes
// just its owner and mode, so the workspace's files are untouched.

// imageUser is the uid and gid the container runs as, read from the
// image's USER ("", "1000", "1000:100", "jovyan", "jovyan:users") and, for
// names and a missing group, the container's /etc/passwd and /etc/group,
// as the Engine itself resolves them.
func (d *Docker) imageUser(ctx context.Context, id, spec string) (uid, gid int, err error) {
	name, group, _ := strings.Cut(spec, ":")
	if name == "" {
		return 0, 0, nil
	}
	passwd, err := d.fileIn(ctx, id, "/etc/passwd")
	if err != nil && !cerrdefs.IsNotFound(err) {
		return 0, 0, err
	}
	uid, gid, found := lookupPasswd(passwd, name)
	if !found {
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("the image's user %q is not in its /etc/passwd", name)
		}
		uid, gid = n, 0 // the Engine's rule for a uid without an entry
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil && n >= 0 {
			gid = n
		} else {
			groups, err := d.fileIn(ctx, id, "/etc/group")
			if err != nil && !cerrdefs.IsNotFound(err) {
				return 0, 0, err
			}
			if gid, found = lookupGroup(groups, group); !found {
				return 0, 0, fmt.Errorf("the image's group %q is not in its /etc/group", group)
			}
		}
	}
	return uid, gid, nil
}

// lookupPasswd finds user (a name or a uid) in an /etc/passwd.
func lookupPasswd(passwd []byte, user string) (uid, gid int, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || (f[0] != user && f[2] != user) {
			continue
		}
		u, err1 := strconv.Atoi(f[2])
		g, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil {
			return u, g, true
		}
	}
	return 0, 0, false
}

// lookupGroup finds a group name in an /etc/group.
func lookupGroup(groups []byte, name string) (gid int, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(groups))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && f[0] == name {
			if g, err := strconv.Atoi(f[2]); err == nil {
				return g, true
			}
		}
	}
	return 0, false
}

// maxUserFile bounds what is read of the image's /etc/passwd or /etc/group.
const maxUserFile = 1 << 20

// fileIn reads a regular file of container id (created, not necessarily
// started).
func (d *Docker) fileIn(ctx context.Context, id, file string) ([]byte, error) {
	rc, _, err := d.cli.CopyFromContainer(ctx, id, file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s in the image: %w", file, err)
		}
		if h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, maxUserFile))
		}
	}
}

// ownWorkspace gives the workspace (and the home, when the image has none)
// of container id to the image's user.
func (d *Docker) ownWorkspace(ctx context.Context, id, userSpec, home, workspace string) error {
	uid, gid, err := d.imageUser(ctx, id, userSpec)
	if err != nil {
		return fmt.Errorf("workspace owner: %w", err)
	}
	var dirs []*tar.Header
	now := time.Now()
	if _, err := d.cli.ContainerStatPath(ctx, id, home); cerrdefs.IsNotFound(err) {
		dirs = append(dirs, &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(home, "/") + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: now})
	} else if err != nil {
		return fmt.Errorf("workspace owner: look at %s: %w", home, err)
	}
	mode := int64(0o755)
	if st, err := d.cli.ContainerStatPath(ctx, id, workspace); err == nil {
		mode = int64(st.Mode.Perm()) | unixSpecialBits(st.Mode)
	}
	dirs = append(dirs, &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(workspace, "/") + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: now})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range dirs {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := d.cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("workspace owner: give %s to uid %d: %w", workspace, uid, err)
	}
	return nil
}

// unixSpecialBits turns fs.FileMode's setuid, setgid and sticky bits into
// the tar header's (which are Unix's).
func unixSpecialBits(m fs.FileMode) int64 {
	var bits int64
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}
