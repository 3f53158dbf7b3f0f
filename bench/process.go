package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// startLogged starts cmd in a process group of its own (sent SIGTERM when
// this process dies), its output appended to dir/logName, and returns a
// channel closed once it has exited, and the log's path.
func startLogged(cmd *exec.Cmd, dir, logName string) (done chan struct{}, logPath string, err error) {
	logf, err := os.OpenFile(filepath.Join(dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done = make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return done, logf.Name(), nil
}
