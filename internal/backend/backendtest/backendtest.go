// Package backendtest is the conformance suite every backend runs: Up twice
// returns the same server, Down twice is fine, Status after Down is Absent,
// List finds what Up made, and a cancelled context is honoured.
package backendtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/secret"
)

// Run runs the suite against the backend newBackend returns; each subtest
// gets a fresh one.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	hash, err := secret.HashPassword("conformance-password")
	if err != nil {
		t.Fatal(err)
	}
	spec := func(user string) backend.Spec {
		return backend.Spec{User: user, Agent: backend.AgentSpec{PasswordHash: hash}}
	}
	nop := func(backend.Event) {}

	t.Run("UpTwiceReturnsTheSameServer", func(t *testing.T) {
		b := newBackend(t)
		t.Cleanup(func() { b.Down(context.Background(), "conf-a", nop) })
		first, err := b.Up(t.Context(), spec("conf-a"), nop)
		if err != nil {
			t.Fatalf("Up: %v", err)
		}
		if !first.Started || first.State != backend.Running || !first.Ready || first.URL == "" {
			t.Fatalf("first Up = %+v, want a started, ready server with a URL", first)
		}
		second, err := b.Up(t.Context(), spec("conf-a"), nop)
		if err != nil {
			t.Fatalf("second Up: %v", err)
		}
		if second.Started || second.URL != first.URL || second.HealthURL != first.HealthURL {
			t.Fatalf("second Up = %+v, want the same server as %+v, not started again", second, first)
		}
	})

	t.Run("DownTwiceAndStatusAbsent", func(t *testing.T) {
		b := newBackend(t)
		if _, err := b.Up(t.Context(), spec("conf-b"), nop); err != nil {
			t.Fatalf("Up: %v", err)
		}
		for i := range 2 {
			if err := b.Down(t.Context(), "conf-b", nop); err != nil {
				t.Fatalf("Down #%d: %v", i+1, err)
			}
		}
		s, err := b.Status(t.Context(), "conf-b")
		if err != nil || s.State != backend.Absent {
			t.Fatalf("Status after Down = %+v, %v; want Absent", s, err)
		}
	})

	t.Run("StatusOfAnUnknownUserIsAbsent", func(t *testing.T) {
		s, err := newBackend(t).Status(t.Context(), "conf-nobody")
		if err != nil || s.State != backend.Absent {
			t.Fatalf("Status = %+v, %v; want Absent and no error", s, err)
		}
	})

	t.Run("ListFindsTheServer", func(t *testing.T) {
		b := newBackend(t)
		t.Cleanup(func() { b.Down(context.Background(), "conf-c", nop) })
		if _, err := b.Up(t.Context(), spec("conf-c"), nop); err != nil {
			t.Fatalf("Up: %v", err)
		}
		list, err := b.List(t.Context())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var found bool
		for _, s := range list {
			found = found || (s.User == "conf-c" && s.State == backend.Running)
		}
		if !found {
			t.Fatalf("List = %+v, want conf-c running", list)
		}
	})

	t.Run("CancelledContextIsHonoured", func(t *testing.T) {
		b := newBackend(t)
		t.Cleanup(func() { b.Down(context.Background(), "conf-d", nop) })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := b.Up(ctx, spec("conf-d"), nop)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Up with a cancelled context = %v, want context.Canceled", err)
		}
		if s, err := b.Status(t.Context(), "conf-d"); err != nil || s.State == backend.Running {
			t.Fatalf("after a cancelled Up, Status = %+v, %v; want nothing running", s, err)
		}
	})
}

// BuildAgent builds the agent binary backends start or inject,
// cmd/spinbook-agent, into a temporary directory, once per test binary.
func BuildAgent(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		dir, err := os.MkdirTemp("", "spinbook-bin-")
		if err != nil {
			built.err = err
			return
		}
		// The local backend run as root starts agents as other OS
		// users, who must be able to run the binary.
		os.Chmod(dir, 0o755)
		built.path = filepath.Join(dir, "spinbook-agent")
		cmd := exec.Command("go", "build", "-o", built.path, "./cmd/spinbook-agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

var built struct {
	once sync.Once
	path string
	err  error
}
