// Package docker runs each user's server as a container on a Docker Engine,
// through the Engine API (the Engine $DOCKER_HOST names: unix, tcp or ssh;
// else the local socket). Any Jupyter image serves: spinbook's static agent,
// from a read-only volume of its own (agent.go), is the container's
// entrypoint, and Jupyter runs as the image's own user. The Engine is the
// truth about what runs: everything the backend creates carries the label
// managed-by=spinbook, servers and workspaces also spinbook.user=USER.
//
// How the spec reaches the agent: it holds the password hash and secrets,
// so it never goes into the container's Env, Cmd or labels, nor onto a
// disk. The container is created with a stdin that only its first attach
// may write (OpenStdin, StdinOnce); the backend attaches to it before the
// start, and once the agent runs (agent --spec-stdin) writes the spec and
// closes it. The agent reads it to the end, keeps only the control token
// (0600, in the container's tmpfs at /run/spinbook, for save and down),
// and no later attach can write to that stdin. An attach works the same
// against a remote Engine.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/cli/cli/connhelper"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

var (
	_ backend.Backend     = (*Docker)(nil)
	_ backend.Logger      = (*Docker)(nil)
	_ backend.SiteManager = (*Docker)(nil)
	_ backend.Purger      = (*Docker)(nil)
)

// Where things live inside a container.
const (
	agentDir   = "/spinbook"
	agentPath  = agentDir + "/spinbook"
	runDir     = "/run/spinbook"           // a tmpfs: exit.json, the control token
	tokenPath  = runDir + "/control-token" // the control API's token, for save and down
	frontPort  = 8888
	healthPort = 8889
	// specWait is how long the agent waits for its spec after start.
	specWait = 2 * time.Minute
)

var (
	frontNat  = nat.Port(strconv.Itoa(frontPort) + "/tcp")
	healthNat = nat.Port(strconv.Itoa(healthPort) + "/tcp")
)

// Docker is the docker backend.
type Docker struct {
	cfg       *config.Config
	cli       *client.Client
	agentPath string
	log       *slog.Logger
}

// New returns the docker backend for cfg, talking to the Engine that
// $DOCKER_HOST names. agentPath is the static linux agent binary copied
// into containers ("" = spinbook-agent beside this executable:
// backend.AgentBinary). Nothing is contacted yet.
func New(cfg *config.Config, log *slog.Logger, agentPath string) (*Docker, error) {
	agentPath, err := backend.AgentBinary(agentPath)
	if err != nil {
		return nil, err
	}
	cli, err := NewClient()
	if err != nil {
		return nil, err
	}
	return &Docker{cfg: cfg, cli: cli, agentPath: agentPath, log: log}, nil
}

// NewClient returns an Engine API client for $DOCKER_HOST (and the other
// DOCKER_* variables): unix:// and tcp:// directly, ssh://[user@]host
// through ssh and `docker system dial-stdio` on that host, as the docker
// CLI does; unset, the local socket.
func NewClient() (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		helper, err := connhelper.GetConnectionHelper(host)
		if err != nil {
			return nil, fmt.Errorf("docker client (DOCKER_HOST=%q): %w", host, err)
		}
		if helper != nil {
			opts = append(opts, client.WithHost(helper.Host), client.WithDialContext(helper.Dialer))
		}
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client (DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}
	return cli, nil
}

// Close releases the connection to the Engine.
func (d *Docker) Close() error { return d.cli.Close() }

// Name implements backend.Backend.
func (d *Docker) Name() string { return "docker" }

// ContainerName and VolumeName are what the backend calls user's container
// and workspace volume.
func ContainerName(user string) string { return "spinbook-" + user }
func VolumeName(user string) string    { return "spinbook-" + user + "-work" }

func labels(user string) map[string]string {
	return map[string]string{backend.LabelManaged: backend.ManagedBy, backend.LabelUser: user}
}

