package cli

import (
	"fmt"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With access.portal_only, only the portal starts servers: up refuses,
// before anything starts, and says what to do.
func TestUpRefusesPortalOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "spinbook.yaml")
	if err := os.WriteFile(cfg, []byte("access:\n  portal_only: true\nlocal:\n  state_dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "up", "--config", cfg, "--user", "alice")
	if code != exitUsage || !strings.Contains(stderr, "spinbook portal") || !strings.Contains(stderr, "portal_only") {
		t.Fatalf("up with portal_only: exit %d, %q; want 2 naming the portal", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "servers", "alice")); err == nil {
		t.Error("up made alice's server state before refusing")
	}
}

// The portal's progress shows down's steps without ui.Progress's clock.
func TestProgressWriter(t *testing.T) {
	var got []string
	w := &progressWriter{progress: func(s string) { got = append(got, s) }}
	w.Write([]byte("    0.1s  saving alice's workspace first\n  12.5s  "))
	w.Write([]byte("stopping\nalice's server has no repo\nlast"))
	w.flush()
	want := []string{"saving alice's workspace first", "stopping", "alice's server has no repo", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("progress %q, want %q", got, want)
	}
}

// TestPortalConfigFromEnvironment: the portal's ECS task on aws hands the
// portal its config as YAML text and its address in the environment
// (templates_portal.go); bad values are refused saying what to write.
func TestPortalConfigFromEnvironment(t *testing.T) {
	getenv := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	e := &env{configPath: filepath.Join(t.TempDir(), "missing.yaml")}
	yaml := "backend: local\nportal: {listen: 127.0.0.1:9999, url: http://127.0.0.1:9999}\n"
	cfg, err := portalConfig(e, getenv(map[string]string{
		aws.PortalConfigEnv: yaml, aws.PortalListenEnv: "0.0.0.0:8700", aws.PortalURLEnv: "https://notebooks.example.com",
		aws.PortalTrustedProxiesEnv: "10.0.0.0/16, 192.0.2.7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if listen, url := portalAddress(cfg); listen != "0.0.0.0:8700" || url != "https://notebooks.example.com" {
		t.Errorf("portal address = %s %s, want the environment's", listen, url)
	}
	if got := fmt.Sprint(cfg.Portal.TrustedPrefixes); got != "[10.0.0.0/16 192.0.2.7/32]" {
		t.Errorf("trusted proxies = %s, want the environment's", got)
	}
	cfg, err = portalConfig(e, getenv(map[string]string{aws.PortalConfigEnv: yaml}))
	if err != nil {
		t.Fatal(err)
	}
	if listen, url := portalAddress(cfg); listen != "127.0.0.1:9999" || url != "http://127.0.0.1:9999" {
		t.Errorf("portal address = %s %s, want the YAML's", listen, url)
	}
	for name, m := range map[string]map[string]string{
		"bad yaml":   {aws.PortalConfigEnv: "backend: [\n"},
		"bad listen": {aws.PortalConfigEnv: yaml, aws.PortalListenEnv: "8700"},
		"bad url":    {aws.PortalConfigEnv: yaml, aws.PortalURLEnv: "notebooks.example.com"},
		"bad proxy":  {aws.PortalConfigEnv: yaml, aws.PortalTrustedProxiesEnv: "10.0.0.0/16,alb.internal"},
	} {
		if _, err := portalConfig(e, getenv(m)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
