package docker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/tlscert"
)

// start starts container id, hands the agent its spec on the container's
// stdin, and waits until Jupyter answers.
func (d *Docker) start(ctx context.Context, id string, spec backend.Spec, imageID string, in placement, progress func(backend.Event)) (backend.Server, error) {
	// Attached before the start, so that nothing else can be the first.
	stdin, err := d.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true})
	if err != nil {
		return backend.Server{}, fmt.Errorf("attach to the container's stdin: %w", err)
	}
	defer stdin.Close()
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return backend.Server{}, fmt.Errorf("start container %s: %w", ContainerName(spec.User), err)
	}
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return backend.Server{}, fmt.Errorf("inspect container: %w", err)
	}
	front, health := publishedPort(&c, frontNat), publishedPort(&c, healthNat)
	progress(backend.Event{Message: fmt.Sprintf("container %s started; front door on port %d, health on %d", ContainerName(spec.User), front, health)})

	as, err := spec.AgentSpec()
	if err != nil {
		return backend.Server{}, err
	}
	as.User = spec.User
	as.Workspace = in.Workspace
	as.StateDir = runDir
	as.CredentialsDir = in.Home
	as.CacheDir = cacheDir(in.Home)
	as.ProbeCache = backend.KeptProbe("docker", imageID)
	// Bundles must outlive the container: on the workspace volume, inside
	// .git where they are no part of the checkout.
	as.BundleDir = path.Join(in.Workspace, ".git", "spinbook-bundles")
	// The Engine kills the container stop_grace after its SIGTERM.
	as.StopGrace = d.cfg.Docker.StopGraceDuration
	as.InheritListeners = false
	as.Listen = "0.0.0.0"
	as.FrontPort = frontPort
	as.HealthPort = healthPort
	as.Hosts = append(slices.Clip(as.Hosts), d.urlHost()) // the host of the URL (describe)
	as.Allow = allowWithGateway(as.Allow, &c)
	if err := handSpec(stdin, as); err != nil {
		return backend.Server{}, err
	}
	srv, err := d.waitReady(ctx, &c, progress)
	if err != nil {
		return srv, err
	}
	srv.ControlToken = as.ControlToken
	srv.TLSFingerprint = d.fingerprint(srv.URL)
	backend.KeepProbe(ctx, d.log, "docker", srv, as.ControlToken, imageID, as.ProbeCache)
	return srv, nil
}

// handSpec writes the agent's spec to the container's stdin and closes it.
func handSpec(stdin types.HijackedResponse, as backend.AgentSpec) error {
	data, err := json.Marshal(as)
	if err != nil {
		return fmt.Errorf("encode agent spec: %w", err)
	}
	if _, err := stdin.Conn.Write(data); err != nil {
		return fmt.Errorf("hand the agent its spec: %w", err)
	}
	if err := stdin.CloseWrite(); err != nil {
		return fmt.Errorf("hand the agent its spec: %w", err)
	}
	return nil
}

// controlToken reads back the control token of the agent in container id.
func (d *Docker) controlToken(ctx context.Context, id string) (string, error) {
	stdout, stderr, code, err := d.execIn(ctx, id, "", []string{agentPath, "agent", "read-control-token", "--file", tokenPath})
	if err != nil {
		return "", fmt.Errorf("read the control token: %w", err)
	}
	if code != 0 {
		return "", fmt.Errorf("read the control token: exit code %d: %s", code, strings.TrimSpace(stderr))
	}
	return strings.TrimSpace(stdout), nil
}

// execIn runs cmd in container id as user ("": the container's, root),
// and returns its output and exit code.
func (d *Docker) execIn(ctx context.Context, id, user string, cmd []string) (stdout, stderr string, code int, err error) {
	ex, err := d.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User:         user,
		Cmd:          cmd,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return "", "", 0, err
	}
	hj, err := d.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", 0, err
	}
	defer hj.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, hj.Reader); err != nil {
		return "", "", 0, err
	}
	for {
		st, err := d.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return "", "", 0, err
		}
		if !st.Running {
			return out.String(), errb.String(), st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return "", "", 0, context.Cause(ctx)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fingerprint is the SHA-256 fingerprint of the certificate the front door
// at url serves, or "" for plain HTTP.
func (d *Docker) fingerprint(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) // only to read the certificate
	if err != nil {
		d.log.Debug("read the front door's certificate", "err", err)
		return ""
	}
	defer conn.Close()
	if certs := conn.ConnectionState().PeerCertificates; len(certs) > 0 {
		return tlscert.FingerprintDER(certs[0].Raw)
	}
	return ""
}

// waitReady polls the agent's /readyz (every 5 ms) until Jupyter
// answers, the container c stops, or ctx ends.
func (d *Docker) waitReady(ctx context.Context, c *container.InspectResponse, progress func(backend.Event)) (backend.Server, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped, waitErr := d.cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	base := d.healthBase(c)
	began := time.Now()
	nextNote := began.Add(3 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if backend.Ready(hc, base) {
			srv := d.describe(c)
			srv.State, srv.Ready, srv.Detail = backend.Running, true, ""
			return srv, nil
		}
		if time.Now().After(nextNote) {
			progress(backend.Event{Message: fmt.Sprintf("waiting for Jupyter to answer (%s)", time.Since(began).Round(time.Second))})
			nextNote = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return backend.Server{}, fmt.Errorf("wait for Jupyter: %w", context.Cause(ctx))
		case <-stopped:
			return backend.Server{}, d.didNotStart(ctx, c.ID)
		case err := <-waitErr:
			if ctx.Err() != nil {
				return backend.Server{}, fmt.Errorf("wait for Jupyter: %w", context.Cause(ctx))
			}
			return backend.Server{}, fmt.Errorf("watch container: %w", err)
		case <-tick.C:
		}
	}
}

// didNotStart says why container id stopped before Jupyter answered.
func (d *Docker) didNotStart(ctx context.Context, id string) error {
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("the server did not start (inspect container: %w)", err)
	}
	user := c.Config.Labels[backend.LabelUser]
	return fmt.Errorf("the server did not start: %s (full log: spinbook logs --user %s)", d.failure(ctx, &c), user)
}

// failure says why container c stopped: the agent's own error from its
// log when it wrote one, else how the container ended.
func (d *Docker) failure(ctx context.Context, c *container.InspectResponse) string {
	if c.State.OOMKilled {
		return "it ran out of memory (killed by the kernel); choose a larger size"
	}
	logs, err := d.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"})
	if err == nil {
		var buf bytes.Buffer
		stdcopy.StdCopy(&buf, &buf, logs)
		logs.Close()
		if msg := backend.AgentError(buf.String()); msg != "" {
			return msg
		}
	}
	return exitDetail(c.State)
}

func exitDetail(st *container.State) string {
	switch {
	case st == nil:
		return "unknown state"
	case st.OOMKilled:
		return "killed: out of memory"
	case st.Status == "created":
		return "never started"
	case st.ExitCode == 137:
		return "killed (exit code 137)"
	case st.Error != "":
		return st.Error
	}
	return fmt.Sprintf("exit code %d", st.ExitCode)
}
