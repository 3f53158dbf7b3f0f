package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spinbook/spinbook/internal/proc"
	"github.com/spinbook/spinbook/internal/secret"
)

// jupyter is one running Jupyter process.
type jupyter struct {
	cmd     *exec.Cmd
	start   uint64 // process start time, see package proc
	network string // "unix" or "tcp"
	address string // socket path or host:port
	token   string
	done    chan struct{} // closed when the process has exited
	err     error         // exit error, valid after done
}

// startJupyter starts Jupyter on a private Unix socket (or a loopback port
// when the version has no socket option) with token, serving workspace.
// Its output goes to logw; it runs at a lower CPU priority than the agent
// and gets SIGTERM if the agent dies.
func startJupyter(in install, workspace, runtimeDir, token string, extraEnv []string, logw io.Writer) (*jupyter, error) {
	j := &jupyter{token: token, done: make(chan struct{})}
	args := append([]string{}, in.Command[1:]...)
	args = append(args,
		"--no-browser",
		in.rootFlag()+workspace,
		"--"+in.App+".allow_remote_access=True", // only the agent can reach it; the agent checks Host and Origin
		"--"+in.App+".open_browser=False",
	)
	if in.Sock {
		j.network, j.address = "unix", filepath.Join(runtimeDir, "jupyter.sock")
		args = append(args, "--"+in.App+".sock="+j.address, "--"+in.App+".sock_mode=0600")
	} else {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		j.network, j.address = "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args = append(args, "--"+in.App+".ip=127.0.0.1", "--"+in.App+".port="+strconv.Itoa(port),
			"--"+in.App+".port_retries=0")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	cmd := exec.Command(in.Command[0], args...)
	cmd.Dir = workspace
	cmd.Env = append(jupyterEnv(os.Environ(), token, runtimeDir), extraEnv...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = jupyterProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", in.Command[0], err)
	}
	j.cmd = cmd
	j.start, _ = proc.StartTime(cmd.Process.Pid)
	go func() {
		j.err = cmd.Wait()
		close(j.done)
	}()
	return j, nil
}

// jupyterEnv is the agent's environment for Jupyter and its kernels: the
// token travels in JUPYTER_TOKEN (never argv), and spinbook's own variables
// stay with the agent.
func jupyterEnv(env []string, token, runtimeDir string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == "JUPYTER_TOKEN" || name == "JUPYTER_RUNTIME_DIR" || strings.HasPrefix(name, "SPINBOOK_AGENT") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "JUPYTER_TOKEN="+token, "JUPYTER_RUNTIME_DIR="+filepath.Join(runtimeDir, "runtime"))
}

// jupyterNice is the CPU priority Jupyter and its kernels run at, below
// the agent's, so a busy kernel never starves the health answers.
const jupyterNice = 10

// lowerPriority renices every thread of Jupyter (and of anything it already
// started) to jupyterNice. The agent calls it once Jupyter first answers:
// Jupyter starts at full speed on a busy host, and the kernels it starts
// afterwards inherit the lower priority from the thread that forks them.
func (j *jupyter) lowerPriority() error {
	pids := append([]int{j.cmd.Process.Pid}, proc.Descendants(j.cmd.Process.Pid)...)
	var firstErr error
	for _, pid := range pids {
		tids, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			continue // gone meanwhile
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, jupyterNice); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("lower Jupyter's priority: %w", err)
			}
		}
	}
	return firstErr
}

// transport reaches Jupyter over its socket; unix sockets have no Nagle
// delay, which keeps kernel round trips short.
func (j *jupyter) transport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	network, address := j.network, j.address
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, address)
		},
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// stop asks Jupyter to shut down (it stops its kernels on SIGTERM), waits
// up to grace, then kills whatever of its tree is left.
func (j *jupyter) stop(grace time.Duration) {
	pid := j.cmd.Process.Pid
	tree := proc.Descendants(pid) // kernels run in their own sessions; remember them now
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-j.done:
	case <-time.After(grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
		<-j.done
	}
	for _, p := range append(tree, proc.Descendants(pid)...) {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// freeLoopbackPort asks the kernel for an unused loopback port.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a port for Jupyter: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lineWriter writes each whole line of its input to w with prefix, with
// secrets redacted, so that Jupyter's output lands in the server log line
// by line and without the token.
type lineWriter struct {
	w      io.Writer
	prefix string
	redact *secret.Redactor
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a very long line without newline: flush it
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineWriter) emit(line []byte) {
	io.WriteString(l.w, l.prefix+scrubHeaderDump(l.redact.Redact(string(line)))+"\n")
}
