package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// startKernel creates a python3 kernel and returns its id.
func (j jupyterAPI) startKernel(ctx context.Context) (string, error) {
	code, body, err := j.do(ctx, http.MethodPost, "api/kernels", `{"name":"python3"}`)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("POST %sapi/kernels: %d %s %v", j.base, code, body, err)
	}
	var k struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &k); err != nil || k.ID == "" {
		return "", fmt.Errorf("POST %sapi/kernels: no kernel id in %q", j.base, body)
	}
	return k.ID, nil
}

func (j jupyterAPI) deleteKernel(ctx context.Context, id string) error {
	code, body, err := j.do(ctx, http.MethodDelete, "api/kernels/"+id, "")
	if err != nil || code != http.StatusNoContent {
		return fmt.Errorf("DELETE %sapi/kernels/%s: %d %s %v", j.base, id, code, body, err)
	}
	return nil
}

// dialKernel opens the kernel's channels websocket.
func (j jupyterAPI) dialKernel(ctx context.Context, id string) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(j.base, "http") + "api/kernels/" + id + "/channels?session_id=" + randomHex(16)
	h := j.header.Clone()
	if j.origin != "" {
		h.Set("Origin", j.origin)
	}
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: j.client, HTTPHeader: h})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	conn.SetReadLimit(16 << 20)
	return conn, nil
}

// sendExecute sends an execute_request (Jupyter messaging v5, JSON frames)
// and returns its message id.
func sendExecute(ctx context.Context, conn *websocket.Conn, session, code string) (string, error) {
	id := randomHex(16)
	msg := map[string]any{
		"header": map[string]any{
			"msg_id": id, "username": "spinbench", "session": session, "msg_type": "execute_request",
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
	return id, conn.Write(ctx, websocket.MessageText, data)
}

// execute runs code and waits for both its execute_reply and the kernel's
// return to idle: what a notebook waits for before it shows the result.
func execute(ctx context.Context, conn *websocket.Conn, session, code string) error {
	id, err := sendExecute(ctx, conn, session, code)
	if err != nil {
		return fmt.Errorf("send execute_request: %w", err)
	}
	replied, idle := false, false
	for !replied || !idle {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read kernel message: %w", err)
		}
		var m struct {
			Header struct {
				MsgType string `json:"msg_type"`
			} `json:"header"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Status         string `json:"status"`
				ExecutionState string `json:"execution_state"`
			} `json:"content"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("kernel sent a frame that is not JSON: %w", err)
		}
		if m.ParentHeader.MsgID != id {
			continue
		}
		switch m.Header.MsgType {
		case "execute_reply":
			if m.Content.Status != "ok" {
				return fmt.Errorf("execute_reply status %q", m.Content.Status)
			}
			replied = true
		case "status":
			idle = idle || m.Content.ExecutionState == "idle"
		}
	}
	return nil
}

// roundTrips starts a kernel, runs `1+1` warmup times unmeasured and then
// n times measured, sequentially, and deletes the kernel.
func roundTrips(ctx context.Context, j jupyterAPI, warmup, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(n)*time.Second)
	defer cancel()
	id, err := j.startKernel(ctx)
	if err != nil {
		return nil, err
	}
	defer j.deleteKernel(context.WithoutCancel(ctx), id)
	conn, err := j.dialKernel(ctx, id)
	if err != nil {
		return nil, err
	}
	defer conn.CloseNow()
	session := randomHex(16)
	// The first execute waits for the kernel to start.
	for i := 0; i < warmup; i++ {
		if err := execute(ctx, conn, session, "1+1"); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := execute(ctx, conn, session, "1+1"); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// spinners are kernels that keep a core busy each.
type spinners struct {
	api   jupyterAPI
	ids   []string
	conns []*websocket.Conn
}

// spin starts n kernels running `while True: pass`, having first checked
// each answers.
func spin(ctx context.Context, j jupyterAPI, n int) (*spinners, error) {
	s := &spinners{api: j}
	for i := 0; i < n; i++ {
		id, err := j.startKernel(ctx)
		if err != nil {
			s.stop(ctx)
			return nil, err
		}
		s.ids = append(s.ids, id)
		conn, err := j.dialKernel(ctx, id)
		if err != nil {
			s.stop(ctx)
			return nil, err
		}
		s.conns = append(s.conns, conn)
		session := randomHex(16)
		if err := execute(ctx, conn, session, "1+1"); err != nil {
			s.stop(ctx)
			return nil, err
		}
		if _, err := sendExecute(ctx, conn, session, "while True: pass"); err != nil {
			s.stop(ctx)
			return nil, err
		}
	}
	return s, nil
}

// stop deletes the kernels (Jupyter kills a busy kernel).
func (s *spinners) stop(ctx context.Context) error {
	var first error
	for _, c := range s.conns {
		c.CloseNow()
	}
	for _, id := range s.ids {
		if err := s.api.deleteKernel(ctx, id); err != nil && first == nil {
			first = err
		}
	}
	return first
}
