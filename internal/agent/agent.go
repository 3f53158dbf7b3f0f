// Package agent is what runs inside every server, whatever the backend: it
// starts Jupyter where only the agent can reach it, serves the front door
// (login, allowlist, proxy) and a health listener that answers from Go even
// while kernels keep every core busy, and on SIGTERM stops Jupyter and its
// kernels cleanly.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/gateway"
	"github.com/spinbook/spinbook/internal/secret"
)

// stopGrace is how long Jupyter gets to stop its kernels after SIGTERM.
const stopGrace = 10 * time.Second

// Agent is one server's agent.
type Agent struct {
	spec   backend.AgentSpec
	log    *slog.Logger
	output io.Writer // where Jupyter's output goes (the server log)
	redact *secret.Redactor
	ready  atomic.Bool
	// metrics are served at /metrics on the health port; set first in Run.
	metrics *metrics
	repo    *repoState // the team repo; nil when none is configured

	// idle tracks activity and applies the idle rules; set before the
	// front door serves.
	idle *idleTracker
	// idleForMetrics is idle for the scrapes of /metrics, which start
	// before it is set.
	idleForMetrics atomic.Pointer[idleTracker]
	// front is the front door, which tells idle which kernels run a cell;
	// set before idle is watched.
	front kernelWire
	// spot is what AWS said about the spot instance; stops keeps the
	// record of a stop AWS forced (nil: no model store to keep it in).
	spot  *spotState
	stops stopRecorder
	// jupyterName says which Jupyter runs, such as "jupyterlab 4.6.6
	// (jupyter_server 2.21.1)"; set before the front door serves.
	jupyterName string
	// probeCache is what the probe learned, as the control API's status
	// reports it (probecarry.go); read before Jupyter started.
	probeCache map[string]string
}

// New returns an agent for spec that logs to log and copies Jupyter's
// output, line by line, to output; both with every secret the agent knows
// redacted.
func New(spec backend.AgentSpec, log *slog.Logger, output io.Writer) *Agent {
	r := &secret.Redactor{}
	r.Add(spec.PasswordHash)
	r.Add(spec.TLSKey)
	r.Add(spec.Secrets...)
	a := &Agent{spec: spec, log: slog.New(r.Handler(log.Handler())), output: output, redact: r, spot: &spotState{}}
	if spec.Models != nil {
		a.stops = storeRecorder{open: a.modelStore}
	}
	return a
}

