package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/portal/client"
)

const token = "sbp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func TestCheckURL(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"https://notebooks.example.com/", "https://notebooks.example.com", ""},
		{"https://example.com/spinbook//", "https://example.com/spinbook", ""},
		{"http://127.0.0.1:8700", "http://127.0.0.1:8700", ""},
		{"http://localhost:8700/", "http://localhost:8700", ""},
		{"http://[::1]:8700", "http://[::1]:8700", ""},
		{"http://notebooks.example.com", "", "unencrypted"},
		{"notebooks.example.com", "", "not a portal URL"},
		{"ftp://example.com", "", "not a portal URL"},
		{"https://u:p@example.com", "", "no user, query or fragment"},
		{"https://example.com/?a=b", "", "no user, query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := client.CheckURL(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CheckURL(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CheckURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"", "sbp_", token[:len(token)-1], token + "A", "sbx_" + token[4:], token[:10] + "+" + token[11:]} {
		if err := client.CheckToken(tok); err == nil {
			t.Errorf("CheckToken(%q) accepted it", tok)
		} else if len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Errorf("CheckToken's error repeats the token: %v", err)
		}
	}
	if err := client.CheckToken(token); err != nil {
		t.Errorf("CheckToken(a good token): %v", err)
	}
}

// TestStream: start and stop read SSE progress and exactly one result;
// anything else is an error that says what to do.
func TestStream(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		ctype    string
		body     string
		progress []string
		want     string // the result's user, when it succeeds
		err      string
	}{
		{"progress then done", 200, "text/event-stream",
			"event: progress\ndata: {\"message\":\"one\"}\n\n: ping\n\nevent: progress\ndata: {\"message\":\"two\"}\n\nevent: done\ndata: {\"user\":\"alice\"}\n\n",
			[]string{"one", "two"}, "alice", ""},
		{"data over two lines", 200, "text/event-stream", "event: done\ndata: {\"user\":\ndata: \"alice\"}\n\n", nil, "alice", ""},
		{"an unknown event is skipped", 200, "text/event-stream", "event: later\ndata: x\n\nevent: done\ndata: {\"user\":\"alice\"}\n\n", nil, "alice", ""},
		{"error event", 200, "text/event-stream", "event: progress\ndata: {\"message\":\"one\"}\n\nevent: error\ndata: {\"error\":\"the image cannot be pulled: ask an admin\"}\n\n",
			[]string{"one"}, "", "the image cannot be pulled: ask an admin"},
		{"stream ends early", 200, "text/event-stream", "event: progress\ndata: {\"message\":\"one\"}\n\n", []string{"one"}, "", "ended without a result"},
		{"plain JSON", 200, "application/json", `{"user":"alice"}`, nil, "alice", ""},
		{"409", 409, "application/json", `{"error":"purge refused: the work is not saved"}`, nil, "", "purge refused: the work is not saved"},
		{"401", 401, "application/json", `{"error":"token revoked"}`, nil, "", "spinbook login"},
		{"429", 429, "application/json", `{"error":"slow down"}`, nil, "", "wait a minute"},
		{"not the API", 502, "text/html", `<html>bad gateway</html>`, nil, "", "not a spinbook API answer"},
		{"garbage result", 200, "text/event-stream", "event: done\ndata: [1,2\n\n", nil, "", "not what spinbook expects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotAuth, gotAccept, gotBody string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotAuth, gotAccept = r.Header.Get("Authorization"), r.Header.Get("Accept")
				b := new(strings.Builder)
				fmt.Fprint(b, r.Method, " ", r.URL.Path, " ")
				buf := make([]byte, 512)
				n, _ := r.Body.Read(buf)
				b.Write(buf[:n])
				gotBody = b.String()
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c := client.New(srv.URL, token, nil)
			var progress []string
			var out struct{ User string }
			err := c.Start(t.Context(), "alice", "small", func(m string) { progress = append(progress, m) }, &out)
			if gotAuth != "Bearer "+token || gotAccept != "text/event-stream" || gotBody != `POST /api/v1/servers/alice/start {"size":"small"}` {
				t.Fatalf("the request: auth %q, accept %q, %q", gotAuth, gotAccept, gotBody)
			}
			if diff := cmp.Diff(tt.progress, progress); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Start: %v; want an error with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("the error holds the token: %v", err)
				}
				return
			}
			if err != nil || out.User != tt.want {
				t.Fatalf("Start: %+v, %v; want user %q", out, err, tt.want)
			}
		})
	}
}

func TestErrorStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"there is no server of bob that you may see"}`)
	}))
	defer srv.Close()
	var out any
	err := client.New(srv.URL, token, nil).Status(t.Context(), "bob", &out)
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Status != http.StatusNotFound || err.Error() != "there is no server of bob that you may see" {
		t.Fatalf("Status of another's server: %v; want the portal's 404 and its message", err)
	}
}