// Up implements backend.Backend.
func (d *Docker) Up(ctx context.Context, spec backend.Spec, progress func(backend.Event)) (backend.Server, error) {
	if err := ctx.Err(); err != nil {
		return backend.Server{}, fmt.Errorf("up: %w", context.Cause(ctx))
	}
	user := spec.User
	var size config.Size
	if spec.Size != "" {
		s, err := d.cfg.LookupSize(spec.Size)
		if err != nil {
			return backend.Server{}, err
		}
		size = s
	}

	// The agent is checked and summed (agent.go) meanwhile.
	type checked struct {
		bin agentBinary
		err error
	}
	agent := make(chan checked, 1)
	go func() {
		bin, err := d.checkAgent(ctx)
		agent <- checked{bin, err}
	}()
	c, err := d.inspect(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	if c != nil && c.State.Running && c.Config.Labels[backend.LabelAccessDigest] != spec.AccessDigest {
		progress(backend.Event{Message: "the access settings (password, allowlist, trusted proxies or TLS) changed; restarting the server so that they take effect and old sessions end"})
		if err := d.Down(ctx, user, progress); err != nil {
			return backend.Server{}, err
		}
		c = nil
	}
	if c != nil {
		if c.State.Running {
			srv := d.server(ctx, c)
			if srv.Ready {
				return srv, nil
			}
			progress(backend.Event{Message: "server already starting; waiting for Jupyter"})
			return d.waitReady(ctx, c, progress)
		}
		if inFlight(c, time.Now()) {
			return backend.Server{}, fmt.Errorf("container %s: another spinbook command is bringing it up; try again in a moment", ContainerName(user))
		}
		progress(backend.Event{Message: fmt.Sprintf("the previous container is %s (%s); starting a new one", c.State.Status, exitDetail(c.State))})
		if err := d.remove(ctx, c.ID); err != nil {
			return backend.Server{}, err
		}
	}

	checkedAgent := <-agent
	if checkedAgent.err != nil {
		return backend.Server{}, checkedAgent.err
	}
	img, err := d.ensureImage(ctx, progress)
	if err != nil {
		return backend.Server{}, err
	}
	// The network, the workspace volume and the agent's volume do not
	// depend on one another: asked for at once.
	in := placeIn(img)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = make([]error, 3)
	)
	say := func(ev backend.Event) {
		mu.Lock()
		defer mu.Unlock()
		progress(ev)
	}
	wg.Go(func() { errs[0] = d.ensureNetwork(ctx, say) })
	wg.Go(func() { errs[1] = d.ensureVolume(ctx, user) })
	wg.Go(func() { in.AgentVolume, errs[2] = d.ensureAgentVolume(ctx, checkedAgent.bin, img.ID, say) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return backend.Server{}, err
	}
	id, err := d.create(ctx, spec, size, in)
	if err != nil {
		return backend.Server{}, err
	}
	srv, err := d.start(ctx, id, spec, img.ID, in, progress)
	if err != nil {
		// Leave no half-started container behind; the volume stays.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		d.remove(rmCtx, id)
		return backend.Server{}, err
	}
	srv.Started = true
	return srv, nil
}

// createdGrace is how long a container that was created but never started
// counts as another `up` in progress (between its create and its start,
// up gives the workspace to the image's user and copies the agent in);
// after it, such a container is a leftover of an up that died, removed and
// made anew.
const createdGrace = 2 * time.Minute

// inFlight reports whether c is another `up`'s container, created but not
// yet started: removing it would pull it from under that command.
func inFlight(c *container.InspectResponse, now time.Time) bool {
	if c.State == nil || c.State.Status != container.StateCreated {
		return false
	}
	created, err := time.Parse(time.RFC3339Nano, c.Created)
	return err == nil && now.Sub(created) < createdGrace
}

// Down implements backend.Backend: the agent gets SIGTERM and
// docker.stop_grace to save the workspace and stop its kernels, then the
// container is removed; the workspace volume stays.
func (d *Docker) Down(ctx context.Context, user string, progress func(backend.Event)) error {
	c, err := d.inspect(ctx, user)
	if err != nil || c == nil {
		return err
	}
	if c.State.Running {
		grace := d.cfg.Docker.StopGraceDuration
		if dl, ok := ctx.Deadline(); ok && time.Until(dl)-5*time.Second < grace {
			grace = max(time.Until(dl)-5*time.Second, time.Second)
		}
		secs := int(grace / time.Second)
		progress(backend.Event{Message: fmt.Sprintf("stopping container %s (up to %s for the agent to save and stop its kernels)", ContainerName(user), grace)})
		if err := d.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stop container %s: %w", ContainerName(user), err)
		}
	}
	return d.remove(ctx, c.ID)
}

