package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// ErrNoJupyter means no Jupyter server command could be found.
var ErrNoJupyter = errors.New("no Jupyter found: install one (Debian: apt-get install jupyter-notebook; " +
	"elsewhere: pip install jupyterlab) or set jupyter.command in the config")

// candidates are tried in order when no jupyter.command is configured: the
// per-app scripts rather than `jupyter lab` save the dispatcher's start-up.
var candidates = [][]string{{"jupyter-lab"}, {"jupyter-notebook"}, {"jupyter-server"}}

// install is what the agent knows about the Jupyter it starts.
type install struct {
	Command []string `json:"command"` // argv prefix, e.g. [/usr/bin/jupyter-notebook]
	App     string   `json:"app"`     // traitlets class for flags: NotebookApp or ServerApp
	Sock    bool     `json:"sock"`    // supports --<App>.sock
	// StaticDir is where notebook 6 serves /static/ from, for the gateway
	// to serve those files itself; "" when unknown (other Jupyters).
	StaticDir string `json:"static_dir,omitempty"`
}

// rootFlag is the flag that names the directory Jupyter serves.
func (in install) rootFlag() string {
	if in.App == "NotebookApp" {
		return "--NotebookApp.notebook_dir="
	}
	return "--ServerApp.root_dir="
}

// findJupyter resolves the Jupyter command to run: configured, else the
// first candidate on PATH.
func findJupyter(configured []string) ([]string, error) {
	if len(configured) > 0 {
		path, err := exec.LookPath(configured[0])
		if err != nil {
			return nil, fmt.Errorf("jupyter.command %q: %w; check the path or install Jupyter", strings.Join(configured, " "), err)
		}
		return append([]string{path}, configured[1:]...), nil
	}
	for _, c := range candidates {
		if path, err := exec.LookPath(c[0]); err == nil {
			return append([]string{path}, c[1:]...), nil
		}
	}
	return nil, ErrNoJupyter
}

// probe learns which options the Jupyter command takes from its
// --help-all, which costs a Python start-up (~0.7 s), so the answer is
// cached by the executable's identity when cacheDir is set.
func probe(ctx context.Context, command []string, cacheDir string) (install, error) {
	key := probeKey(command)
	cacheFile := ""
	if cacheDir != "" && key != "" {
		cacheFile = filepath.Join(cacheDir, "jupyter-"+key+".json")
		if data, err := os.ReadFile(cacheFile); err == nil {
			var in install
			if json.Unmarshal(data, &in) == nil && in.App != "" {
				in.Command = command
				return in, nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, command[0], append(command[1:], "--help-all")...)
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return install{}, fmt.Errorf("run %s --help-all: %w", strings.Join(command, " "), err)
	}
	in := install{Command: command}
	switch {
	case bytes.Contains(out, []byte("--ServerApp.sock=")):
		in.App, in.Sock = "ServerApp", true
	case bytes.Contains(out, []byte("--NotebookApp.sock=")):
		in.App, in.Sock = "NotebookApp", true
	case bytes.Contains(out, []byte("--ServerApp.")):
		in.App = "ServerApp"
	case bytes.Contains(out, []byte("--NotebookApp.")):
		in.App = "NotebookApp"
	default:
		return install{}, fmt.Errorf("%s does not look like a Jupyter server (its --help-all names neither ServerApp nor NotebookApp options); set jupyter.command to jupyter lab, notebook or server", strings.Join(command, " "))
	}
	if in.App == "NotebookApp" {
		in.StaticDir = notebookStaticDir(ctx, command[0])
	}
	if cacheFile != "" {
		if data, err := json.Marshal(in); err == nil {
			os.MkdirAll(cacheDir, 0o700)
			os.WriteFile(cacheFile, data, 0o600)
		}
	}
	return in, nil
}

// notebookStaticDir asks the Python that runs the notebook script (its
// #! line) where notebook 6 keeps its static files; "" if that cannot be
// learned, and the gateway then leaves /static/ to Jupyter.
func notebookStaticDir(ctx context.Context, script string) string {
	f, err := os.Open(script)
	if err != nil {
		return ""
	}
	line := make([]byte, 256)
	n, _ := f.Read(line)
	f.Close()
	first, _, _ := bytes.Cut(line[:n], []byte("\n"))
	interp, ok := bytes.CutPrefix(first, []byte("#!"))
	if !ok {
		return ""
	}
	argv := strings.Fields(string(interp)) // e.g. /usr/bin/python3, or /usr/bin/env python3
	if len(argv) == 0 {
		return ""
	}
	argv = append(argv, "-c", "import notebook, sys; sys.stdout.write(notebook.DEFAULT_STATIC_FILES_PATH)")
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return ""
	}
	dir := string(out)
	if fi, err := os.Stat(filepath.Join(dir, "base")); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}

// probeKey names a command by its argv and its executable's size and
// modification time, so an upgrade invalidates the cached probe.
func probeKey(command []string) string {
	fi, err := os.Stat(command[0])
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%q %d %d", command, fi.Size(), fi.ModTime().UnixNano())
	return hex.EncodeToString(h.Sum(nil))[:16]
}

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
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM, // an agent killed with SIGKILL still stops Jupyter and its kernels
	}
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
