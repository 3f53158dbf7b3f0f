package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// The front door sees every message between a browser and its kernels, so
// it knows, independently of Jupyter's own bookkeeping, which kernels have
// a cell running: an execute_request the kernel has not yet answered with
// an execute_reply or a return to idle. Jupyter's execution_state cannot
// be trusted for that: its watcher may miss a kernel's first status
// messages (on a loaded machine, often), leaving the kernel "starting"
// through a whole execution. The agent asks KernelTraffic and counts a
// running cell as activity.
//
// Both of Jupyter's kernel websocket formats are read: JSON text frames
// (and, for messages with buffers, the legacy binary frame whose first
// part is that JSON), and the v1.kernel.websocket.jupyter.org subprotocol
// jupyter_server 2 negotiates with JupyterLab 4, whose binary frames carry
// channel, header, parent_header, metadata and content as separate parts.
// Only header.msg_type and msg_id, parent_header.msg_id, the channel and,
// for status messages, content.execution_state are read.

// kernelWSProtocol is the kernel websocket subprotocol of jupyter_server 2.
const kernelWSProtocol = "v1.kernel.websocket.jupyter.org"

const (
	// maxKernelMessage is how much of one kernel message the front door
	// keeps to read it: status messages, requests and replies fit. A
	// longer message (a large output or cell) is not read but counts as
	// activity; of a v1 frame the first part is enough for its header.
	maxKernelMessage = 256 << 10

	// maxInFlight bounds the executions remembered per kernel; beyond it
	// (a notebook of more cells, all run at once) the kernel's own busy
	// status, on the wire and in Jupyter, still shows it working.
	maxInFlight = 1024

	// maxTrackedKernels bounds the kernels whose traffic is followed.
	maxTrackedKernels = 1024
)

// KernelTraffic is what the front door saw on one kernel's websockets.
type KernelTraffic struct {
	ID string
	// Open counts the kernel's websockets open now.
	Open int
	// InFlight counts the execute_requests sent to the kernel that it has
	// not yet answered (execute_reply, or status idle for that request).
	InFlight int
	// Busy says the last status the kernel sent was busy; only while a
	// websocket is open (no status is seen otherwise).
	Busy bool
	// ClosedAt is when the kernel's last websocket closed while
	// executions were in flight; zero while one is open. The kernel goes
	// on computing, but its answers are no longer seen here: the agent
	// then trusts Jupyter to tell when it is idle again.
	ClosedAt time.Time
}

// KernelTraffic reports the kernels with an open websocket or executions
// in flight, sorted by id.
func (g *Gateway) KernelTraffic() []KernelTraffic {
	return g.kernels.snapshot()
}

// SettleKernel forgets the executions in flight on kernel id once all its
// websockets are closed: the agent calls it when Jupyter says the kernel
// is idle since then, or gone. With a websocket open it does nothing: the
// front door sees the answers itself.
func (g *Gateway) SettleKernel(id string) {
	g.kernels.settle(id)
}

// kernelState is what is known of one kernel; guarded by kernelTracker.mu.
type kernelState struct {
	open     int
	inFlight map[string]struct{}
	busy     bool
	closedAt time.Time
}

// A kernelTracker follows the kernels' websocket traffic.
type kernelTracker struct {
	now      func() time.Time
	activity func()

	mu      sync.Mutex
	kernels map[string]*kernelState
}

func newKernelTracker(now func() time.Time, activity func()) *kernelTracker {
	return &kernelTracker{now: now, activity: activity, kernels: map[string]*kernelState{}}
}

// opened records a new websocket to kernel id; false when too many
// kernels are followed already (the websocket then passes unseen).
func (t *kernelTracker) opened(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.kernels[id]
	if k == nil {
		if len(t.kernels) >= maxTrackedKernels {
			return false
		}
		k = &kernelState{inFlight: map[string]struct{}{}}
		t.kernels[id] = k
	}
	k.open++
	k.closedAt = time.Time{}
	return true
}

