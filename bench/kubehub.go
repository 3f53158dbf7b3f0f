package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// kubeHub is the peer on Kubernetes: JupyterHub with KubeSpawner
// (bench/kube/lock.txt) and configurable-http-proxy 5 (bench/chp) on this
// host, with the test cluster's admin kubeconfig, spawning pods of the same
// image as spinbook's servers, each with a workspace claim of the same size
// as spinbook's. The hub listens on every address: the proxy reaches it
// on loopback, the pods on the node's pod-network gateway (hubConnectIP,
// which exists once the first pod does); CHP reaches the pods on their pod
// IPs, as on a node of a real cluster.
type kubeHub struct {
	hubProc
	venv, chp, ns, image, kubeconfig string
	hubConnectIP                     string
	poll                             time.Duration
}

// kubeHubConfig is jupyterhub_config.py; {{...}} are filled by config.
const kubeHubConfig = `c = get_config()
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = {{proxy}}
c.JupyterHub.hub_ip = '0.0.0.0'
c.JupyterHub.hub_connect_ip = '127.0.0.1'
c.JupyterHub.hub_port = {{hub}}
c.Spawner.hub_connect_url = 'http://{{hubconnect}}:{{hub}}'
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{{api}}'
c.ConfigurableHTTPProxy.command = ['{{chp}}']
c.JupyterHub.authenticator_class = 'jupyterhub.auth.DummyAuthenticator'
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = 'kubespawner.KubeSpawner'
c.KubeSpawner.namespace = '{{ns}}'
c.KubeSpawner.image = '{{image}}'
c.KubeSpawner.image_pull_policy = 'IfNotPresent'
c.KubeSpawner.cmd = ['jupyterhub-singleuser']
c.KubeSpawner.uid = 1000
c.KubeSpawner.gid = 100
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_class = 'standard'
c.KubeSpawner.storage_capacity = '10Gi'
c.KubeSpawner.pvc_name_template = 'claim-{username}'
c.KubeSpawner.volumes = [{'name': 'work', 'persistentVolumeClaim': {'claimName': 'claim-{username}'}}]
c.KubeSpawner.volume_mounts = [{'name': 'work', 'mountPath': '/home/jovyan/work'}]
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.http_timeout = 120
c.JupyterHub.db_url = 'sqlite:///{{dir}}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '{{dir}}/cookie_secret'
c.JupyterHub.pid_file = '{{dir}}/jupyterhub.pid'
c.JupyterHub.services = [{'name': 'kubebench', 'api_token': '{{token}}'}]
c.JupyterHub.load_roles = [{'name': 'kubebench', 'services': ['kubebench'],
    'scopes': ['admin:users', 'admin:servers', 'access:servers', 'read:users']}]
`

// config is the hub's jupyterhub_config.py.
func (h *kubeHub) config() string {
	return h.fill(kubeHubConfig, "{{hubconnect}}", h.hubConnectIP,
		"{{chp}}", filepath.Join(h.chp, "node_modules", ".bin", "configurable-http-proxy"),
		"{{ns}}", h.ns, "{{image}}", h.image)
}

// start starts the hub (and through it the proxy) and waits for /hub/health.
func (h *kubeHub) start(ctx context.Context) (time.Duration, error) {
	return h.launch(ctx, filepath.Join(h.venv, "bin", "jupyterhub"), h.config(), []string{"KUBECONFIG=" + h.kubeconfig}, 2*time.Minute)
}

// addUsers makes the hub's users.
func (h *kubeHub) addUsers(ctx context.Context, users []string) error {
	if len(users) == 0 {
		return nil // the hub refuses an empty list
	}
	body, _ := json.Marshal(map[string]any{"usernames": users})
	code, out, err := h.hubAPI(ctx, http.MethodPost, "users", string(body))
	if err != nil || (code != http.StatusCreated && code != http.StatusConflict) {
		return fmt.Errorf("jupyterhub: POST users: %d %s %v", code, out, err)
	}
	return nil
}

