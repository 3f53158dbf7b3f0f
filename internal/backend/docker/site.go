package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/spinbook/spinbook/internal/backend"
)

// SiteUp implements backend.SiteManager: it creates the network servers
// join (docker.network), labelled as spinbook's.
func (d *Docker) SiteUp(ctx context.Context, progress func(backend.Event)) error {
	return d.ensureNetwork(ctx, progress)
}

// ensureNetwork creates docker.network unless it exists.
func (d *Docker) ensureNetwork(ctx context.Context, progress func(backend.Event)) error {
	name := d.cfg.Docker.Network
	_, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, d.explain(err))
	}
	progress(backend.Event{Message: fmt.Sprintf("creating the Docker network %s", name)})
	_, err = d.cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{backend.LabelManaged: backend.ManagedBy},
	})
	if err != nil && !cerrdefs.IsConflict(err) { // another command made it meanwhile
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// SiteDown implements backend.SiteManager: it removes the network SiteUp
// created, unless a server still exists (running or not) or the network
// is not spinbook's, and the agent's volumes no container uses.
func (d *Docker) SiteDown(ctx context.Context, progress func(backend.Event)) error {
	if err := d.removeNetwork(ctx, progress); err != nil {
		return err
	}
	return d.removeAgentVolumes(ctx, progress)
}

// removeNetwork removes the network SiteUp created (see SiteDown).
func (d *Docker) removeNetwork(ctx context.Context, progress func(backend.Event)) error {
	name := d.cfg.Docker.Network
	n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect network %s: %w", name, d.explain(err))
	}
	if n.Labels[backend.LabelManaged] != backend.ManagedBy {
		progress(backend.Event{Message: fmt.Sprintf("network %s was not made by spinbook; leaving it", name)})
		return nil
	}
	servers, err := d.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", backend.LabelManaged+"="+backend.ManagedBy), filters.Arg("network", n.ID)),
	})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	if len(servers) > 0 || len(n.Containers) > 0 {
		var users []string
		for _, s := range servers {
			users = append(users, s.Labels[backend.LabelUser])
		}
		return fmt.Errorf("network %s is still in use by %d container(s) (servers of: %s); run `spinbook down` for each first",
			name, max(len(servers), len(n.Containers)), strings.Join(users, ", "))
	}
	progress(backend.Event{Message: fmt.Sprintf("removing the Docker network %s", name)})
	if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}
