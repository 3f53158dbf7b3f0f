package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// hub is the peer: the stack's JupyterHub with its configurable-http-proxy,
// DummyAuthenticator and SimpleLocalProcessSpawner, everything (sqlite
// db, cookie secret, homes) in its own temp dir. The single-user servers
// run the same Jupyter as the other sides.
type hub struct {
	hubProc
	stack     Stack
	userToken string
	user      string
	poll      time.Duration
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
	h := &hub{hubProc: newHubProc(dir, basePort), stack: stack, user: "bench", poll: poll}
	h.client = newClient(true, 2*time.Minute)
	return h
}

// start starts the hub (and through it the proxy), waits for /hub/health
// and makes a token for the user.
func (h *hub) start(ctx context.Context) (time.Duration, error) {
	cfg := h.fill(hubConfig, "{{user}}", h.user, "{{chp}}", h.stack.Proxy, "{{singleuser}}", h.stack.SingleUser,
		"{{environment}}", singleUserEnv(h.stack))
	// Debian's CHP needs Debian's node modules whatever node is on PATH.
	d, err := h.launch(ctx, h.stack.Hub, cfg, h.stack.ProxyEnv, time.Minute)
	if err != nil {
		return 0, err
	}
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
	return h.pid(), h.descendant("configurable-http-proxy"), h.descendant("jupyterhub-singleuser")
}

// stop stops the hub (it stops the proxy and servers) and kills whatever
// of its processes is left after 30 s.
func (h *hub) stop() { h.hubProc.stop(30 * time.Second) }

// singleUserEnv is Spawner.environment for the stack, as a Python dict.
func singleUserEnv(s Stack) string {
	if s.SingleUserApp == "" {
		return "{}"
	}
	return "{'JUPYTERHUB_SINGLEUSER_APP': '" + s.SingleUserApp + "'}"
}
