package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// gpuBusyPercent is the GPU utilisation above which a GPU counts as working.
const gpuBusyPercent = 10

// activityProbe looks at what Jupyter's kernels and terminals and the GPUs
// are doing. A kernel counts as active while it is busy (also when it
// computes silently, as in time.sleep) and whenever its last_activity
// moves, which Jupyter advances on every message the kernel sends
// (output); a terminal whenever its last_activity moves (output). Jupyter's
// websocket pings move neither, so an open but silent tab is not activity.
type activityProbe struct {
	client *http.Client
	base   string // Jupyter's base URL, such as http://jupyter
	token  string
	gpu    string // the nvidia-smi binary; "" when there is none

	seen map[string]string // kernel/ID or terminal/NAME -> last_activity
}

func newActivityProbe(j *jupyter) *activityProbe {
	p := &activityProbe{
		client: &http.Client{Transport: j.transport(), Timeout: 5 * time.Second},
		base:   "http://jupyter",
		token:  j.token,
	}
	if path, err := exec.LookPath("nvidia-smi"); err == nil {
		p.gpu = path
	}
	return p
}

// active reports whether anything worked since the previous call. The
// first call only learns the state of things (but a busy kernel counts).
func (p *activityProbe) active(ctx context.Context) bool {
	first := p.seen == nil
	if first {
		p.seen = map[string]string{}
	}
	active := false
	var kernels []struct {
		ID             string `json:"id"`
		ExecutionState string `json:"execution_state"`
		LastActivity   string `json:"last_activity"`
	}
	if p.get(ctx, "/api/kernels", &kernels) {
		now := map[string]string{}
		for _, k := range kernels {
			key := "kernel/" + k.ID
			now[key] = k.LastActivity
			// Not "starting": Jupyter reports that until a client first
			// connects, however long the kernel sits unused.
			if k.ExecutionState == "busy" {
				active = true
			}
			if before, ok := p.seen[key]; !first && (!ok || before != k.LastActivity) {
				active = true
			}
		}
		p.forget("kernel/", now)
	}
	var terminals []struct {
		Name         string `json:"name"`
		LastActivity string `json:"last_activity"`
	}
	if p.get(ctx, "/api/terminals", &terminals) {
		now := map[string]string{}
		for _, t := range terminals {
			key := "terminal/" + t.Name
			now[key] = t.LastActivity
			if before, ok := p.seen[key]; !first && (!ok || before != t.LastActivity) {
				active = true
			}
		}
		p.forget("terminal/", now)
	}
	if p.gpuBusy(ctx) {
		active = true
	}
	return active
}

// forget replaces what p saw of the things under prefix by now.
func (p *activityProbe) forget(prefix string, now map[string]string) {
	for k := range p.seen {
		if strings.HasPrefix(k, prefix) {
			delete(p.seen, k)
		}
	}
	for k, v := range now {
		p.seen[k] = v
	}
}

// get decodes Jupyter's answer to GET path into v; false when there is none.
func (p *activityProbe) get(ctx context.Context, path string, v any) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "token "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

// gpuBusy reports whether nvidia-smi says a GPU is more than
// gpuBusyPercent busy.
func (p *activityProbe) gpuBusy(ctx context.Context) bool {
	if p.gpu == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.gpu, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return false
	}
	return gpuBusyIn(out)
}

// gpuBusyIn reads nvidia-smi's utilisation lines (one percentage per GPU).
func gpuBusyIn(out []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && n > gpuBusyPercent {
			return true
		}
	}
	return false
}

func (p *activityProbe) close() { p.client.CloseIdleConnections() }
