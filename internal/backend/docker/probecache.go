package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// The agent learns which options the image's Jupyter takes by running its
// --help-all (a second of Python) and caches the answer in its CacheDir,
// which lives in the container and goes with it. The backend carries that
// cache from one container of an image to the next: it copies it out once a
// server is ready and into each new container of the same image before it
// starts, from a small file per image on this machine. Nothing in it is
// secret; any failure only costs the probe again.

// maxProbeCache bounds what is carried over.
const maxProbeCache = 1 << 20

// probeCacheFile is where the cache for image imageID is kept, or "".
func probeCacheFile(imageID string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	id := strings.TrimPrefix(imageID, "sha256:")
	if len(id) < 16 {
		return ""
	}
	return filepath.Join(dir, "spinbook", "docker-probe", id[:16]+".tar")
}

// saveProbeCache copies the agent's cache dir out of container id, unless
// this image's is kept already.
func (d *Docker) saveProbeCache(ctx context.Context, id, imageID, cacheDir string) {
	file := probeCacheFile(imageID)
	if file == "" {
		return
	}
	if _, err := os.Stat(file); err == nil {
		return
	}
	rc, _, err := d.cli.CopyFromContainer(ctx, id, cacheDir)
	if err != nil {
		d.log.Debug("copy the probe cache out", "err", err)
		return
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxProbeCache+1))
	if err != nil || len(data) > maxProbeCache {
		return
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return
	}
	if err := atomicfile.Write(file, data, 0o600); err != nil {
		d.log.Debug("keep the probe cache", "err", err)
	}
}

// restoreProbeCache copies the kept cache for imageID into the created (not
// yet started) container id at cacheDir, a directory under home (the image
// user's, which exists), owned as the files were.
func (d *Docker) restoreProbeCache(ctx context.Context, id, imageID, home, cacheDir string) {
	file := probeCacheFile(imageID)
	if file == "" {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	rel := strings.TrimPrefix(cacheDir, home+"/")
	if rel == cacheDir || strings.HasPrefix(rel, "../") {
		return
	}
	archive, err := reroot(data, rel)
	if err != nil {
		d.log.Debug("probe cache unreadable", "file", file, "err", err)
		return
	}
	if err := d.cli.CopyToContainer(ctx, id, home, bytes.NewReader(archive), container.CopyToContainerOptions{}); err != nil {
		d.log.Debug("copy the probe cache in", "err", err)
	}
}

// reroot rewrites a tar of a directory's base name (as the Engine's archive
// API returns it) into one of rel, a relative path, with rel's parents as
// directories owned like the directory itself.
func reroot(data []byte, rel string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	parent := path.Dir(rel)
	first := true
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if first {
			// Parents of rel, such as .cache: owned as the directory.
			first = false
			if h.Typeflag != tar.TypeDir {
				return nil, errors.New("not a directory archive")
			}
			var made string
			for _, part := range strings.Split(parent, "/") {
				if part == "." {
					continue
				}
				made = path.Join(made, part)
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: made + "/", Mode: 0o755, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime}); err != nil {
					return nil, err
				}
			}
		}
		h.Name = path.Join(parent, h.Name)
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
