package docker

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// cacheDir is the agent's cache directory in a container: what it learned
// of Jupyter's options, which the backend carries to the next container of
// the image (internal/backend/probecarry.go).
func cacheDir(home string) string { return path.Join(home, ".cache", "spinbook") }

// create creates user's container: the agent as entrypoint, the spec's
// tmpfs, the workspace volume, the ports, the size.
func (d *Docker) create(ctx context.Context, spec backend.Spec, size config.Size, in placement) (string, error) {
	cfg, host, netCfg := containerConfig(d.cfg, spec, size, in)
	resp, err := d.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, ContainerName(spec.User))
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return "", fmt.Errorf("create container %s: another spinbook command is bringing it up; try again in a moment: %w", ContainerName(spec.User), err)
		}
		return "", fmt.Errorf("create container %s: %w", ContainerName(spec.User), err)
	}
	return resp.ID, nil
}

// placement is where a server lives in a container of an image.
type placement struct {
	Home      string // the image user's home (imageHome)
	Workspace string // Home/work, the workspace volume's mount point
	// ImageUser is the image's USER ("" for root), whom the agent
	// becomes (see containerConfig).
	ImageUser string
	// AgentVolume holds the agent binary, mounted read-only at agentDir
	// (agent.go).
	AgentVolume string
}

func placeIn(img image.InspectResponse) placement {
	home := imageHome(img)
	in := placement{Home: home, Workspace: path.Join(home, "work")}
	if img.Config != nil {
		in.ImageUser = img.Config.User
	}
	return in
}

// containerConfig is what the Engine is asked to create for spec.
//
// The agent starts as root and, before anything of the image runs, gives
// the workspace (a new volume is root's) and a missing home to the image's
// user and becomes that user for good (agent --user): Jupyter and the
// kernels run as the image's user, as they would under its USER, and the
// backend needs no copy into the container to own the workspace.
func containerConfig(c *config.Config, spec backend.Spec, size config.Size, in placement) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	user := spec.User
	lbl := labels(user)
	if spec.Size != "" {
		lbl[backend.LabelSize] = spec.Size
	}
	if spec.AccessDigest != "" {
		lbl[backend.LabelAccessDigest] = spec.AccessDigest
	}
	if spec.Agent.TLSCert != "" || spec.Agent.TLSSelfSigned {
		lbl[backend.LabelTLS] = "true"
	}
	grace := int(c.Docker.StopGraceDuration / time.Second)
	init := true
	cfg := &container.Config{
		// The spec arrives on stdin, written by the first (and only)
		// attach: see the package comment.
		Entrypoint:   entrypoint(in),
		Cmd:          []string{},
		User:         "0",
		Env:          []string{"HOME=" + in.Home},
		OpenStdin:    true,
		StdinOnce:    true,
		AttachStdin:  true,
		Image:        c.Image,
		Labels:       lbl,
		ExposedPorts: nat.PortSet{frontNat: {}, healthNat: {}},
		StopTimeout:  &grace,
	}
	publish := []nat.PortBinding{{HostIP: c.Docker.PublishHost}} // the Engine picks the port
	host := &container.HostConfig{
		PortBindings: nat.PortMap{frontNat: publish, healthNat: publish},
		Mounts: []mount.Mount{{
			Type:   mount.TypeVolume,
			Source: VolumeName(user),
			Target: in.Workspace,
		}, {
			Type:     mount.TypeVolume,
			Source:   in.AgentVolume,
			Target:   agentDir,
			ReadOnly: true,
		}},
		Tmpfs: map[string]string{runDir: "mode=1777,size=16m"},
		// docker-init as PID 1 reaps the kernels' orphans and passes
		// SIGTERM on to the agent.
		Init:    &init,
		ShmSize: size.ShmBytes,
		Resources: container.Resources{
			NanoCPUs: size.NanoCPUs,
			Memory:   size.MemoryBytes,
		},
	}
	if size.GPUCount != 0 {
		host.DeviceRequests = []container.DeviceRequest{{
			Driver:       "nvidia",
			Count:        size.GPUCount, // -1: all
			Capabilities: [][]string{{"gpu"}},
		}}
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{c.Docker.Network: {}}}
	return cfg, host, netCfg
}

// entrypoint is the agent's command line in a container placed as in.
func entrypoint(in placement) []string {
	args := []string{agentPath, "agent", "--spec-stdin", specWait.String(), "--control-token-file", tokenPath}
	if in.ImageUser != "" {
		args = append(args, "--user", in.ImageUser)
	}
	return args
}

// allowWithGateway adds the container network's gateway to allow when allow
// admits this machine (loopback): a client on the Docker host reaches a
// published port through the Engine's proxy, so the agent sees the gateway
// as the peer, never 127.0.0.1. Clients from other machines keep their own
// address (the Engine forwards with DNAT).
func allowWithGateway(allow []string, c *container.InspectResponse) []string {
	if !backend.AllowsLoopback(allow) || c.NetworkSettings == nil {
		return allow
	}
	out := append([]string(nil), allow...)
	for _, ep := range c.NetworkSettings.Networks {
		for _, gw := range []string{ep.Gateway, ep.IPv6Gateway} {
			if a, err := netip.ParseAddr(gw); err == nil {
				out = append(out, netip.PrefixFrom(a, a.BitLen()).String())
			}
		}
	}
	return out
}