// closed records the end of a websocket to kernel id.
func (t *kernelTracker) closed(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.kernels[id]
	if k == nil {
		return
	}
	k.open--
	if k.open > 0 {
		return
	}
	k.busy = false
	if len(k.inFlight) == 0 {
		delete(t.kernels, id)
		return
	}
	k.closedAt = t.now()
}

func (t *kernelTracker) settle(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := t.kernels[id]; k != nil && k.open == 0 {
		delete(t.kernels, id)
	}
}

// restarted forgets kernel id's executions: a restart drops its queue.
func (t *kernelTracker) restarted(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := t.kernels[id]; k != nil {
		clear(k.inFlight)
		k.busy = false
		if k.open == 0 {
			delete(t.kernels, id)
		}
	}
}

func (t *kernelTracker) snapshot() []KernelTraffic {
	t.mu.Lock()
	out := make([]KernelTraffic, 0, len(t.kernels))
	for id, k := range t.kernels {
		out = append(out, KernelTraffic{ID: id, Open: k.open, InFlight: len(k.inFlight), Busy: k.busy, ClosedAt: k.closedAt})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b KernelTraffic) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// fromClient notes a message the browser sent to kernel id.
func (t *kernelTracker) fromClient(id string, m kernelMsg) {
	if m.msgType != "execute_request" || m.msgID == "" || (m.channel != "shell" && m.channel != "") {
		return
	}
	t.mu.Lock()
	if k := t.kernels[id]; k != nil && len(k.inFlight) < maxInFlight {
		k.inFlight[m.msgID] = struct{}{}
	}
	t.mu.Unlock()
	t.activity() // running a cell is using the server
}

// fromKernel notes a message kernel id sent to the browser.
func (t *kernelTracker) fromKernel(id string, m kernelMsg) {
	answered := false
	t.mu.Lock()
	k := t.kernels[id]
	if k == nil {
		t.mu.Unlock()
		return
	}
	switch m.msgType {
	case "execute_reply":
		answered = k.answer(m.parentID)
	case "status":
		switch m.state {
		case "busy":
			k.busy = true
		case "idle":
			k.busy = false
			answered = k.answer(m.parentID)
		case "starting", "restarting", "dead":
			// A new kernel process, or none: whatever was queued is gone.
			k.busy = false
			clear(k.inFlight)
		}
	}
	t.mu.Unlock()
	if answered {
		t.activity() // the idle time starts when the cell ends
	}
}

// answer forgets the execution msgID; it reports whether it was in flight.
func (k *kernelState) answer(msgID string) bool {
	if _, ok := k.inFlight[msgID]; !ok {
		return false
	}
	delete(k.inFlight, msgID)
	return true
}

// A kernelMsg is the part of a kernel message the front door reads.
type kernelMsg struct {
	channel  string
	msgType  string
	msgID    string
	parentID string
	state    string // content.execution_state of a status message
}

// decodeKernelMsg reads a kernel websocket message: opcode and payload as
// the frameStream hands them over, v1 when the websocket speaks
// kernelWSProtocol. It reports false when the message cannot be read
// (cut short, compressed, or not a kernel message).
func decodeKernelMsg(opcode byte, payload []byte, opaque, v1 bool) (kernelMsg, bool) {
	switch {
	case opcode == opText && !opaque:
		return decodeJSONMsg(payload)
	case opcode == opBinary && v1:
		return decodeV1Msg(payload)
	case opcode == opBinary && !opaque:
		return decodeLegacyBinaryMsg(payload)
	}
	return kernelMsg{}, false
}

// jsonMsg is a kernel message as JSON, only the fields read.
type jsonMsg struct {
	Channel      string     `json:"channel"`
	Header       jsonHeader `json:"header"`
	ParentHeader jsonHeader `json:"parent_header"`
	Content      struct {
		ExecutionState string `json:"execution_state"`
	} `json:"content"`
}

type jsonHeader struct {
	MsgID   string `json:"msg_id"`
	MsgType string `json:"msg_type"`
}

func decodeJSONMsg(data []byte) (kernelMsg, bool) {
	var m jsonMsg
	if json.Unmarshal(data, &m) != nil || m.Header.MsgType == "" {
		return kernelMsg{}, false
	}
	return kernelMsg{channel: m.Channel, msgType: m.Header.MsgType, msgID: m.Header.MsgID,
		parentID: m.ParentHeader.MsgID, state: m.Content.ExecutionState}, true
}

// decodeLegacyBinaryMsg reads Jupyter's binary frame for messages with
// buffers: a big-endian uint32 count of parts, their uint32 offsets, and
// as first part the message as JSON.
func decodeLegacyBinaryMsg(data []byte) (kernelMsg, bool) {
	if len(data) < 8 {
		return kernelMsg{}, false
	}
	n := uint64(binary.BigEndian.Uint32(data))
	if n == 0 || 4*(n+1) > uint64(len(data)) {
		return kernelMsg{}, false
	}
	start := uint64(binary.BigEndian.Uint32(data[4:]))
	end := uint64(len(data))
	if n > 1 {
		end = uint64(binary.BigEndian.Uint32(data[8:]))
	}
	if start > end || end > uint64(len(data)) {
		return kernelMsg{}, false
	}
	return decodeJSONMsg(data[start:end])
}

// decodeV1Msg reads a frame of the v1 kernel websocket protocol: a
// little-endian uint64 count of offsets, the offsets, then the channel,
// header, parent_header, metadata, content and buffers. data may be the
// first part of a longer message: what is needed must lie within it.
func decodeV1Msg(data []byte) (kernelMsg, bool) {
	if len(data) < 8 {
		return kernelMsg{}, false
	}
	n := binary.LittleEndian.Uint64(data)
	// channel, header and parent_header need four offsets.
	if n < 4 || n > 1<<16 || 8*(n+1) > uint64(len(data)) {
		return kernelMsg{}, false
	}
	part := func(i uint64) ([]byte, bool) {
		if i+1 >= n {
			return nil, false
		}
		a := binary.LittleEndian.Uint64(data[8*(i+1):])
		b := binary.LittleEndian.Uint64(data[8*(i+2):])
		if a > b || b > uint64(len(data)) {
			return nil, false
		}
		return data[a:b], true
	}
	channel, ok1 := part(0)
	header, ok2 := part(1)
	parent, ok3 := part(2)
	if !ok1 || !ok2 || !ok3 {
		return kernelMsg{}, false
	}
	var h, p jsonHeader
	if json.Unmarshal(header, &h) != nil || h.MsgType == "" {
		return kernelMsg{}, false
	}
	if len(bytes.TrimSpace(parent)) > 0 && json.Unmarshal(parent, &p) != nil {
		return kernelMsg{}, false
	}
	m := kernelMsg{channel: string(channel), msgType: h.MsgType, msgID: h.MsgID, parentID: p.MsgID}
	if h.MsgType == "status" {
		content, ok := part(4)
		var c struct {
			ExecutionState string `json:"execution_state"`
		}
		if !ok || json.Unmarshal(content, &c) != nil {
			return kernelMsg{}, false
		}
		m.state = c.ExecutionState
	}
	return m, true
}

// kernelChannelID returns the kernel id of a kernel websocket's path,
// /api/kernels/ID/channels; "" for any other path.
func kernelChannelID(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/kernels/")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "/channels")
	if !ok || id == "" || len(id) > 128 || strings.ContainsAny(id, "/?#") {
		return ""
	}
	return id
}

// kernelRestartID returns the kernel id of a restart request's path,
// /api/kernels/ID/restart; "" for any other path.
func kernelRestartID(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/kernels/")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "/restart")
	if !ok || id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}