// Run serves until ctx is done (the caller cancels it on SIGTERM), then
// stops Jupyter and returns nil; it returns an error if the server could not
// start or Jupyter died.
func (a *Agent) Run(ctx context.Context) error {
	a.scrubEnv() // before any child process (the Jupyter probe, git) starts
	front, health, err := a.listeners()
	if err != nil {
		return err
	}
	defer front.Close()
	defer health.Close()

	hash, err := secret.ParsePasswordHash(a.spec.PasswordHash)
	if err != nil {
		return fmt.Errorf("password hash: %w", err)
	}
	portalKey, err := parsePortalKey(a.spec.PortalKey)
	if err != nil {
		return err
	}
	allow, err := parsePrefixes(a.spec.Allow)
	if err != nil {
		return fmt.Errorf("access.allow: %w", err)
	}
	trusted, err := parsePrefixes(a.spec.TrustedProxies)
	if err != nil {
		return fmt.Errorf("access.trusted_proxies: %w", err)
	}
	tlsCfg, fingerprint, err := a.tlsConfig(front.Addr().String())
	if err != nil {
		return err
	}

	// Health answers from the first moment, so a backend can tell "starting"
	// from "dead"; /metrics beside it.
	a.metrics = newMetrics(a.lastActive, a.stopAt)
	healthSrv := &http.Server{
		Handler:           healthHandler(gateway.NewHealth(func(context.Context) bool { return a.ready.Load() }), a.metrics.handler()),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go healthSrv.Serve(health)
	defer healthSrv.Close()

	command, venv, err := findJupyter(a.spec.JupyterCommand, a.spec.JupyterVenv, managedVenvs())
	if err != nil {
		return err
	}
	if err := seedProbeCache(a.spec.CacheDir, a.spec.ProbeCache); err != nil {
		a.log.Warn("carried probe answers not used", "err", err)
	}
	cached := probeCached(command, a.spec.CacheDir)
	in, err := probe(ctx, command, venv, a.spec.CacheDir)
	if err != nil {
		return err
	}
	a.probeCache = readProbeCache(a.spec.CacheDir)
	a.jupyterName = in.describe()
	if err := os.MkdirAll(a.spec.Workspace, 0o755); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	extraEnv, err := a.prepare(ctx, in.Venv)
	defer a.closeRepo()
	if err != nil {
		return err
	}
	runtimeDir, err := os.MkdirTemp("", "spinbook-"+a.spec.User+"-")
	if err != nil {
		return fmt.Errorf("runtime dir: %w", err)
	}
	defer os.RemoveAll(runtimeDir)

	token := randomHex(32)
	a.redact.Add(token)
	out := &lineWriter{w: a.output, prefix: "jupyter: ", redact: a.redact}
	j, err := startJupyter(in, a.spec.Workspace, runtimeDir, token, extraEnv, out)
	if err != nil {
		return err
	}
	a.log.Info("jupyter started", "jupyter", a.jupyterName, "command", in.Command, "venv", in.Venv,
		"pid", j.cmd.Process.Pid, "via", j.network, "options_cached", cached)
	a.recordJupyter(j)
	a.metrics.countJupyterStart(a.spec.StateDir)
	a.startIdle()

	gw, err := gateway.New(gateway.Options{
		User:           a.spec.User,
		Upstream:       &url.URL{Scheme: "http", Host: "jupyter"},
		Transport:      j.transport(),
		UpstreamToken:  token,
		CheckPassword:  releasingCheck(hash.Verify),
		Allow:          allow,
		TrustedProxies: trusted,
		Hosts:          a.hosts(),
		Secure:         tlsCfg != nil || a.spec.BehindTLS,
		Logger:         a.log,
		Control:        a.controlHandler(),
		OnActivity:     a.idle.touch,
		Banner:         a.banner,
		Static:         in.Static,
		PortalKey:      portalKey,
		PortalOnly:     a.spec.PortalOnly,
		Observer:       a.metrics,
	})
	if err != nil {
		j.stop(stopGrace)
		return err
	}
	a.front = gw
	var frontHandler http.Handler = gw
	if tlsCfg != nil {
		// One port: TLS, and plain HTTP answered with a redirect to it.
		front = gateway.ListenTLS(front, tlsCfg)
		frontHandler = gateway.RedirectHTTP(gw)
		a.log.Info("front door serves https", "sha256_fingerprint", fingerprint)
	}
	frontSrv := &http.Server{
		Handler:           frontHandler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go frontSrv.Serve(front)

	var wg sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(ctx)
	wg.Go(func() { a.pollReady(pollCtx, j) })
	idleStop := a.watchIdle(pollCtx, j, &wg)
	spotStop := a.watchSpot(pollCtx, &wg)

	var runErr error
	var reclaimed *spotNotice
	select {
	case <-ctx.Done():
		a.log.Info("stopping", "reason", context.Cause(ctx))
	case <-j.done:
		runErr = fmt.Errorf("jupyter exited unexpectedly: %v (see the lines starting with \"jupyter:\" above)", j.err)
	case reason := <-idleStop:
		a.log.Info("stopping", "reason", reason)
	case n := <-spotStop:
		a.log.Info("stopping", "reason", "spot interruption")
		reclaimed = &n
	}
	a.ready.Store(false)
	stopPoll()
	wg.Wait()
	if reclaimed != nil {
		// AWS takes the instance: save within the notice, record it, stop
		// Jupyter; nothing is released (the stack stays for the next up).
		a.stopForSpot(*reclaimed, j)
	} else if a.StopReason() != "" {
		// A stop of its own: the work is off the server already (the idle
		// watcher saw to it), Jupyter stops, then a last save takes what
		// the kernels wrote meanwhile. Only then is the server released;
		// were that last save to fail, the agent exits without releasing
		// (local, docker, kubernetes keep the workspace; aws starts the task
		// again on the instance, which keeps it too).
		j.stop(stopGrace)
		if a.finalSave() {
			a.release()
		}
	} else {
		a.saveOnStop()
		j.stop(stopGrace)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	frontSrv.Shutdown(shutCtx)
	frontSrv.Close() // websockets are hijacked: Shutdown does not wait for them
	return runErr
}

// listeners returns the front door and health listeners: inherited as file
// descriptors 3 and 4, or bound now.
func (a *Agent) listeners() (front, health net.Listener, err error) {
	if a.spec.InheritListeners {
		front, err = net.FileListener(os.NewFile(3, "front"))
		if err != nil {
			return nil, nil, fmt.Errorf("front door listener (fd 3): %w", err)
		}
		health, err = net.FileListener(os.NewFile(4, "health"))
		if err != nil {
			front.Close()
			return nil, nil, fmt.Errorf("health listener (fd 4): %w", err)
		}
		return front, health, nil
	}
	front, err = net.Listen("tcp", net.JoinHostPort(a.spec.Listen, strconv.Itoa(a.spec.FrontPort)))
	if err != nil {
		return nil, nil, fmt.Errorf("front door: %w", err)
	}
	health, err = net.Listen("tcp", net.JoinHostPort(a.spec.Listen, strconv.Itoa(a.spec.HealthPort)))
	if err != nil {
		front.Close()
		return nil, nil, fmt.Errorf("health listener: %w", err)
	}
	return front, health, nil
}

// pollReady keeps a.ready true while Jupyter answers /api/status: quickly
// while it starts, then every few seconds. /readyz reads the cached value,
// so a slow Jupyter never slows a health check.
func (a *Agent) pollReady(ctx context.Context, j *jupyter) {
	client := &http.Client{Transport: j.transport(), Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	interval := 5 * time.Millisecond // up waits on this: poll hard until ready (a refused connect costs microseconds)
	reniced := false
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://jupyter/api/status", nil)
		req.Header.Set("Authorization", "token "+j.token)
		ok := false
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
		if ok != a.ready.Load() {
			a.ready.Store(ok)
			a.log.Info("jupyter readiness changed", "ready", ok)
		}
		if ok {
			interval = 5 * time.Second
			if !reniced {
				reniced = true
				if err := j.lowerPriority(); err != nil {
					a.log.Warn("jupyter keeps its priority", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-j.done:
			return
		case <-time.After(interval):
		}
	}
}

// recordJupyter writes which process Jupyter is, so that a backend can
// clean up after an agent that was killed.
func (a *Agent) recordJupyter(j *jupyter) {
	if a.spec.StateDir == "" {
		return
	}
	data, _ := json.Marshal(backend.ProcessRecord{PID: j.cmd.Process.Pid, Start: j.start})
	if err := atomicfile.Write(filepath.Join(a.spec.StateDir, "jupyter.json"), data, 0o600); err != nil {
		a.log.Warn("record jupyter process", "err", err)
	}
}

// WriteExit records in spec.StateDir how the agent ended, for `spinbook status`.
func WriteExit(stateDir string, code int, reason string) error {
	if stateDir == "" {
		return nil
	}
	data, _ := json.Marshal(backend.ExitRecord{Code: code, Reason: reason, At: time.Now().UTC().Format(time.RFC3339)})
	return atomicfile.Write(filepath.Join(stateDir, "exit.json"), data, 0o600)
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, fmt.Errorf("%q: %w", c, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hosts are the names the front door answers to (spec.Hosts). A name a
// backend found for the machine that is not a valid host name (an odd
// os.Hostname) is left out with a warning rather than failing the server:
// clients can still use its address or access.hosts.
// parsePortalKey decodes AgentSpec.PortalKey; "" is no portal.
func parsePortalKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("portal key: want %d bytes of base64, the portal's public key", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func (a *Agent) hosts() []string {
	var out []string
	for _, h := range a.spec.Hosts {
		if _, err := gateway.NormalizeHost(h); err != nil {
			a.log.Warn("host name left out of the front door's names", "err", err)
			continue
		}
		out = append(out, h)
	}
	return out
}