func (d *Docker) remove(ctx context.Context, id string) error {
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container: %w", err)
	}
	return nil
}

// Purge implements backend.Purger: it removes user's workspace volume.
func (d *Docker) Purge(ctx context.Context, user string, progress func(backend.Event)) error {
	c, err := d.inspect(ctx, user)
	if err != nil {
		return err
	}
	if c != nil {
		return fmt.Errorf("purge %s's workspace: the server still exists; run `spinbook down` first", user)
	}
	progress(backend.Event{Message: fmt.Sprintf("removing the workspace volume %s", VolumeName(user))})
	err = d.cli.VolumeRemove(ctx, VolumeName(user), false)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", VolumeName(user), err)
	}
	return nil
}

// Status implements backend.Backend.
func (d *Docker) Status(ctx context.Context, user string) (backend.Server, error) {
	c, err := d.inspect(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	if c == nil {
		return backend.Server{User: user, Backend: d.Name(), State: backend.Absent}, nil
	}
	srv := d.server(ctx, c)
	if srv.State == backend.Running {
		if srv.ControlToken, err = d.controlToken(ctx, c.ID); err != nil {
			d.log.Debug("no control token", "user", user, "err", err)
		}
		srv.TLSFingerprint = d.fingerprint(srv.URL)
	}
	return srv, nil
}

// List implements backend.Backend: every container labelled as spinbook's.
func (d *Docker) List(ctx context.Context) ([]backend.Server, error) {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", backend.LabelManaged+"="+backend.ManagedBy), filters.Arg("label", backend.LabelUser)),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", d.explain(err))
	}
	var out []backend.Server
	for _, s := range list {
		user := s.Labels[backend.LabelUser]
		if config.ValidateUser(user) != nil || s.Names == nil || !containsName(s.Names, ContainerName(user)) {
			continue
		}
		c, err := d.cli.ContainerInspect(ctx, s.ID)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, d.server(ctx, &c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

func containsName(names []string, want string) bool {
	for _, n := range names {
		if strings.TrimPrefix(n, "/") == want {
			return true
		}
	}
	return false
}

// Logs implements backend.Logger: the container's output, which is the
// agent's log and Jupyter's.
func (d *Docker) Logs(ctx context.Context, user string, follow bool, w io.Writer) error {
	c, err := d.inspect(ctx, user)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("no log for user %s: there is no container %s (its log goes with it on `spinbook down`)", user, ContainerName(user))
	}
	rc, err := d.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	defer rc.Close()
	if c.Config != nil && c.Config.Tty {
		_, err = io.Copy(w, rc)
	} else {
		_, err = stdcopy.StdCopy(w, w, rc)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("read log: %w", err)
	}
	return nil
}

// inspect returns user's container, or nil when there is none.
func (d *Docker) inspect(ctx context.Context, user string) (*container.InspectResponse, error) {
	c, err := d.cli.ContainerInspect(ctx, ContainerName(user))
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("inspect container: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("inspect container %s: %w", ContainerName(user), d.explain(err))
	}
	if c.Config == nil || c.Config.Labels[backend.LabelManaged] != backend.ManagedBy || c.Config.Labels[backend.LabelUser] != user {
		return nil, fmt.Errorf("container %s exists but was not made by spinbook for %s; rename or remove it", ContainerName(user), user)
	}
	return &c, nil
}

// explain adds what to do to an error reaching the Engine.
func (d *Docker) explain(err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("%w (is the Docker Engine running? DOCKER_HOST=%q)", err, os.Getenv("DOCKER_HOST"))
	}
	return err
}

