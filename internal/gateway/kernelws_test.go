package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// A kernel message as the tests build it.
type testMsg struct {
	channel, msgType, msgID, parentID, state string
	code                                     string // content.code of an execute_request
}

func (m testMsg) parts() (header, parent, content []byte) {
	header, _ = json.Marshal(map[string]string{"msg_id": m.msgID, "msg_type": m.msgType, "session": "s", "username": "u", "version": "5.3"})
	parent = []byte("{}")
	if m.parentID != "" {
		parent, _ = json.Marshal(map[string]string{"msg_id": m.parentID, "msg_type": "execute_request"})
	}
	c := map[string]any{}
	if m.state != "" {
		c["execution_state"] = m.state
	}
	if m.code != "" {
		c["code"] = m.code
	}
	content, _ = json.Marshal(c)
	return header, parent, content
}

// encodeJSON is the default wire format: one JSON text message.
func encodeJSON(m testMsg) []byte {
	h, p, c := m.parts()
	out, _ := json.Marshal(map[string]any{"channel": m.channel, "header": json.RawMessage(h),
		"parent_header": json.RawMessage(p), "metadata": map[string]any{}, "content": json.RawMessage(c), "buffers": []any{}})
	return out
}

// encodeLegacyBinary is Jupyter's binary frame for a message with
// buffers (serialize_binary_message): here one buffer.
func encodeLegacyBinary(m testMsg) []byte {
	msg, buf := encodeJSON(m), []byte("\x00\x01binary buffer")
	out := binary.BigEndian.AppendUint32(nil, 2)
	out = binary.BigEndian.AppendUint32(out, 12)
	out = binary.BigEndian.AppendUint32(out, uint32(12+len(msg)))
	return append(append(out, msg...), buf...)
}

// encodeV1 is jupyter_server's serialize_msg_to_ws_v1.
func encodeV1(m testMsg) []byte {
	h, p, c := m.parts()
	parts := [][]byte{[]byte(m.channel), h, p, []byte("{}"), c}
	offsets := []uint64{8 * uint64(1+len(parts)+1)}
	for _, part := range parts {
		offsets = append(offsets, offsets[len(offsets)-1]+uint64(len(part)))
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(offsets)))
	for _, o := range offsets {
		out = binary.LittleEndian.AppendUint64(out, o)
	}
	return append(out, bytes.Join(parts, nil)...)
}

// frame builds one websocket frame; a mask key masks it (browser to server).
func frame(fin bool, opcode byte, payload []byte, mask []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var b1 byte
	if mask != nil {
		b1 = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, b1|byte(n))
	case n < 1<<16:
		out = binary.BigEndian.AppendUint16(append(out, b1|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, b1|127), uint64(n))
	}
	if mask == nil {
		return append(out, payload...)
	}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

func TestFrameStream(t *testing.T) {
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	big := bytes.Repeat([]byte("x"), 70000)
	type got struct {
		Opcode  byte
		Payload string
		Opaque  bool
	}
	tests := []struct {
		name   string
		keep   int
		stream []byte
		want   []got
	}{
		{"text, unmasked", 64, frame(true, opText, []byte("hello"), nil), []got{{opText, "hello", false}}},
		{"text, masked", 64, frame(true, opText, []byte("hello"), mask), []got{{opText, "hello", false}}},
		{"fragments around a ping", 64, bytes.Join([][]byte{
			frame(false, opBinary, []byte("ab"), mask),
			frame(true, 0x9, []byte("ping"), mask),
			frame(false, opContinuation, []byte("cd"), mask),
			frame(true, opContinuation, []byte("ef"), mask),
			frame(true, opText, nil, mask),
		}, nil), []got{{opBinary, "abcdef", false}, {opText, "", false}}},
		{"16-bit length", 1 << 10, frame(true, opText, big[:300], mask), []got{{opText, string(big[:300]), false}}},
		{"longer than kept: cut, opaque", 100, append(frame(true, opText, big, nil), frame(true, opText, []byte("next"), nil)...),
			[]got{{opText, string(big[:100]), true}, {opText, "next", false}}},
		{"compressed: opaque", 64, func() []byte { f := frame(true, opText, []byte("zz"), nil); f[0] |= 0x40; return f }(),
			[]got{{opText, "", true}}},
		{"nothing kept", 0, frame(true, opText, []byte("typed"), mask), []got{{opText, "", true}}},
		{"a framing error stops the reading", 64, append(frame(true, opContinuation, []byte("x"), nil), frame(true, opText, []byte("y"), nil)...), nil},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, len(tt.stream)} {
			var seen []got
			s := frameStream{keep: tt.keep, onMessage: func(op byte, p []byte, opaque bool) {
				seen = append(seen, got{op, string(p), opaque})
			}}
			for p := tt.stream; len(p) > 0; {
				n := min(chunk, len(p))
				s.feed(p[:n])
				p = p[n:]
			}
			if diff := cmp.Diff(tt.want, seen); diff != "" {
				t.Errorf("%s, fed %d bytes at a time (-want +got):\n%s", tt.name, chunk, diff)
			}
		}
	}
}

