package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startKernel creates a kernel through the front door and returns its id.
func startKernel(t *testing.T, b *browser) string {
	t.Helper()
	resp := b.do(t, http.MethodPost, "/api/kernels", strings.NewReader(`{"name":"python3"}`), map[string]string{
		"Content-Type": "application/json",
		"Origin":       b.origin(),
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/kernels: %s", resp.Status)
	}
	var k struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil || k.ID == "" {
		t.Fatalf("POST /api/kernels: no kernel id (%v)", err)
	}
	return k.ID
}

// dialKernel opens the kernel's websocket through the front door with the
// browser's cookies and the given Origin.
func dialKernel(ctx context.Context, b *browser, kernelID, origin string) (*websocket.Conn, *http.Response, error) {
	scheme := "ws://"
	if b.base.Scheme == "https" {
		scheme = "wss://"
	}
	wsURL := scheme + b.base.Host + "/api/kernels/" + kernelID + "/channels?session_id=" + newID()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: b.Client, HTTPHeader: h})
}

// execute runs code on the kernel over conn (Jupyter messaging protocol
// v5, JSON frames) and returns everything the kernel printed to stdout.
func execute(ctx context.Context, t *testing.T, conn *websocket.Conn, code string) string {
	t.Helper()
	msgID := newID()
	msg := map[string]any{
		"header": map[string]any{
			"msg_id": msgID, "username": "e2e", "session": newID(), "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano),
		},
		"parent_header": map[string]any{},
		"metadata":      map[string]any{},
		"content": map[string]any{
			"code": code, "silent": false, "store_history": false,
			"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true,
		},
		"buffers": []any{},
		"channel": "shell",
	}
	data, _ := json.Marshal(msg)
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("send execute_request: %v", err)
	}
	var out strings.Builder
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read kernel reply (stdout so far %q): %v", out.String(), err)
		}
		var m struct {
			Channel string `json:"channel"`
			Header  struct {
				MsgType string `json:"msg_type"`
			} `json:"header"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Name           string `json:"name"`
				Text           string `json:"text"`
				ExecutionState string `json:"execution_state"`
				Ename          string `json:"ename"`
				Evalue         string `json:"evalue"`
			} `json:"content"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("kernel sent a frame that is not JSON: %v", err)
		}
		if m.ParentHeader.MsgID != msgID {
			continue
		}
		switch m.Header.MsgType {
		case "stream":
			if m.Content.Name == "stdout" {
				out.WriteString(m.Content.Text)
			}
		case "error":
			t.Fatalf("kernel error %s: %s", m.Content.Ename, m.Content.Evalue)
		case "status":
			if m.Content.ExecutionState == "idle" {
				return out.String()
			}
		}
	}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
