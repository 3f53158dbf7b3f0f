package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
)

// The agent learns which options the image's Jupyter takes by running it
// (--help-all and a look at its packages: seconds of Python, most of a
// pod's start after the image is there). A pod's file system is new each
// time, so the backend carries that answer from one pod of an image to
// the next, as the docker backend does from one container to the next:
// after a server is ready it asks the agent's control API what it learned,
// keeps it in a small file per image on this machine, and hands it to the
// next agent of the image in its spec. The agent uses it only for the very
// executable it was learned from (internal/agent/probecarry.go), so a
// moved tag costs the probe again, nothing more. Nothing in it is secret;
// any failure only costs the probe.

// maxProbeFile bounds what is kept per image.
const maxProbeFile = 1 << 20

// probeFile is where the answers for image are kept, or "".
func probeFile(image string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(image))
	return filepath.Join(dir, "spinbook", "kubernetes-probe", hex.EncodeToString(sum[:8])+".json")
}

// keptProbe returns the answers kept for image, or nil.
func keptProbe(image string) map[string]string {
	file := probeFile(image)
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

// keepProbe asks the agent of the ready server srv what it learned and
// keeps it for image.
func (k *Kubernetes) keepProbe(ctx context.Context, srv backend.Server, token, image string) {
	file := probeFile(image)
	if file == "" || token == "" || !strings.HasPrefix(srv.URL, "http://") {
		return // a TLS front door's certificate is checked by the CLI, not here
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(srv.URL, "/")+"/spinbook/api/status", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		k.log.Debug("ask the agent for its probe", "err", err)
		return
	}
	defer resp.Body.Close()
	var st struct {
		ProbeCache map[string]string `json:"probe_cache"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeFile+1))
	if err != nil || resp.StatusCode != http.StatusOK || len(data) > maxProbeFile || json.Unmarshal(data, &st) != nil || len(st.ProbeCache) == 0 {
		k.log.Debug("no probe from the agent", "status", resp.StatusCode, "err", err)
		return
	}
	out, _ := json.Marshal(st.ProbeCache)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return
	}
	if err := atomicfile.Write(file, out, 0o600); err != nil {
		k.log.Debug("keep the probe", "err", err)
	}
}
