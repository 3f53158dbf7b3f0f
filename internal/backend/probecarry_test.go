package backend

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/tlscert"
)

// TestKeepProbe: what the agent reports is kept for the image and handed
// back by KeptProbe; a report equal to what was carried is not rewritten;
// only the control token opens the status; an https front door is asked
// only when its certificate is the pinned one.
func TestKeepProbe(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	const token = "canary-control-token"
	learned := map[string]string{"jupyter-0123456789abcdef.json": `{"app":"ServerApp"}`}
	asked := 0
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		if r.URL.Path != "/spinbook/api/status" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"probe_cache": {"jupyter-0123456789abcdef.json": "{\"app\":\"ServerApp\"}"}}`)
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	log := slog.New(slog.DiscardHandler)

	KeepProbe(t.Context(), log, "docker", Server{URL: plain.URL + "/"}, "wrong-token", "sha256:img", nil)
	if got := KeptProbe("docker", "sha256:img"); got != nil {
		t.Fatalf("kept %v from a refused request", got)
	}
	KeepProbe(t.Context(), log, "docker", Server{URL: plain.URL + "/"}, token, "sha256:img", nil)
	if diff := cmp.Diff(learned, KeptProbe("docker", "sha256:img")); diff != "" {
		t.Fatalf("KeptProbe (-want +got):\n%s", diff)
	}
	if KeptProbe("kubernetes", "sha256:img") != nil || KeptProbe("docker", "sha256:other") != nil {
		t.Error("kept for another backend or image")
	}
	file := probeFile("docker", "sha256:img")
	os.WriteFile(file, []byte(`{"jupyter-0123456789abcdef.json": "old"}`), 0o600)
	KeepProbe(t.Context(), log, "docker", Server{URL: plain.URL + "/"}, token, "sha256:img", learned)
	if got := KeptProbe("docker", "sha256:img"); got["jupyter-0123456789abcdef.json"] != "old" {
		t.Error("rewrote the kept probe though the agent learned what it was handed")
	}

	tlsSrv := httptest.NewTLSServer(handler)
	defer tlsSrv.Close()
	pin := tlscert.FingerprintDER(tlsSrv.Certificate().Raw)
	before := asked
	KeepProbe(t.Context(), log, "docker", Server{URL: tlsSrv.URL + "/", TLSFingerprint: "00:11"}, token, "sha256:tls", nil)
	KeepProbe(t.Context(), log, "docker", Server{URL: tlsSrv.URL + "/"}, token, "sha256:tls", nil)
	if asked != before || KeptProbe("docker", "sha256:tls") != nil {
		t.Fatal("the token went to an https front door whose certificate was not pinned")
	}
	KeepProbe(t.Context(), log, "docker", Server{URL: tlsSrv.URL + "/", TLSFingerprint: pin}, token, "sha256:tls", nil)
	if diff := cmp.Diff(learned, KeptProbe("docker", "sha256:tls")); diff != "" {
		t.Errorf("KeptProbe over pinned https (-want +got):\n%s", diff)
	}
}
