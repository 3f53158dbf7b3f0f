package bench

import (
	"context"
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

// hubProc is one JupyterHub process, and through it its
// configurable-http-proxy, run from a jupyterhub_config.py in a dir of its
// own (sqlite db, cookie secret, log): what the peer of bench/run (hub.go,
// servers as local processes) and that of bench/kube/run (kubehub.go,
// KubeSpawner) share: start, the REST API as a service, the processes,
// stop.
type hubProc struct {
	dir                         string
	proxyPort, hubPort, apiPort int
	serviceToken                string
	cmd                         *exec.Cmd
	done                        chan struct{}
	client                      *http.Client
}

// newHubProc is a hub in dir on three ports from basePort (proxy, hub,
// proxy API) with a new service token.
func newHubProc(dir string, basePort int) hubProc {
	return hubProc{dir: dir, proxyPort: basePort, hubPort: basePort + 1, apiPort: basePort + 2, serviceToken: randomHex(24)}
}

func (h *hubProc) url() string { return "http://127.0.0.1:" + strconv.Itoa(h.proxyPort) + "/" }

// fill fills a jupyterhub_config.py template: {{proxy}}, {{hub}}, {{api}},
// {{dir}}, {{token}}, and the extra old, new pairs.
func (h *hubProc) fill(template string, extra ...string) string {
	pairs := append([]string{"{{proxy}}", strconv.Itoa(h.proxyPort), "{{hub}}", strconv.Itoa(h.hubPort),
		"{{api}}", strconv.Itoa(h.apiPort), "{{dir}}", h.dir, "{{token}}", h.serviceToken}, extra...)
	return strings.NewReplacer(pairs...).Replace(template)
}

// launch writes config as the hub's jupyterhub_config.py, starts exe on it
// with env added to this process's, and waits up to wait for /hub/health;
// it returns how long the hub took. A hub that exits (a bad config, no
// proxy) ends the wait; its log is named in the error.
func (h *hubProc) launch(ctx context.Context, exe, config string, env []string, wait time.Duration) (time.Duration, error) {
	if h.client == nil {
		h.client = newClient(true, 2*time.Minute)
	}
	file := filepath.Join(h.dir, "jupyterhub_config.py")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		return 0, err
	}
	t0 := time.Now()
	cmd := exec.Command(exe, "-f", file)
	cmd.Dir = h.dir
	cmd.Env = append(append(os.Environ(), "CONFIGPROXY_AUTH_TOKEN="+randomHex(24)), env...)
	done, log, err := startLogged(cmd, h.dir, "jupyterhub.log")
	if err != nil {
		return 0, err
	}
	h.cmd, h.done = cmd, done
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-waitCtx.Done():
		}
	}()
	if err := pollOK(waitCtx, h.client, h.url()+"hub/health", nil, 50*time.Millisecond, wait); err != nil {
		h.stop(30 * time.Second)
		return 0, fmt.Errorf("jupyterhub (log: %s): %w", log, err)
	}
	return time.Since(t0), nil
}

// hubAPI calls the hub's REST API as the service: method, path under
// /hub/api/, body.
func (h *hubProc) hubAPI(ctx context.Context, method, path, body string) (int, []byte, error) {
	return jupyterAPI{
		base:   h.url() + "hub/api/",
		header: http.Header{"Authorization": {"token " + h.serviceToken}},
		client: h.client,
	}.do(ctx, method, path, body)
}

// descendant returns the first of the hub's descendant processes whose
// command line holds s, or 0.
func (h *hubProc) descendant(s string) int {
	if h.cmd == nil {
		return 0
	}
	for _, p := range proc.Descendants(h.cmd.Process.Pid) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		if strings.Contains(string(cmdline), s) {
			return p
		}
	}
	return 0
}

// pid is the hub's own process id, or 0 when it is not running.
func (h *hubProc) pid() int {
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// stop stops the hub (which stops its proxy and, unless configured not
// to, its servers) and after wait kills what is left of its process group
// and of its descendants (local servers run in sessions of their own).
func (h *hubProc) stop(wait time.Duration) {
	if h.cmd == nil {
		return
	}
	pid := h.cmd.Process.Pid
	type process struct {
		pid   int
		start uint64
	}
	var tree []process
	for _, p := range proc.Descendants(pid) {
		if start, err := proc.StartTime(p); err == nil {
			tree = append(tree, process{p, start})
		}
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(wait):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, p := range tree {
		if proc.Alive(p.pid, p.start) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	h.cmd = nil
}
