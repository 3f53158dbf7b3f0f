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

	"github.com/spinbook/spinbook/internal/gateway"
)

// gpuBusyPercent is the GPU utilisation above which a GPU counts as working.
const gpuBusyPercent = 10

// activityProbe looks at what Jupyter's kernels and terminals and the GPUs
// are doing, and at what the front door saw on the kernels' websockets.
//
// A kernel counts as active while a cell runs on it: the front door saw
// an execute_request it has not yet answered (wire.KernelTraffic), which
// holds however late Jupyter's own watcher joined; also while Jupyter
// says it is busy (so also when it computes silently, as in time.sleep),
// and whenever its last_activity moves, which Jupyter advances on every
// message the kernel sends (output). A terminal is active whenever its
// last_activity moves. What cannot be known counts as active, never as
// idle: a poll of Jupyter that fails or times out, and a kernel Jupyter
// calls "starting" (or any other state but busy, idle and dead) — except
// that with a websocket to the kernel open the front door sees the
// kernel's own status and decides, and without one that state counts for
// startingGrace only (a kernel nobody connected to stays "starting"
// forever). Jupyter's websocket pings move nothing, so an open but silent
// tab is not activity.
//
// A tab closed while a cell runs leaves that execution in flight with no
// one to see its answer: the kernel counts as active until Jupyter says
// it is idle at two polls in a row (its watcher, late or not, sees the
// kernel's return to idle), or the kernel is gone.
type activityProbe struct {
	client *http.Client
	base   string // Jupyter's base URL, such as http://jupyter
	token  string
	gpu    string // the nvidia-smi binary; "" when there is none
	wire   kernelWire
	// startingGrace is how long a kernel in an unknown state counts as
	// active while no websocket to it is open.
	startingGrace time.Duration
	now           func() time.Time
	// report gets the count of busy and idle kernels after each listing;
	// nil for nobody.
	report func(busy, idle int)

	seen    map[string]string    // kernel/ID or terminal/NAME -> last_activity
	state   map[string]string    // kernel ID -> Jupyter's execution_state at the last poll
	unknown map[string]time.Time // kernel ID -> since when its state is unknown
}

// kernelWire is what the front door saw on the kernels' websockets; the
// gateway implements it.
type kernelWire interface {
	KernelTraffic() []gateway.KernelTraffic
	SettleKernel(id string)
}

// noWire is a kernelWire that saw nothing.
type noWire struct{}

func (noWire) KernelTraffic() []gateway.KernelTraffic { return nil }
func (noWire) SettleKernel(string)                    {}

func newActivityProbe(j *jupyter, wire kernelWire, startingGrace time.Duration) *activityProbe {
	if wire == nil {
		wire = noWire{}
	}
	p := &activityProbe{
		client:        &http.Client{Transport: j.transport(), Timeout: 5 * time.Second},
		base:          "http://jupyter",
		token:         j.token,
		wire:          wire,
		startingGrace: startingGrace,
		now:           time.Now,
		state:         map[string]string{},
		unknown:       map[string]time.Time{},
	}
	if path, err := exec.LookPath("nvidia-smi"); err == nil {
		p.gpu = path
	}
	return p
}

// jupyterKernel is a kernel as GET /api/kernels lists it.
type jupyterKernel struct {
	ID             string `json:"id"`
	ExecutionState string `json:"execution_state"`
	LastActivity   string `json:"last_activity"`
}

// active reports whether anything worked since the previous call. The
// first call only learns the state of things (but a busy kernel counts).
func (p *activityProbe) active(ctx context.Context) bool {
	first := p.seen == nil
	if first {
		p.seen = map[string]string{}
	}
	active := false
	// The front door's view first: a kernel it knows existed before the
	// list below was asked for, so one missing from the list is gone.
	traffic := map[string]gateway.KernelTraffic{}
	for _, k := range p.wire.KernelTraffic() {
		traffic[k.ID] = k
	}
	var kernels []jupyterKernel
	if p.get(ctx, "/api/kernels", &kernels) {
		now := map[string]string{}
		listed := map[string]bool{}
		busy := 0
		for _, k := range kernels {
			key := "kernel/" + k.ID
			now[key] = k.LastActivity
			listed[k.ID] = true
			if p.kernelActive(k, traffic[k.ID]) {
				active = true
				busy++
			}
			if before, ok := p.seen[key]; !first && (!ok || before != k.LastActivity) {
				active = true
			}
		}
		p.forget("kernel/", now)
		if p.report != nil {
			p.report(busy, len(kernels)-busy)
		}
		for id, w := range traffic {
			switch {
			case listed[id]:
			case w.Open == 0:
				p.wire.SettleKernel(id) // shut down: nothing runs there
			case w.InFlight > 0:
				active = true // its websocket is about to close
			}
		}
		for id := range p.state {
			if !listed[id] {
				delete(p.state, id)
				delete(p.unknown, id)
			}
		}
	} else {
		active = true // Jupyter did not say: nothing is known to be idle
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
	} else {
		active = true // likewise
	}
	if p.gpuBusy(ctx) {
		active = true
	}
	return active
}

// kernelActive applies the rules above to kernel k, which the front door
// saw as w (zero when it saw nothing).
func (p *activityProbe) kernelActive(k jupyterKernel, w gateway.KernelTraffic) bool {
	before := p.state[k.ID]
	p.state[k.ID] = k.ExecutionState
	active := false
	switch k.ExecutionState {
	case "busy":
		active = true
		delete(p.unknown, k.ID)
	case "idle", "dead":
		delete(p.unknown, k.ID)
	default:
		// Jupyter's watcher may have missed the kernel's first status
		// messages; or nobody connected to it yet.
		since, ok := p.unknown[k.ID]
		if !ok {
			since = p.now()
			p.unknown[k.ID] = since
		}
		if w.Open == 0 && p.now().Sub(since) < p.startingGrace {
			active = true
		}
	}
	switch {
	case w.Open > 0 && (w.InFlight > 0 || w.Busy):
		active = true
	case w.Open == 0 && w.InFlight > 0:
		// Closed while a cell ran: Jupyter tells when it is done.
		if k.ExecutionState == "dead" || k.ExecutionState == "idle" && before == "idle" {
			p.wire.SettleKernel(k.ID)
		} else {
			active = true
		}
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
