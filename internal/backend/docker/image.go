package docker

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/spinbook/spinbook/internal/backend"
)

// What goes into a container: the image (pulled when missing) and the
// static agent binary.

// ensureImage returns the configured image, pulling it with progress when
// the Engine does not have it.
func (d *Docker) ensureImage(ctx context.Context, progress func(backend.Event)) (image.InspectResponse, error) {
	ref := d.cfg.Image
	img, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return img, fmt.Errorf("inspect image %s: %w", ref, d.explain(err))
	}
	progress(backend.Event{Message: fmt.Sprintf("pulling image %s", ref)})
	rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return img, pullError(ref, err)
	}
	err = pullProgress(rc, progress)
	rc.Close()
	if err != nil {
		if ctx.Err() != nil {
			return img, fmt.Errorf("pull image %s: %w", ref, context.Cause(ctx))
		}
		return img, pullError(ref, err)
	}
	img, err = d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return img, fmt.Errorf("inspect image %s after pulling it: %w", ref, err)
	}
	return img, nil
}

func pullError(ref string, err error) error {
	return fmt.Errorf("pull image %s: %w (check the image name in the config's image key, that the Engine can reach its registry, or `docker login` to it)", ref, err)
}

// pullProgress reads the Engine's pull stream and reports, every few
// seconds, how many layers are done and how much has been downloaded.
func pullProgress(r io.Reader, progress func(backend.Event)) error {
	dec := json.NewDecoder(r)
	type layer struct{ current, total int64 }
	layers := map[string]*layer{}
	done := map[string]bool{}
	next := time.Now().Add(2 * time.Second)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if m.ID != "" {
			l := layers[m.ID]
			if l == nil {
				l = &layer{}
				layers[m.ID] = l
			}
			if m.Progress != nil && m.Status == "Downloading" {
				l.current, l.total = m.Progress.Current, m.Progress.Total
			}
			if m.Status == "Pull complete" || m.Status == "Already exists" {
				done[m.ID] = true
			}
		}
		if time.Now().After(next) {
			var cur, total int64
			for _, l := range layers {
				cur, total = cur+l.current, total+l.total
			}
			progress(backend.Event{Message: fmt.Sprintf("pulling: %d of %d layers done, %d of %d MiB downloaded", len(done), len(layers), cur>>20, total>>20)})
			next = time.Now().Add(3 * time.Second)
		}
	}
}

// imageHome is the image user's home: $HOME from the image, else its
// working directory, else the Jupyter images' /home/jovyan.
func imageHome(img image.InspectResponse) string {
	if img.Config != nil {
		for _, e := range img.Config.Env {
			if h, ok := strings.CutPrefix(e, "HOME="); ok && path.IsAbs(h) && h != "/" {
				return path.Clean(h)
			}
		}
		if w := img.Config.WorkingDir; path.IsAbs(w) && w != "/" {
			return path.Clean(w)
		}
	}
	return "/home/jovyan"
}

// checkStaticLinux says why the ELF file at p is not a static executable
// for arch (as the Engine names it: x86_64, aarch64).
func checkStaticLinux(p, arch string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("not a Linux executable: %w", err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"x86_64": elf.EM_X86_64, "amd64": elf.EM_X86_64, "aarch64": elf.EM_AARCH64, "arm64": elf.EM_AARCH64}[arch]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("built for %s, the Engine runs %s", f.Machine, arch)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("it is dynamically linked (built with cgo)")
		}
	}
	return nil
}

func goArch(arch string) string {
	switch arch {
	case "aarch64", "arm64":
		return "arm64"
	}
	return "amd64"
}
