package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kubeSpinbook is spinbook on its kubernetes backend on the test cluster:
// the built binary with a config of its own, a password hash in it (as a
// team sets one), the same image as the hub's pods.
type kubeSpinbook struct {
	bin, dir, password string
	env                []string
	poll               time.Duration
}

// kubeSpinbookConfig is the spinbook.yaml of the kubernetes side.
func kubeSpinbookConfig(hash, image, kubeconfig, agentImage string) string {
	return fmt.Sprintf("backend: kubernetes\nimage: %s\naccess:\n  password_hash: %q\nkubernetes:\n  kubeconfig: %s\n  agent_image: %s\n  stop_grace: 20s\n",
		image, hash, kubeconfig, agentImage)
}

func newKubeSpinbook(ctx context.Context, bin, dir, image, kubeconfig, agentImage string, poll time.Duration) (*kubeSpinbook, error) {
	s := &kubeSpinbook{bin: bin, dir: dir, password: randomHex(16), poll: poll}
	cmd := exec.CommandContext(ctx, bin, "password")
	cmd.Stdin = strings.NewReader(s.password + "\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("spinbook password: %w", err)
	}
	config := filepath.Join(dir, "spinbook.yaml")
	if err := os.WriteFile(config, []byte(kubeSpinbookConfig(strings.TrimSpace(string(out)), image, kubeconfig, agentImage)), 0o600); err != nil {
		return nil, err
	}
	s.env = append(os.Environ(), "SPINBOOK_CONFIG="+config, "SPINBOOK_USER=", "KUBECONFIG=")
	return s, nil
}

// upTimeout is how long either side's server may take to answer: the
// hub's wait (pollOK in kubeHub.spawn) and spinbook's up alike.
const upTimeout = 5 * time.Minute

// user is the spinbook runner of one user: the local side's machinery
// (up, login, api) works unchanged on any backend.
func (s *kubeSpinbook) user(name string) *spinbook {
	return &spinbook{bin: s.bin, dir: s.dir, user: name, env: s.env, password: s.password, poll: s.poll, timeout: upTimeout}
}

// ls runs `spinbook ls --json` and returns how many servers it listed ready.
func (s *kubeSpinbook) ls(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "ls", "--json")
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("spinbook ls: %w", err)
	}
	return countReady(out)
}

// countReady counts the ready servers in `spinbook ls --json`.
func countReady(out []byte) (int, error) {
	var servers []struct {
		Ready bool `json:"ready"`
	}
	if err := json.Unmarshal(out, &servers); err != nil {
		return 0, fmt.Errorf("spinbook ls --json printed %.200q: %w", out, err)
	}
	n := 0
	for _, s := range servers {
		if s.Ready {
			n++
		}
	}
	return n, nil
}

// agentPIDs are the agents of the servers on this node: processes of the
// binary the init container copies into each pod.
func agentPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && isPodAgent(cmdline) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// isPodAgent: a /proc/PID/cmdline of the agent in a spinbook pod
// (/opt/spinbook/spinbook agent ...).
func isPodAgent(cmdline []byte) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) >= 2 && args[0] == "/opt/spinbook/spinbook" && args[1] == "agent"
}
