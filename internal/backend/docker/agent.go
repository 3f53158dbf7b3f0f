package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
)

// The agent binary reaches containers in a volume of its own, one per
// build of the agent on each Engine (spinbook-agent-SUM, SUM the start of
// its SHA-256), mounted read-only at /spinbook in every server: a server's
// start copies nothing into its container (a copy costs the Engine a
// mount of the container's file system and 19 MB written, a sixth of
// `up`). The first `up` with a new agent fills the volume through a
// container that is created, never started, and removed; once the copy is
// checked, a second, empty volume spinbook-agent-SUM-ready says the first
// is whole, so a copy cut short is filled again, never used. Neither is
// writable by a server; `spinbook site down` removes those no server uses.

// labelAgent marks the agent's volumes (its value: the binary's SHA-256).
const labelAgent = "spinbook.agent"

// agentBinary is the agent binary that up puts into containers.
type agentBinary struct {
	size int64
	sum  string // hex SHA-256
}

// agentVolumes names the volume holding the agent with SHA-256 sum, and
// the one that says it is filled.
func agentVolumes(sum string) (vol, ready string) {
	vol = "spinbook-agent-" + sum[:16]
	return vol, vol + "-ready"
}

// checkAgent checks that the agent binary can run in a container on this
// Engine (a static Linux binary for the Engine's architecture) and sums it.
func (d *Docker) checkAgent(ctx context.Context) (agentBinary, error) {
	// The version call is the Engine's cheapest that names its
	// architecture (Info gathers the whole system's state).
	v, err := d.cli.ServerVersion(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return agentBinary{}, fmt.Errorf("reach the Docker Engine: %w", context.Cause(ctx))
		}
		return agentBinary{}, fmt.Errorf("reach the Docker Engine: %w", d.explain(err))
	}
	f, err := os.Open(d.agentPath)
	if err != nil {
		return agentBinary{}, backend.MissingAgent(d.agentPath, err)
	}
	defer f.Close()
	if err := checkStaticLinux(d.agentPath, v.Arch); err != nil {
		return agentBinary{}, fmt.Errorf("agent binary %s cannot run in a container on this Engine: %w; build one with CGO_ENABLED=0 GOOS=linux GOARCH=%s go build ./cmd/spinbook-agent",
			d.agentPath, err, goArch(v.Arch))
	}
	fi, err := f.Stat()
	if err != nil {
		return agentBinary{}, fmt.Errorf("agent binary %s: %w", d.agentPath, err)
	}
	sum, err := agentSum(d.agentPath, f, fi)
	if err != nil {
		return agentBinary{}, fmt.Errorf("agent binary %s: %w", d.agentPath, err)
	}
	return agentBinary{size: fi.Size(), sum: sum}, nil
}

