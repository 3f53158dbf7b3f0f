package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes this machine for the report.
func machine() []string {
	out := []string{"nproc " + strconv.Itoa(runtime.NumCPU())}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				out = append(out, "CPU "+strings.TrimSpace(v))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				out = append(out, "memory "+strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64)+" GiB")
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, "kernel Linux "+strings.TrimSpace(string(data)))
	}
	return out
}

// loadAverage returns the 1-minute load average, as a noise indicator.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

// parseLoad reads a load average as loadAverage returns it (0 if unknown).
func parseLoad(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// versions names what was measured.
func versions(ctx context.Context, spinbookBin string, stack Stack) []string {
	first := firstLine(ctx, stack.ProxyEnv)
	return []string{
		spinbookVersion(ctx, spinbookBin),
		"Jupyter (" + stack.Name + ") " + filepath.Base(stack.Jupyter[0]) + " " + first(stack.Jupyter[0], "--version"),
		"JupyterHub " + first(stack.Hub, "--version"),
		"configurable-http-proxy " + first(stack.Proxy, "--version"),
		"node " + first("node", "--version"),
		first("wrk", "-v"),
		runtime.Version(),
	}
}

// spinbookVersion names the spinbook measured: the commit, and whether
// the tree had changes.
func spinbookVersion(ctx context.Context, spinbookBin string) string {
	first := firstLine(ctx, nil)
	commit := first("git", "rev-parse", "--short", "HEAD")
	if st := first("git", "status", "--porcelain", "--untracked-files=no"); st != "" && st != "?" {
		commit += " (with uncommitted changes)"
	}
	return "spinbook " + commit + " (" + first(spinbookBin, "version") + ")"
}

// firstLine returns a function that runs a command (with env added) and
// returns the first line it printed, or "?".
func firstLine(ctx context.Context, env []string) func(name string, args ...string) string {
	return func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput() // wrk -v exits 1 after printing its version
		if err != nil && len(out) == 0 {
			return "?"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return strings.TrimSpace(line)
	}
}
