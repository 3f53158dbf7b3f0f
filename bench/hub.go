package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spinbook/spinbook/internal/proc"
)

// hub is the peer: the stack's JupyterHub with its configurable-http-proxy,
// DummyAuthenticator and SimpleLocalProcessSpawner, everything (sqlite
// db, cookie secret, homes) in its own temp dir. The single-user servers
// run the same Jupyter as the other sides.
type hub struct {
	stack                       Stack
	dir                         string
	proxyPort, hubPort, apiPort int
	serviceToken, userToken     string
	user                        string
	poll                        time.Duration
	cmd                         *exec.Cmd
	done                        chan struct{}
	client                      *http.Client
}

const hubConfig = `c = get_config()
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = {{proxy}}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = {{hub}}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{{api}}'
c.ConfigurableHTTPProxy.command = ['{{chp}}']
c.JupyterHub.authenticator_class = 'jupyterhub.auth.DummyAuthenticator'
c.JupyterHub.spawner_class = 'jupyterhub.spawner.SimpleLocalProcessSpawner'
c.SimpleLocalProcessSpawner.home_dir_template = '{{dir}}/home/{username}'
c.Spawner.cmd = ['{{singleuser}}']
c.Spawner.args = ['--allow-root']
c.Spawner.environment = {{environment}}
c.JupyterHub.db_url = 'sqlite:///{{dir}}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '{{dir}}/cookie_secret'
c.JupyterHub.pid_file = '{{dir}}/jupyterhub.pid'
c.Authenticator.allowed_users = {'{{user}}'}
c.JupyterHub.services = [{'name': 'spinbench', 'api_token': '{{token}}'}]
c.JupyterHub.load_roles = [{'name': 'spinbench', 'services': ['spinbench'],
    'scopes': ['admin:users', 'admin:servers', 'tokens', 'access:servers', 'read:users']}]
`

func newHub(stack Stack, dir string, basePort int, poll time.Duration) *hub {
	return &hub{
		stack: stack, dir: dir, proxyPort: basePort, hubPort: basePort + 1, apiPort: basePort + 2,
		serviceToken: randomHex(24), user: "bench", poll: poll,
		client: newClient(true, 2*time.Minute),
	}
}

func (h *hub) url() string { return "http://127.0.0.1:" + strconv.Itoa(h.proxyPort) + "/" }

