package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// bareJupyter is a stock `jupyter notebook` on a loopback port with a
// token, nothing in front.
type bareJupyter struct {
	stack Stack
	dir   string
	port  int
	token string
	poll  time.Duration

	cmd  *exec.Cmd
	done chan struct{}
}

func newBareJupyter(stack Stack, dir string, port int, poll time.Duration) *bareJupyter {
	return &bareJupyter{stack: stack, dir: dir, port: port, token: randomHex(24), poll: poll}
}

func (b *bareJupyter) base() string { return "http://127.0.0.1:" + strconv.Itoa(b.port) + "/" }

// start starts Jupyter and waits until /api/status answers.
func (b *bareJupyter) start(ctx context.Context) (time.Duration, error) {
	work := filepath.Join(b.dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	t0 := time.Now()
	args := append(b.stack.Jupyter[1:len(b.stack.Jupyter):len(b.stack.Jupyter)], "--no-browser", "--allow-root",
		"--ip=127.0.0.1", "--port="+strconv.Itoa(b.port), "--"+b.stack.App+".port_retries=0",
		"--notebook-dir="+work)
	cmd := exec.Command(b.stack.Jupyter[0], args...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "JUPYTER_TOKEN="+b.token, "JUPYTER_RUNTIME_DIR="+filepath.Join(b.dir, "runtime"))
	done, log, err := startLogged(cmd, b.dir, "jupyter.log")
	if err != nil {
		return 0, err
	}
	b.cmd, b.done = cmd, done
	if err := pollOK(ctx, newClient(true, 5*time.Second), b.base()+"api/status", b.api().header, b.poll, time.Minute); err != nil {
		b.stop()
		return 0, fmt.Errorf("bare jupyter (log: %s): %w", log, err)
	}
	return time.Since(t0), nil
}

// stop sends SIGTERM and waits for Jupyter to exit (killing its process
// group after 30 s).
func (b *bareJupyter) stop() (time.Duration, error) {
	if b.cmd == nil {
		return 0, nil
	}
	t0 := time.Now()
	pid := b.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	var err error
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("jupyter did not exit within 30s of SIGTERM")
		syscall.Kill(-pid, syscall.SIGKILL)
		<-b.done
	}
	d := time.Since(t0)
	syscall.Kill(-pid, syscall.SIGKILL) // kernels left behind, if any
	b.cmd = nil
	return d, err
}

func (b *bareJupyter) pid() int {
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// api reaches Jupyter directly with its token.
func (b *bareJupyter) api() jupyterAPI {
	return jupyterAPI{
		base:   b.base(),
		header: http.Header{"Authorization": {"token " + b.token}},
		client: newClient(true, 30*time.Second),
	}
}