// server describes container c as it is now, readiness included.
func (d *Docker) server(ctx context.Context, c *container.InspectResponse) backend.Server {
	srv := d.describe(c)
	if !c.State.Running {
		if c.State.ExitCode == 0 && c.State.Status == "exited" && !c.State.OOMKilled {
			srv.State = backend.Stopped
			srv.Detail = "stopped; run `spinbook up` to start it again"
		} else {
			srv.State = backend.Failed
			srv.Detail = "the container is not running (" + d.failure(ctx, c) + "); run `spinbook up` to start it again, `spinbook logs` to see why"
		}
		return srv
	}
	srv.State = backend.Running
	hc := &http.Client{Timeout: time.Second}
	srv.Ready = backend.Ready(hc, d.healthBase(c))
	hc.CloseIdleConnections()
	if !srv.Ready {
		srv.Detail = "Jupyter is starting or not answering"
	}
	return srv
}

// describe fills what c's configuration says: user, URLs, workspace, start.
func (d *Docker) describe(c *container.InspectResponse) backend.Server {
	user := c.Config.Labels[backend.LabelUser]
	srv := backend.Server{User: user, Backend: d.Name(), Workspace: "volume " + VolumeName(user), AccessDigest: c.Config.Labels[backend.LabelAccessDigest]}
	if p := publishedPort(c, frontNat); p != 0 {
		scheme := "http"
		if c.Config.Labels[backend.LabelTLS] == "true" {
			scheme = "https"
		}
		srv.URL = fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(d.urlHost(), strconv.Itoa(p)))
		srv.HealthURL = d.healthBase(c) + "/healthz"
	}
	for _, m := range c.Mounts {
		if m.Type == mount.TypeVolume && m.Name == VolumeName(user) {
			srv.Workspace = fmt.Sprintf("%s (volume %s)", m.Destination, m.Name)
		}
	}
	if c.State != nil {
		if t, err := time.Parse(time.RFC3339Nano, c.State.StartedAt); err == nil && !t.IsZero() && t.Year() > 1 {
			srv.StartedAt = t.UTC().Truncate(time.Second)
		}
	}
	return srv
}

func (d *Docker) healthBase(c *container.InspectResponse) string {
	return "http://" + net.JoinHostPort(d.urlHost(), strconv.Itoa(publishedPort(c, healthNat)))
}

// urlHost is the host a person uses to reach a published port:
// docker.publish_host, or for 0.0.0.0 the Engine's host.
func (d *Docker) urlHost() string {
	h := d.cfg.Docker.PublishHost
	if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
		return h
	}
	if u, err := url.Parse(os.Getenv("DOCKER_HOST")); err == nil && (u.Scheme == "tcp" || u.Scheme == "ssh") && u.Hostname() != "" {
		return u.Hostname()
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		return name
	}
	return "127.0.0.1"
}

// publishedPort is the host port the Engine published container port p on.
func publishedPort(c *container.InspectResponse, p nat.Port) int {
	if c.NetworkSettings == nil {
		return 0
	}
	for _, b := range c.NetworkSettings.Ports[p] {
		if n, err := strconv.Atoi(b.HostPort); err == nil {
			return n
		}
	}
	return 0
}

// ensureVolume creates user's workspace volume unless it exists.
func (d *Docker) ensureVolume(ctx context.Context, user string) error {
	_, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: VolumeName(user), Labels: labels(user)})
	if err != nil {
		return fmt.Errorf("create volume %s: %w", VolumeName(user), err)
	}
	return nil
}
