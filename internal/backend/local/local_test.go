package local

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/backendtest"
	"github.com/spinbook/spinbook/internal/config"
)

func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if _, err := exec.LookPath("jupyter-lab"); err != nil {
			t.Skip("no Jupyter on PATH: apt-get install jupyter-notebook python3-ipykernel")
		}
	}
	agent := backendtest.BuildAgent(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		cfg := config.Default()
		cfg.Local.StateDir = t.TempDir()
		// Run as root, the servers' own accounts must pass through the
		// state dir's parent (t.TempDir's is 0700).
		if err := os.Chmod(filepath.Dir(cfg.Local.StateDir), 0o711); err != nil {
			t.Fatal(err)
		}
		cfg.Local.PortLo, cfg.Local.PortHi = 19000, 19199
		l, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), agent)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
