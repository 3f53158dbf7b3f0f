package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/spinbook/spinbook/internal/gateway"
)

// startTestJupyter starts the installed Jupyter as the agent does.
func startTestJupyter(t *testing.T) *jupyter {
	t.Helper()
	path, err := exec.LookPath("jupyter-notebook")
	if err != nil {
		t.Skip("no jupyter-notebook on PATH: apt-get install jupyter-notebook python3-ipykernel")
	}
	in, err := probe(t.Context(), []string{path}, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j, err := startJupyter(in, t.TempDir(), t.TempDir(), randomHex(16), nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.stop(5 * time.Second) })
	client := &http.Client{Transport: j.transport(), Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	waitUntil(t, "Jupyter to answer", 60*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://jupyter/api/status", nil)
		req.Header.Set("Authorization", "token "+j.token)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return j
}

// waitUntil polls cond every 100ms until it holds or timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestActivityProbeRealJupyter: against a real Jupyter, a kernel that
// computes without printing (time.sleep) counts as active the whole time,
// while an open but silent kernel websocket, and Jupyter's own state,
// do not.
func TestActivityProbeRealJupyter(t *testing.T) {
	j := startTestJupyter(t)
	p := newActivityProbe(j, nil, time.Second)
	p.gpu = "" // whatever this machine has, the test is about Jupyter
	defer p.close()
	ctx := t.Context()
	p.active(ctx) // learn the (empty) state

	// A new kernel is activity; once it settled, nothing is.
	req, _ := http.NewRequest(http.MethodPost, "http://jupyter/api/kernels", strings.NewReader(`{"name":"python3"}`))
	req.Header.Set("Authorization", "token "+j.token)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	if k.ID == "" {
		t.Fatalf("POST /api/kernels: %s, no id", resp.Status)
	}
	if !p.active(ctx) {
		t.Error("a new kernel is not activity")
	}
	// quiet waits for 15 polls in a row (3s) without activity.
	quiet := func(what string) {
		t.Helper()
		calm := 0
		waitUntil(t, what, 60*time.Second, func() bool {
			if p.active(ctx) {
				calm = 0
			} else {
				calm++
			}
			time.Sleep(100 * time.Millisecond) // with waitUntil's 100ms: a poll every 200ms
			return calm >= 15
		})
	}
	quiet("the new kernel to settle")

	// An open websocket on the kernel (a browser tab left open) says
	// nothing: not activity, once its opening handshake is done.
	dial := websocket.DialOptions{
		HTTPClient: &http.Client{Transport: j.transport()},
		HTTPHeader: http.Header{"Authorization": {"token " + j.token}},
	}
	conn, _, err := websocket.Dial(ctx, "ws://jupyter/api/kernels/"+k.ID+"/channels?session_id="+newSessionHex(), &dial)
	if err != nil {
		t.Fatalf("open the kernel websocket: %v", err)
	}
	defer conn.CloseNow()
	readCtx := conn.CloseRead(ctx) // keep reading (and answering pings) like a browser
	_ = readCtx
	quiet("the open websocket to fall silent")

	// A cell that sleeps without output: busy, so active at every poll.
	conn2, _, err := websocket.Dial(ctx, "ws://jupyter/api/kernels/"+k.ID+"/channels?session_id="+newSessionHex(), &dial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.CloseNow()
	sendExecute(t, conn2, "import time; time.sleep(6)")
	go func() { // drain replies like a browser
		for {
			if _, _, err := conn2.Read(ctx); err != nil {
				return
			}
		}
	}()
	// A loaded machine (CI runs packages side by side) can take a while to
	// hand the request to the kernel: wait long, the point is what follows.
	waitUntil(t, "the kernel to be busy", 60*time.Second, func() bool {
		st := p.kernelState(t, k.ID)
		return st == "busy"
	})
	for p.kernelState(t, k.ID) == "busy" {
		if !p.active(ctx) {
			t.Fatal("a kernel busy in time.sleep is not activity")
		}
		time.Sleep(300 * time.Millisecond)
	}
	quiet("the kernel to settle after the cell")
}

func (p *activityProbe) kernelState(t *testing.T, id string) string {
	var k struct {
		ExecutionState string `json:"execution_state"`
	}
	if !p.get(t.Context(), "/api/kernels/"+id, &k) {
		t.Fatal("GET /api/kernels/ID failed")
	}
	return k.ExecutionState
}

func sendExecute(t *testing.T, conn *websocket.Conn, code string) {
	t.Helper()
	msg := map[string]any{
		"header": map[string]any{
			"msg_id": newSessionHex(), "username": "test", "session": newSessionHex(), "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano),
		},
		"parent_header": map[string]any{}, "metadata": map[string]any{},
		"content": map[string]any{
			"code": code, "silent": false, "store_history": false,
			"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true,
		},
		"buffers": []any{}, "channel": "shell",
	}
	data, _ := json.Marshal(msg)
	if err := conn.Write(t.Context(), websocket.MessageText, data); err != nil {
		t.Fatalf("send execute_request: %v", err)
	}
}

func newSessionHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// A fakeWire stands in for the front door's view of the kernels'
// websockets (the gateway's own tests read real frames, both formats).
type fakeWire struct {
	traffic []gateway.KernelTraffic
	settled []string
}

func (w *fakeWire) KernelTraffic() []gateway.KernelTraffic { return w.traffic }

// SettleKernel forgets the kernel, as the gateway does.
func (w *fakeWire) SettleKernel(id string) {
	w.settled = append(w.settled, id)
	w.traffic = slices.DeleteFunc(w.traffic, func(k gateway.KernelTraffic) bool { return k.ID == id })
}

// TestActivityProbeUnknownIsActive: what the probe cannot know counts as
// active, never idle: Jupyter not answering, and a kernel Jupyter calls
// "starting" while the front door sees a cell running on it (Jupyter's
// watcher may have missed the kernel's first messages). A tab closed
// while a cell runs keeps the kernel active until Jupyter says idle twice.
func TestActivityProbeUnknownIsActive(t *testing.T) {
	t.Run("jupyter not answering", func(t *testing.T) {
		gone := &jupyter{network: "unix", address: t.TempDir() + "/none.sock", token: "x"}
		p := newActivityProbe(gone, nil, time.Second)
		p.gpu = ""
		defer p.close()
		for i := range 3 {
			if !p.active(t.Context()) {
				t.Fatalf("poll %d: a Jupyter that does not answer counted as idle", i)
			}
		}
	})

	j := startTestJupyter(t)
	wire := &fakeWire{}
	const grace = 10 * time.Second
	p := newActivityProbe(j, wire, grace)
	p.gpu = ""
	defer p.close()
	clock := time.Now()
	p.now = func() time.Time { return clock }
	ctx := t.Context()

	req, _ := http.NewRequest(http.MethodPost, "http://jupyter/api/kernels", strings.NewReader(`{"name":"python3"}`))
	req.Header.Set("Authorization", "token "+j.token)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	if st := p.kernelState(t, k.ID); st != "starting" {
		t.Fatalf("a kernel nobody connected to is %q in Jupyter, want starting", st)
	}
	p.active(ctx) // learn
	poll := func(what string, want bool) {
		t.Helper()
		if got := p.active(ctx); got != want {
			t.Errorf("%s: active = %v, want %v", what, got, want)
		}
	}

	wire.traffic = []gateway.KernelTraffic{{ID: k.ID, Open: 1, InFlight: 1}}
	clock = clock.Add(2 * grace)
	poll("starting in Jupyter, a cell running at the front door", true)
	poll("starting in Jupyter, a cell running at the front door (again)", true)

	wire.traffic = []gateway.KernelTraffic{{ID: k.ID, Open: 1}}
	poll("starting in Jupyter, the cell answered, the tab open", false)

	wire.traffic = []gateway.KernelTraffic{{ID: k.ID, InFlight: 1, ClosedAt: clock}}
	poll("the tab closed while a cell ran, Jupyter says starting", true)
	if len(wire.settled) != 0 {
		t.Errorf("settled %v while Jupyter does not know", wire.settled)
	}

	wire.traffic = []gateway.KernelTraffic{{ID: "gone-kernel", InFlight: 1, ClosedAt: clock}}
	p.active(ctx)
	if len(wire.settled) != 1 || wire.settled[0] != "gone-kernel" {
		t.Errorf("settled %v, want the kernel Jupyter no longer lists", wire.settled)
	}
	wire.settled = nil

	// A client makes Jupyter's watcher see the kernel: idle.
	dial := websocket.DialOptions{
		HTTPClient: &http.Client{Transport: j.transport()},
		HTTPHeader: http.Header{"Authorization": {"token " + j.token}},
	}
	conn, _, err := websocket.Dial(ctx, "ws://jupyter/api/kernels/"+k.ID+"/channels?session_id="+newSessionHex(), &dial)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // read (and drop) the answers like a browser
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	// Jupyter's watcher may miss the kernel's first messages (the fault
	// this is about): cells make the kernel say busy and idle again.
	waitUntil(t, "Jupyter to see the kernel idle", 60*time.Second, func() bool {
		if p.kernelState(t, k.ID) == "idle" {
			return true
		}
		sendExecute(t, conn, "1")
		return false
	})
	conn.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "a poll to see the kernel idle", 30*time.Second, func() bool {
		p.active(ctx)
		return p.state[k.ID] == "idle"
	})
	wire.traffic = []gateway.KernelTraffic{{ID: k.ID, InFlight: 1, ClosedAt: clock}}
	p.active(ctx)
	if len(wire.settled) != 1 || wire.settled[0] != k.ID {
		t.Errorf("settled %v after Jupyter said idle twice, want the kernel", wire.settled)
	}
	wire.traffic = nil
	poll("idle, nothing in flight", false)
}
