package backend

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAgentError(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"agent failed line", `time=x level=INFO msg="agent starting"
time=x level=ERROR msg="agent failed" err="jupyter.command \"/x lab\": exec: not found; check the path or install Jupyter"
Error: agent failed; see the log above`, `jupyter.command "/x lab": exec: not found; check the path or install Jupyter`},
		{"cli error only", "Error: wait for agent spec: /run/spinbook/spec.json did not arrive within 2m0s\n", "wait for agent spec: /run/spinbook/spec.json did not arrive within 2m0s"},
		{"nothing", "jupyter: [I] hello\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AgentError(tt.log); got != tt.want {
				t.Errorf("AgentError = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReady(t *testing.T) {
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	client := srv.Client()
	if Ready(client, srv.URL) {
		t.Fatal("Ready with /readyz answering 503 = true")
	}
	status = http.StatusOK
	if !Ready(client, srv.URL) {
		t.Fatal("Ready with /readyz answering 200 = false")
	}
	if Ready(client, "http://127.0.0.1:1") {
		t.Fatal("Ready with nothing listening = true")
	}
}