// spawn asks the hub for user's server and waits until Jupyter answers
// through the proxy. The hub answers the request once the server is ready
// (201), or after its slow_spawn_timeout (10 s) with 202: then spawn
// follows the server's progress events, as the hub's own spawn page does,
// rather than polling the proxy, which sends every request for a server
// not yet routed to the hub itself (ten users polling every 10 ms would
// keep the hub's one Python thread busy with nothing else).
func (h *kubeHub) spawn(ctx context.Context, user string) error {
	code, body, err := h.hubAPI(ctx, http.MethodPost, "users/"+user+"/server", "")
	if err != nil || (code != http.StatusCreated && code != http.StatusAccepted) {
		return fmt.Errorf("jupyterhub: POST users/%s/server: %d %s %v", user, code, body, err)
	}
	if code == http.StatusAccepted {
		if err := h.awaitProgress(ctx, user); err != nil {
			return err
		}
	}
	return pollOK(ctx, newClient(true, 5*time.Second), h.api(user).base+"api/status", h.api(user).header, h.poll, upTimeout)
}

// awaitProgress follows GET users/NAME/server/progress (server-sent
// events) until the hub says the server is ready, or why it failed.
func (h *kubeHub) awaitProgress(ctx context.Context, user string) error {
	ctx, cancel := context.WithTimeout(ctx, upTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url()+"hub/api/users/"+user+"/server/progress", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+h.serviceToken)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := newClient(false, 0).Do(req)
	if err != nil {
		return fmt.Errorf("jupyterhub: progress of %s's server: %w", user, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jupyterhub: progress of %s's server: %s", user, resp.Status)
	}
	if err := readProgress(resp.Body); err != nil {
		return fmt.Errorf("jupyterhub: %s's server: %w", user, err)
	}
	return nil
}

// readProgress reads a hub's progress events until one says the server is
// ready (nil) or failed (its message).
func readProgress(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev struct {
			Ready   bool   `json:"ready"`
			Failed  bool   `json:"failed"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			return fmt.Errorf("progress event %.200q: %w", data, err)
		}
		switch {
		case ev.Failed:
			return fmt.Errorf("spawn failed: %s", ev.Message)
		case ev.Ready:
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("progress events: %w", err)
	}
	return fmt.Errorf("progress events ended before the server was ready")
}

// stopServer stops user's server and waits until the hub reports it gone.
func (h *kubeHub) stopServer(ctx context.Context, user string) error {
	return stopHubServer(ctx, h.hubAPI, user, 10*h.poll, 2*time.Minute)
}

// list is the hub's equivalent of `spinbook ls`: the users with a running
// server, from the REST API; it returns how many.
func (h *kubeHub) list(ctx context.Context) (int, error) {
	code, body, err := h.hubAPI(ctx, http.MethodGet, "users?"+url.Values{"state": {"active"}}.Encode(), "")
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("jupyterhub: GET users: %d %s %v", code, body, err)
	}
	return countActive(body)
}

// countActive counts the users with a ready server in GET /hub/api/users.
func countActive(body []byte) (int, error) {
	var users []struct {
		Servers map[string]struct {
			Ready bool `json:"ready"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &users); err != nil {
		return 0, fmt.Errorf("jupyterhub: GET users: %w", err)
	}
	n := 0
	for _, u := range users {
		for _, s := range u.Servers {
			if s.Ready {
				n++
			}
		}
	}
	return n, nil
}

// api reaches user's server through the proxy with the service's token
// (access:servers).
func (h *kubeHub) api(user string) jupyterAPI {
	return jupyterAPI{
		base:   h.url() + "user/" + user + "/",
		header: http.Header{"Authorization": {"token " + h.serviceToken}},
		client: newClient(true, 30*time.Second),
	}
}

// rss is the hub's and the proxy's resident memory together.
func (h *kubeHub) rss() (int64, error) {
	hubPID, proxyPID := h.pid(), h.descendant("configurable-http-proxy")
	if hubPID == 0 || proxyPID == 0 {
		return 0, fmt.Errorf("jupyterhub or its proxy is not running (hub %d, proxy %d)", hubPID, proxyPID)
	}
	a, err := rssBytes(hubPID)
	if err != nil {
		return 0, err
	}
	b, err := rssBytes(proxyPID)
	return a + b, err
}

// stop stops the hub (cleanup_servers: it deletes its pods first) and
// kills its processes if it is not gone within two minutes.
func (h *kubeHub) stop() { h.hubProc.stop(2 * time.Minute) }
