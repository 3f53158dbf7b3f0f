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
	"time"

	"golang.org/x/sys/unix"
)

const (
	initStageVar = "SPINBOOK_TEST_INIT_SCRIPT"
	termAtStart  = "SPINBOOK_TEST_INIT_TERM_AT_START"
)

// TestRunInit runs RunInit as a container's PID 1 would be (here a child
// subreaper, which orphans are handed to as to PID 1) in a subprocess of
// this test binary, around a shell standing in for the agent: the
// agent's exit status is the init's, an orphan that exits is reaped
// (no zombie stays), and SIGTERM to the init reaches the agent, even
// one that comes as the agent starts.
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
		// the init sends itself SIGTERM the moment the agent has started,
		// before the agent has set its trap: the agent must get it, and
		// either trap it (want) or die of it (143), never the init alone
		atStart bool
	}{
		{"exit status", "exit 7", false, 7, false},
		{"killed by a signal", "kill -KILL $$", false, 128 + 9, false},
		// The orphan outlives its parent, ends, and must be reaped by
		// the init: until then it is a zombie, /proc/PID still exists.
		{"orphan reaped", `sh -c 'sleep 0.2 & echo $! > ` + pidFile + `'
			orphan=$(cat ` + pidFile + `)
			i=0
			while [ -e /proc/$orphan ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
			if [ -e /proc/$orphan ]; then grep State /proc/$orphan/status; exit 3; fi
			exit 0`, false, 0, false},
		{"SIGTERM forwarded", `trap 'exit 42' TERM
			echo ready
			while :; do sleep 0.05; done`, true, 42, false},
		{"SIGTERM as the agent starts", `trap 'exit 42' TERM
			while :; do sleep 0.05; done`, false, 42, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunInit$")
			cmd.Env = append(os.Environ(), initStageVar+"="+c.script)
			if c.atStart {
				cmd.Env = append(cmd.Env, termAtStart+"=1")
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			// Its own process group, killed whole if the case outlasts a
			// minute: a shell the init failed to stop holds stdout open,
			// and the reading below would wait for it forever.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			watchdog := time.AfterFunc(time.Minute, func() {
				t.Errorf("the init and its shell were still running after a minute; killed")
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			})
			defer watchdog.Stop()
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
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
			if c.atStart && code == 128+int(syscall.SIGTERM) {
				code = c.want // the agent got it before its trap: forwarded all the same
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
	code, err := RunInit(cmd, func() {
		started = true
		if os.Getenv(termAtStart) != "" {
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}
	})
	if err != nil || !started {
		fmt.Fprintln(os.Stderr, "RunInit:", err, "started:", started)
		os.Exit(101)
	}
	os.Exit(code)
}
