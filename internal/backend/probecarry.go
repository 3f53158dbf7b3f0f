package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/tlscert"
)

// The agent learns which options the image's Jupyter takes by running it
// (--help-all and a look at its packages: about a second of Python, most
// of a server's start once the image is there). A container's or pod's
// file system is new each time, so the docker and kubernetes backends
// carry that answer from one server of an image to the next: after a
// server is ready they ask the agent's control API what it learned
// (KeepProbe), keep it in a small file per image on this machine, and hand
// it to the next agent of the image in its spec (KeptProbe into
// AgentSpec.ProbeCache). The agent uses an answer only for the very
// executable it was learned from (internal/agent/probecarry.go), so a
// moved tag or a newer agent costs the probe once, and the next KeepProbe
// replaces what was kept. Nothing in it is secret; any failure only costs
// the probe.

// maxProbeFile bounds what is kept per image.
const maxProbeFile = 1 << 20

// probeFile is where the answers for image (an image's name or ID) are
// kept for backend kind, or "".
func probeFile(kind, image string) string {
	dir, err := os.UserCacheDir()
	if err != nil || image == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(image))
	return filepath.Join(dir, "spinbook", kind+"-probe", hex.EncodeToString(sum[:8])+".json")
}

// KeptProbe returns the answers kept for image by backend kind, or nil.
func KeptProbe(kind, image string) map[string]string {
	file := probeFile(kind, image)
	if file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil || len(data) > maxProbeFile {
		return nil
	}
	var files map[string]string
	if json.Unmarshal(data, &files) != nil {
		return nil
	}
	return files
}

// KeepProbe asks the agent of the ready server srv what it learned, with
// its control token, and keeps it for image when it differs from carried
// (what the agent was handed). An https front door is asked only with
// srv.TLSFingerprint, and only of the certificate it names.
func KeepProbe(ctx context.Context, log *slog.Logger, kind string, srv Server, token, image string, carried map[string]string) {
	file := probeFile(kind, image)
	if file == "" || token == "" {
		return
	}
	client, ok := controlClient(srv)
	if !ok {
		return
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(srv.URL, "/")+"/spinbook/api/status", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		log.Debug("ask the agent for its probe", "err", err)
		return
	}
	defer resp.Body.Close()
	var st struct {
		ProbeCache map[string]string `json:"probe_cache"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeFile+1))
	if err != nil || resp.StatusCode != http.StatusOK || len(data) > maxProbeFile || json.Unmarshal(data, &st) != nil || len(st.ProbeCache) == 0 {
		log.Debug("no probe from the agent", "status", resp.StatusCode, "err", err)
		return
	}
	if maps.Equal(st.ProbeCache, carried) {
		return
	}
	out, _ := json.Marshal(st.ProbeCache)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return
	}
	if err := atomicfile.Write(file, out, 0o600); err != nil {
		log.Debug("keep the probe", "err", err)
	}
}

// controlClient is a client for srv's control API that follows no
// redirect: plain for http, and for https pinned to srv.TLSFingerprint
// (false without one: the token goes to no certificate unchecked).
func controlClient(srv Server) (*http.Client, bool) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	switch {
	case strings.HasPrefix(srv.URL, "http://"):
		return client, true
	case strings.HasPrefix(srv.URL, "https://") && srv.TLSFingerprint != "":
		client.Transport = &http.Transport{TLSClientConfig: tlscert.Pinned(srv.TLSFingerprint)}
		return client, true
	}
	return nil, false
}
