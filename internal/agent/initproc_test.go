package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const initStageVar = "SPINBOOK_TEST_INIT_SCRIPT"

// TestRunInit runs RunInit as a container's PID 1 would be (here a child
// subreaper, which orphans are handed to as to PID 1) in a subprocess of
// this test binary, around a shell standing in for the agent: the
// agent's exit status is the init's, an orphan that exits is reaped
// (no zombie stays), and SIGTERM to the init reaches the agent.
func TestRunInit(t *testing.T) {
	if script, ok := os.LookupEnv(initStageVar); ok {
		initStage(script)
		return
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "orphan")
	cases := []struct {
		name   string
		script string
		term   bool // send SIGTERM to the init once the agent says ready
		want   int
	}{
		{"exit status", "exit 7", false, 7},
		{"killed by a signal", "kill -KILL $$", false, 128 + 9},
		// The orphan outlives its parent, ends, and must be reaped by
		// the init: until then it is a zombie, /proc/PID still exists.
		{"orphan reaped", `sh -c 'sleep 0.2 & echo $! > ` + pidFile + `'
			orphan=$(cat ` + pidFile + `)
			i=0
			while [ -e /proc/$orphan ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
			if [ -e /proc/$orphan ]; then grep State /proc/$orphan/status; exit 3; fi
			exit 0`, false, 0},
		{"SIGTERM forwarded", `trap 'exit 42' TERM
			echo ready
			while :; do sleep 0.05; done`, true, 42},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunInit$")
			cmd.Env = append(os.Environ(), initStageVar+"="+c.script)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			lines := bufio.NewScanner(stdout)
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
				if c.term && lines.Text() == "ready" {
					cmd.Process.Signal(syscall.SIGTERM)
				}
			}
			err = cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.want {
				t.Errorf("the init exited %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.want, out.String(), stderr.String())
			}
		})
	}
}

// initStage is the subprocess: a subreaper running RunInit around sh.
func initStage(script string) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		os.Exit(100)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	started := false
	code, err := RunInit(cmd, func() { started = true })
	if err != nil || !started {
		fmt.Fprintln(os.Stderr, "RunInit:", err, "started:", started)
		os.Exit(101)
	}
	os.Exit(code)
}
