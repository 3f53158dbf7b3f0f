package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spinbook/spinbook/internal/proc"
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
	venv, chp, dir, ns, image, kubeconfig string
	hubConnectIP                          string
	proxyPort, hubPort, apiPort           int
	serviceToken                          string
	poll                                  time.Duration
	cmd                                   *exec.Cmd
	done                                  chan struct{}
	client                                *http.Client
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
	return strings.NewReplacer("{{proxy}}", strconv.Itoa(h.proxyPort), "{{hub}}", strconv.Itoa(h.hubPort),
		"{{api}}", strconv.Itoa(h.apiPort), "{{hubconnect}}", h.hubConnectIP,
		"{{chp}}", filepath.Join(h.chp, "node_modules", ".bin", "configurable-http-proxy"),
		"{{ns}}", h.ns, "{{image}}", h.image, "{{dir}}", h.dir, "{{token}}", h.serviceToken).Replace(kubeHubConfig)
}

func (h *kubeHub) url() string { return "http://127.0.0.1:" + strconv.Itoa(h.proxyPort) + "/" }

// start starts the hub (and through it the proxy) and waits for /hub/health.
func (h *kubeHub) start(ctx context.Context) (time.Duration, error) {
	h.client = newClient(true, 2*time.Minute)
	config := filepath.Join(h.dir, "jupyterhub_config.py")
	if err := os.WriteFile(config, []byte(h.config()), 0o600); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(filepath.Join(h.dir, "jupyterhub.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	t0 := time.Now()
	cmd := exec.Command(filepath.Join(h.venv, "bin", "jupyterhub"), "-f", config)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.kubeconfig, "CONFIGPROXY_AUTH_TOKEN="+randomHex(24))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start jupyterhub: %w", err)
	}
	h.cmd, h.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(h.done) }()
	// A hub that exits (a bad config, no proxy) ends the wait.
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-waitCtx.Done():
		}
	}()
	if err := pollOK(waitCtx, h.client, h.url()+"hub/health", nil, 50*time.Millisecond, 2*time.Minute); err != nil {
		h.stop()
		return 0, fmt.Errorf("jupyterhub (log: %s): %w", logf.Name(), err)
	}
	return time.Since(t0), nil
}

func (h *kubeHub) hubAPI(ctx context.Context, method, path, body string) (int, []byte, error) {
	return jupyterAPI{
		base:   h.url() + "hub/api/",
		header: http.Header{"Authorization": {"token " + h.serviceToken}},
		client: h.client,
	}.do(ctx, method, path, body)
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
// through the proxy.
func (h *kubeHub) spawn(ctx context.Context, user string) error {
	code, body, err := h.hubAPI(ctx, http.MethodPost, "users/"+user+"/server", "")
	if err != nil || (code != http.StatusCreated && code != http.StatusAccepted) {
		return fmt.Errorf("jupyterhub: POST users/%s/server: %d %s %v", user, code, body, err)
	}
	return pollOK(ctx, newClient(true, 5*time.Second), h.api(user).base+"api/status", h.api(user).header, h.poll, upTimeout)
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

// pids returns the hub's and the proxy's process ids.
func (h *kubeHub) pids() (hubPID, proxyPID int) {
	if h.cmd == nil {
		return 0, 0
	}
	hubPID = h.cmd.Process.Pid
	for _, p := range proc.Descendants(hubPID) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		if strings.Contains(string(cmdline), "configurable-http-proxy") {
			proxyPID = p
		}
	}
	return hubPID, proxyPID
}

// rss is the hub's and the proxy's resident memory together.
func (h *kubeHub) rss() (int64, error) {
	hubPID, proxyPID := h.pids()
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
// kills its process group if it is not gone within two minutes.
func (h *kubeHub) stop() {
	if h.cmd == nil {
		return
	}
	pid := h.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(2 * time.Minute):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	h.cmd = nil
}