// start starts the hub (and through it the proxy), waits for /hub/health
// and makes a token for the user.
func (h *hub) start(ctx context.Context) (time.Duration, error) {
	cfg := strings.NewReplacer("{{proxy}}", strconv.Itoa(h.proxyPort), "{{hub}}", strconv.Itoa(h.hubPort),
		"{{api}}", strconv.Itoa(h.apiPort), "{{dir}}", h.dir, "{{user}}", h.user, "{{token}}", h.serviceToken,
		"{{chp}}", h.stack.Proxy, "{{singleuser}}", h.stack.SingleUser, "{{environment}}", singleUserEnv(h.stack)).Replace(hubConfig)
	config := filepath.Join(h.dir, "jupyterhub_config.py")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(filepath.Join(h.dir, "jupyterhub.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	t0 := time.Now()
	cmd := exec.Command(h.stack.Hub, "-f", config)
	cmd.Dir = h.dir
	// Debian's CHP needs Debian's node modules whatever node is on PATH.
	cmd.Env = append(append(os.Environ(), "CONFIGPROXY_AUTH_TOKEN="+randomHex(24)), h.stack.ProxyEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start jupyterhub: %w", err)
	}
	h.cmd, h.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(h.done) }()
	if err := pollOK(ctx, h.client, h.url()+"hub/health", nil, 50*time.Millisecond, time.Minute); err != nil {
		h.stop()
		return 0, fmt.Errorf("jupyterhub (log: %s): %w", logf.Name(), err)
	}
	d := time.Since(t0)
	code, body, err := h.hubAPI(ctx, http.MethodPost, "users/"+h.user+"/tokens", `{"note": "spinbench"}`)
	if err != nil || code != http.StatusCreated {
		h.stop()
		return 0, fmt.Errorf("jupyterhub: make a user token: %d %s %v", code, body, err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		h.stop()
		return 0, fmt.Errorf("jupyterhub: token response %q: %v", body, err)
	}
	h.userToken = tok.Token
	return d, nil
}

func (h *hub) hubAPI(ctx context.Context, method, path, body string) (int, []byte, error) {
	return jupyterAPI{
		base:   h.url() + "hub/api/",
		header: http.Header{"Authorization": {"token " + h.serviceToken}},
		client: h.client,
	}.do(ctx, method, path, body)
}

// spawn starts the user's server through the hub's REST API and waits
// until it answers through the proxy.
func (h *hub) spawn(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	code, body, err := h.hubAPI(ctx, http.MethodPost, "users/"+h.user+"/server", "")
	if err != nil || (code != http.StatusCreated && code != http.StatusAccepted) {
		return 0, fmt.Errorf("jupyterhub: POST users/%s/server: %d %s %v", h.user, code, body, err)
	}
	if err := pollOK(ctx, newClient(true, 5*time.Second), h.api().base+"api/status", h.api().header, h.poll, time.Minute); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// stopServer stops the user's server through the REST API and waits until
// the hub reports it gone.
func (h *hub) stopServer(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	if err := stopHubServer(ctx, h.hubAPI, h.user, h.poll, time.Minute); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// hubCall is a call of a hub's REST API: method, path under /hub/api/, body.
type hubCall func(ctx context.Context, method, path, body string) (int, []byte, error)

// stopHubServer asks a hub to stop user's server and waits, polling every
// poll, until the hub reports it gone.
func stopHubServer(ctx context.Context, call hubCall, user string, poll, timeout time.Duration) error {
	code, body, err := call(ctx, http.MethodDelete, "users/"+user+"/server", "")
	if err != nil || (code != http.StatusNoContent && code != http.StatusAccepted) {
		return fmt.Errorf("jupyterhub: DELETE users/%s/server: %d %s %v", user, code, body, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := call(ctx, http.MethodGet, "users/"+user, "")
		var u struct {
			Server  *string `json:"server"`
			Pending *string `json:"pending"`
		}
		if err == nil && code == http.StatusOK && json.Unmarshal(body, &u) == nil && u.Server == nil && u.Pending == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jupyterhub: server of %s not gone after %s (%d %s %v)", user, timeout, code, body, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// api reaches the user's server through the proxy with the user's token.
func (h *hub) api() jupyterAPI {
	return jupyterAPI{
		base:   h.url() + "user/" + h.user + "/",
		header: http.Header{"Authorization": {"token " + h.userToken}},
		client: newClient(true, 30*time.Second),
	}
}

// pids returns the hub's, the proxy's and the single-user server's
// process ids (0 when not running).
func (h *hub) pids() (hubPID, proxyPID, serverPID int) {
	if h.cmd == nil {
		return 0, 0, 0
	}
	hubPID = h.cmd.Process.Pid
	for _, p := range proc.Descendants(hubPID) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		switch line := string(cmdline); {
		case strings.Contains(line, "configurable-http-proxy"):
			proxyPID = p
		case strings.Contains(line, "jupyterhub-singleuser"):
			serverPID = p
		}
	}
	return hubPID, proxyPID, serverPID
}

// stop stops the hub (it stops the proxy and servers) and kills whatever
// of its process group is left after 30 s.
func (h *hub) stop() {
	if h.cmd == nil {
		return
	}
	pid := h.cmd.Process.Pid
	type process struct {
		pid   int
		start uint64
	}
	var tree []process // the servers run in sessions of their own
	for _, p := range proc.Descendants(pid) {
		if start, err := proc.StartTime(p); err == nil {
			tree = append(tree, process{p, start})
		}
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, p := range tree {
		if proc.Alive(p.pid, p.start) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	h.cmd = nil
}

// singleUserEnv is Spawner.environment for the stack, as a Python dict.
func singleUserEnv(s Stack) string {
	if s.SingleUserApp == "" {
		return "{}"
	}
	return "{'JUPYTERHUB_SINGLEUSER_APP': '" + s.SingleUserApp + "'}"
}