// agentSum is the SHA-256 of the agent binary f (at path, with fi), kept
// on this machine by the file's identity (device, inode, size,
// modification time), so that an up reads the 19 MB only when the binary
// changed. Any trouble with the kept sum only costs reading the file.
func agentSum(path string, f *os.File, fi os.FileInfo) (string, error) {
	identity := fmt.Sprint(fi.Size(), " ", fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		identity += fmt.Sprint(" ", st.Dev, " ", st.Ino)
	}
	kept := ""
	if dir, err := os.UserCacheDir(); err == nil {
		abs, _ := filepath.Abs(path)
		name := sha256.Sum256([]byte(abs))
		kept = filepath.Join(dir, "spinbook", "agent-sum", hex.EncodeToString(name[:8]))
	}
	if data, err := os.ReadFile(kept); err == nil {
		if id, sum, ok := strings.Cut(string(data), "\n"); ok && id == identity && len(sum) == 64 {
			return sum, nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if kept != "" && os.MkdirAll(filepath.Dir(kept), 0o700) == nil {
		atomicfile.Write(kept, []byte(identity+"\n"+sum), 0o600)
	}
	return sum, nil
}

// ensureAgentVolume returns the volume holding bin, filling it first when
// it is not yet whole on this Engine (through a container of image).
func (d *Docker) ensureAgentVolume(ctx context.Context, bin agentBinary, image string, progress func(backend.Event)) (string, error) {
	vol, ready := agentVolumes(bin.sum)
	for {
		whole, err := d.agentVolumeWhole(ctx, vol, ready)
		if err != nil || whole {
			return vol, err
		}
		filled, err := d.fillAgentVolume(ctx, bin, image, progress)
		if err != nil || filled {
			return vol, err
		}
		// Another up is filling it: wait for it, then look again.
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for another spinbook command to fill volume %s: %w", vol, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// agentVolumeWhole reports whether the agent's volume vol and its ready
// volume both exist. A ready volume without vol (vol removed by hand) is
// removed, so that vol is filled again.
func (d *Docker) agentVolumeWhole(ctx context.Context, vol, ready string) (bool, error) {
	list, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("name", vol))})
	if err != nil {
		return false, fmt.Errorf("list volumes: %w", d.explain(err))
	}
	var haveVol, haveReady bool
	for _, v := range list.Volumes {
		haveVol = haveVol || v.Name == vol
		haveReady = haveReady || v.Name == ready
	}
	if haveReady && !haveVol {
		if err := d.cli.VolumeRemove(ctx, ready, false); err != nil && !cerrdefs.IsNotFound(err) {
			return false, fmt.Errorf("remove volume %s: %w", ready, err)
		}
	}
	return haveVol && haveReady, nil
}

// fillAgentVolume copies bin into its volume and marks it whole. It
// returns false, and no error, while another up's fill is in progress.
func (d *Docker) fillAgentVolume(ctx context.Context, bin agentBinary, image string, progress func(backend.Event)) (bool, error) {
	vol, ready := agentVolumes(bin.sum)
	lbl := map[string]string{backend.LabelManaged: backend.ManagedBy, labelAgent: bin.sum}
	if _, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Labels: lbl}); err != nil {
		return false, fmt.Errorf("create volume %s: %w", vol, err)
	}
	// The fill container's name is the lock: one fill at a time. It has no
	// managed-by label, so no listing of servers ever shows it.
	name := vol + "-fill"
	c, err := d.cli.ContainerCreate(ctx, &container.Config{
		Image:      image,
		Entrypoint: []string{agentPath},
		Labels:     map[string]string{labelAgent: bin.sum},
	}, &container.HostConfig{
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: agentDir}},
	}, nil, nil, name)
	if cerrdefs.IsConflict(err) {
		if old, ierr := d.cli.ContainerInspect(ctx, name); ierr == nil && !inFlight(&old, time.Now()) {
			// Left by an up that died mid-fill: take over.
			d.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create container %s to fill volume %s: %w", name, vol, err)
	}
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		d.cli.ContainerRemove(rmCtx, c.ID, container.RemoveOptions{Force: true})
	}()
	// Filled by the up that held the lock just before: a second copy
	// would replace the file under servers starting from it.
	if _, err := d.cli.VolumeInspect(ctx, ready); err == nil {
		return true, nil
	}
	progress(backend.Event{Message: fmt.Sprintf("putting this version of the agent into the Docker volume %s (once per version)", vol)})
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeAgentTar(pw, d.agentPath, bin.size)) }()
	err = d.cli.CopyToContainer(ctx, c.ID, "/", pr, container.CopyToContainerOptions{})
	pr.Close()
	if err != nil {
		return false, fmt.Errorf("copy the agent into volume %s: %w", vol, err)
	}
	st, err := d.cli.ContainerStatPath(ctx, c.ID, agentPath)
	if err != nil {
		return false, fmt.Errorf("check the agent in volume %s: %w", vol, err)
	}
	if st.Size != bin.size {
		return false, fmt.Errorf("check the agent in volume %s: %d bytes, want %d; run up again", vol, st.Size, bin.size)
	}
	if _, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: ready, Labels: lbl}); err != nil {
		return false, fmt.Errorf("create volume %s: %w", ready, err)
	}
	return true, nil
}

// removeAgentVolumes removes the agent's volumes that no container uses
// (site down). The Engine refuses to remove one in use, which stays, and
// so does its -ready volume.
func (d *Docker) removeAgentVolumes(ctx context.Context, progress func(backend.Event)) error {
	vols, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", labelAgent))})
	if err != nil {
		return fmt.Errorf("list the agent's volumes: %w", err)
	}
	remove := func(name string) (bool, error) {
		err := d.cli.VolumeRemove(ctx, name, false)
		switch {
		case err == nil:
			progress(backend.Event{Message: fmt.Sprintf("removed the agent's volume %s", name)})
			return true, nil
		case cerrdefs.IsNotFound(err):
			return true, nil
		case cerrdefs.IsConflict(err):
			return false, nil // in use
		}
		return false, fmt.Errorf("remove volume %s: %w", name, err)
	}
	for _, v := range vols.Volumes {
		sum := v.Labels[labelAgent]
		if v.Labels[backend.LabelManaged] != backend.ManagedBy || len(sum) < 16 {
			continue
		}
		vol, ready := agentVolumes(sum)
		if v.Name != vol {
			continue // the -ready volume goes with its volume
		}
		gone, err := remove(vol)
		if err != nil {
			return err
		}
		if gone {
			if _, err := remove(ready); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeAgentTar writes an archive of the agent binary at agentPath.
func writeAgentTar(w io.Writer, agent string, size int64) error {
	f, err := os.Open(agent)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(agentDir, "/") + "/", Mode: 0o755, ModTime: now}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(agentPath, "/"), Mode: 0o755, Size: size, ModTime: now}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, size); err != nil {
		return err
	}
	return tw.Close()
}
