package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTerminalAndSaveOnFlavours: on every Jupyter flavour, a notebook
// saved through the front door as the page saves it (PUT
// /api/contents) shows in `git status` typed in a terminal (whose shell
// has the flavour's venv activated), and `spinbook save` pushes it.
func TestTerminalAndSaveOnFlavours(t *testing.T) {
	for _, f := range jupyterFlavours(t) {
		t.Run(f.name, func(t *testing.T) {
			g := newGitWorld(t, "main", f.config)
			s := g.up("tess")
			b := newBrowser(t, s.URL, "")
			if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login = %s", resp.Status)
			}

			// Save a notebook as JupyterLab and Notebook do.
			nb := map[string]any{
				"type": "notebook", "format": "json",
				"content": map[string]any{
					"cells": []any{map[string]any{
						"cell_type": "code", "execution_count": nil, "metadata": map[string]any{},
						"outputs": []any{}, "source": "print('saved from " + f.name + "')",
					}},
					"metadata": map[string]any{}, "nbformat": 4, "nbformat_minor": 5,
				},
			}
			body, _ := json.Marshal(nb)
			resp := b.do(t, http.MethodPut, "/api/contents/saved.ipynb", strings.NewReader(string(body)), map[string]string{
				"Content-Type": "application/json", "Origin": b.origin(),
			})
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT /api/contents/saved.ipynb = %s", resp.Status)
			}

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			term := dialTerminal(ctx, t, b, startTerminal(t, b))
			defer term.CloseNow()
			out := terminalRun(ctx, t, term, `cd `+s.Workspace+` && git status --porcelain && echo "venv=[$VIRTUAL_ENV]" && echo done-$((6*7))`, "done-42")
			if !strings.Contains(out, "?? saved.ipynb") {
				t.Errorf("git status in the terminal does not show the saved notebook:\n%s", out)
			}
			if !strings.Contains(out, "venv=["+f.venv+"]") {
				t.Errorf("the terminal's VIRTUAL_ENV is not %q:\n%s", f.venv, out)
			}
			term.Close(websocket.StatusNormalClosure, "")

			res, r := g.save(t, "tess", "-m", "saved on "+f.name)
			if r.code != 0 || !res.Saved || res.PushedTo != "main" {
				t.Fatalf("save = %+v\n%s", res, r)
			}
			if pushed := g.git.Tree(t, "main")["saved.ipynb"]; !strings.Contains(pushed, "saved from "+f.name) {
				t.Errorf("the pushed notebook lacks its cell:\n%s", pushed)
			}
		})
	}
}

// dialTerminal opens terminal name's websocket through the front door.
func dialTerminal(ctx context.Context, t *testing.T, b *browser, name string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws://"+b.base.Host+"/terminals/websocket/"+name, &websocket.DialOptions{
		HTTPClient: b.Client, HTTPHeader: http.Header{"Origin": {b.origin()}},
	})
	if err != nil {
		t.Fatalf("terminal websocket: %v", err)
	}
	return conn
}

// terminalRun types line into the terminal (terminado's ["stdin", ...]
// frames) and returns what it printed until until appears on its own.
func terminalRun(ctx context.Context, t *testing.T, conn *websocket.Conn, line, until string) string {
	t.Helper()
	msg, _ := json.Marshal([]string{"stdin", line + "\r"})
	if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatalf("terminal stdin: %v", err)
	}
	var out strings.Builder
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("terminal output (so far %q): %v", out.String(), err)
		}
		var frame []json.RawMessage
		if json.Unmarshal(data, &frame) != nil || len(frame) < 2 {
			continue
		}
		var kind, text string
		json.Unmarshal(frame[0], &kind)
		if kind != "stdout" || json.Unmarshal(frame[1], &text) != nil {
			continue
		}
		out.WriteString(text)
		// The echoed command line holds "$((6*7))", not its value: the
		// value alone means the command ran.
		if strings.Contains(strings.ReplaceAll(out.String(), "\r", ""), "\n"+until) {
			return strings.ReplaceAll(out.String(), "\r", "")
		}
	}
}