func TestDecodeKernelMsg(t *testing.T) {
	status := testMsg{channel: "iopub", msgType: "status", msgID: "m2", parentID: "m1", state: "busy"}
	exec := testMsg{channel: "shell", msgType: "execute_request", msgID: "m1", code: "import time; time.sleep(60)"}
	wantStatus := kernelMsg{channel: "iopub", msgType: "status", msgID: "m2", parentID: "m1", state: "busy"}
	wantExec := kernelMsg{channel: "shell", msgType: "execute_request", msgID: "m1"}
	bigExec := exec
	bigExec.code = strings.Repeat("#", 2*maxKernelMessage)
	v1Big := encodeV1(bigExec)[:maxKernelMessage] // what a stream keeps of it
	tests := []struct {
		name     string
		opcode   byte
		payload  []byte
		opaque   bool
		v1       bool
		want     kernelMsg
		readable bool
	}{
		{"json status", opText, encodeJSON(status), false, false, wantStatus, true},
		{"json execute_request", opText, encodeJSON(exec), false, false, wantExec, true},
		{"legacy binary status", opBinary, encodeLegacyBinary(status), false, false, wantStatus, true},
		{"v1 status", opBinary, encodeV1(status), false, true, wantStatus, true},
		{"v1 execute_request", opBinary, encodeV1(exec), false, true, wantExec, true},
		{"v1 cut short: the header is in the part kept", opBinary, v1Big, true, true, wantExec, true},
		{"json cut short", opText, encodeJSON(exec)[:40], true, false, kernelMsg{}, false},
		{"not JSON", opText, []byte("hello"), false, false, kernelMsg{}, false},
		{"v1 garbage", opBinary, []byte("\xff\xff\xff\xff\xff\xff\xff\xffjunkjunk"), false, true, kernelMsg{}, false},
		{"v1 offsets past the end", opBinary, encodeV1(status)[:60], true, true, kernelMsg{}, false},
		{"legacy garbage", opBinary, []byte{0, 0, 0, 9, 0, 0}, false, false, kernelMsg{}, false},
	}
	for _, tt := range tests {
		got, ok := decodeKernelMsg(tt.opcode, tt.payload, tt.opaque, tt.v1)
		if ok != tt.readable || got != tt.want {
			t.Errorf("%s: decode = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.readable)
		}
	}
}

// A standInKernel plays a kernel behind Jupyter's channels websocket, in
// the format the client asked for: it answers an execute_request with
// status busy, and only when released with execute_reply and status
// idle. What Jupyter itself does is tested in e2e TestBusyKernelUnderLoad.
type standInKernel struct {
	release    chan struct{}
	extensions atomic.Value // the Sec-WebSocket-Extensions the gateway sent
}

func (k *standInKernel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.extensions.Store(r.Header.Get("Sec-WebSocket-Extensions"))
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{kernelWSProtocol}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	v1 := c.Subprotocol() == kernelWSProtocol
	send := func(m testMsg) error {
		if v1 {
			return c.Write(r.Context(), websocket.MessageBinary, encodeV1(m))
		}
		return c.Write(r.Context(), websocket.MessageText, encodeJSON(m))
	}
	requests := make(chan kernelMsg, 8)
	go func() { // reads all along, as Jupyter does, so a close is seen
		defer close(requests)
		for {
			_, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			m, ok := decodeKernelMsg(opText, data, false, false)
			if v1 {
				m, ok = decodeKernelMsg(opBinary, data, false, true)
			}
			if ok && m.msgType == "execute_request" {
				requests <- m
			}
		}
	}()
	for m := range requests {
		if send(testMsg{channel: "iopub", msgType: "status", msgID: "b-" + m.msgID, parentID: m.msgID, state: "busy"}) != nil {
			return
		}
		select {
		case <-k.release:
		case <-r.Context().Done():
			return
		}
		if send(testMsg{channel: "shell", msgType: "execute_reply", msgID: "r-" + m.msgID, parentID: m.msgID}) != nil ||
			send(testMsg{channel: "iopub", msgType: "status", msgID: "i-" + m.msgID, parentID: m.msgID, state: "idle"}) != nil {
			return
		}
	}
}

// TestKernelTraffic: through the gateway, in both wire formats, an
// execute_request is in flight from when it is sent until the kernel
// answers; a websocket closed meanwhile leaves it in flight, with the
// time of the close, until the agent settles it.
func TestKernelTraffic(t *testing.T) {
	for _, format := range []string{"json", "v1"} {
		t.Run(format, func(t *testing.T) {
			k := &standInKernel{release: make(chan struct{})}
			kernelSrv := httptest.NewServer(k)
			t.Cleanup(kernelSrv.Close)
			var activity atomic.Int64
			e := newEnv(t, func(o *Options) {
				o.Upstream, _ = url.Parse(kernelSrv.URL)
				o.OnActivity = func() { activity.Add(1) }
			})
			srv := httptest.NewServer(e.g)
			t.Cleanup(srv.Close)
			host := srv.Listener.Addr().String()
			opts := &websocket.DialOptions{
				HTTPHeader:      http.Header{"Origin": {"http://" + host}, "Cookie": {e.login(t)}},
				CompressionMode: websocket.CompressionContextTakeover,
			}
			typ, encode := websocket.MessageText, encodeJSON
			if format == "v1" {
				opts.Subprotocols = []string{kernelWSProtocol}
				typ, encode = websocket.MessageBinary, encodeV1
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+host+"/api/kernels/k1/channels?session_id=s", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if got := c.Subprotocol(); (format == "v1") != (got == kernelWSProtocol) {
				t.Fatalf("subprotocol %q", got)
			}
			if ext := k.extensions.Load(); ext != "" {
				t.Errorf("the kernel was offered extensions %q; the gateway must read plain frames", ext)
			}
			traffic := func() []KernelTraffic {
				got := e.g.KernelTraffic()
				for i := range got {
					if !got[i].ClosedAt.IsZero() {
						got[i].ClosedAt = time.Unix(1, 0) // set; its value is the clock's
					}
				}
				return got
			}
			check := func(what string, want []KernelTraffic) {
				t.Helper()
				if diff := cmp.Diff(want, traffic()); diff != "" {
					t.Errorf("%s: traffic (-want +got):\n%s", what, diff)
				}
			}
			// readUntil reads until the kernel sends a message of msgType.
			readUntil := func(msgType, state string) {
				t.Helper()
				for {
					_, data, err := c.Read(ctx)
					if err != nil {
						t.Fatalf("waiting for %s %s: %v", msgType, state, err)
					}
					m, _ := decodeKernelMsg(opText, data, false, false)
					if format == "v1" {
						m, _ = decodeKernelMsg(opBinary, data, false, true)
					}
					if m.msgType == msgType && m.state == state {
						return
					}
				}
			}
			run := func(id string) {
				t.Helper()
				if err := c.Write(ctx, typ, encode(testMsg{channel: "shell", msgType: "execute_request", msgID: id, code: "import time; time.sleep(60)"})); err != nil {
					t.Fatal(err)
				}
				readUntil("status", "busy")
			}

			check("open, nothing sent", []KernelTraffic{{ID: "k1", Open: 1}})
			run("m1")
			check("a cell running", []KernelTraffic{{ID: "k1", Open: 1, InFlight: 1, Busy: true}})
			if activity.Load() == 0 {
				t.Errorf("sending an execute_request was not reported as activity")
			}
			k.release <- struct{}{}
			readUntil("status", "idle")
			check("the cell answered", []KernelTraffic{{ID: "k1", Open: 1}})

			run("m2")
			c.Close(websocket.StatusGoingAway, "tab closed")
			waitUntil(t, "the gateway to see the close", func() bool { return len(traffic()) == 1 && traffic()[0].Open == 0 })
			check("closed with a cell running", []KernelTraffic{{ID: "k1", InFlight: 1, ClosedAt: time.Unix(1, 0)}})
			e.g.SettleKernel("k1")
			check("settled", []KernelTraffic{})
		})
	}
}

// waitUntil polls cond until it holds, for at most 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKernelTrackerBounds: executions per kernel and kernels followed are
// bounded; a restart or a new kernel process forgets what was queued.
func TestKernelTrackerBounds(t *testing.T) {
	tr := newKernelTracker(time.Now, func() {})
	if !tr.opened("k") {
		t.Fatal("opened k: false")
	}
	for i := range maxInFlight + 10 {
		tr.fromClient("k", kernelMsg{channel: "shell", msgType: "execute_request", msgID: strings.Repeat("x", i+1)})
	}
	if got := tr.snapshot()[0].InFlight; got != maxInFlight {
		t.Errorf("in flight %d, want the bound %d", got, maxInFlight)
	}
	tr.fromKernel("k", kernelMsg{msgType: "status", state: "starting"})
	if got := tr.snapshot()[0].InFlight; got != 0 {
		t.Errorf("in flight after the kernel started anew: %d", got)
	}
	tr.fromClient("k", kernelMsg{channel: "shell", msgType: "execute_request", msgID: "a"})
	tr.restarted("k")
	if got := tr.snapshot()[0].InFlight; got != 0 {
		t.Errorf("in flight after a restart: %d", got)
	}
	for i := 1; i < maxTrackedKernels; i++ {
		tr.opened(strings.Repeat("k", i+1))
	}
	if tr.opened("one-too-many") {
		t.Errorf("a kernel beyond %d was followed", maxTrackedKernels)
	}
	// An execute_request on another channel, or without an id, is not one.
	tr.fromClient("k", kernelMsg{channel: "control", msgType: "execute_request", msgID: "c"})
	tr.fromClient("k", kernelMsg{channel: "shell", msgType: "execute_request"})
	if got := tr.snapshot()[0].InFlight; got != 0 {
		t.Errorf("in flight: %d, want 0", got)
	}
}
