package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals an init passes on to the process it runs:
// ECS and Docker stop a container with SIGTERM to its PID 1.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// RunInit is PID 1 of a container whose entrypoint is the agent, in place
// of docker-init (whose environment would keep the agent's spec): it
// starts cmd (the agent proper), forwards it the signals above, and reaps
// every child the kernel hands it, cmd and the orphans of Jupyter and
// kernels alike, until cmd exits. It returns cmd's exit status (128+N
// for signal N), as docker-init does.
//
// Nothing else in this process starts children, so waiting for any
// child (wait4(-1)) steals no exit status from an exec.Cmd.Wait: cmd's
// own is taken here, and cmd.Wait must not be called.
//
// started runs once cmd is started: the init closes there what only cmd
// should hold (the spec's descriptor).
func RunInit(cmd *exec.Cmd, started func()) (int, error) {
	// Caught before the agent starts: a signal between its start and the
	// Notify would otherwise be lost (PID 1 ignores what it has no handler
	// for), and `docker stop` would wait out its grace and kill the agent
	// before it saved. One caught meanwhile waits in sigs for the agent.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	err := cmd.Start()
	if started != nil {
		started()
	}
	if err != nil {
		return 0, fmt.Errorf("init: start the agent: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s) // an agent already gone needs none
			case <-done:
				return
			}
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("init: wait for the agent: %w", err)
		}
		if pid != cmd.Process.Pid {
			continue // an orphan, reaped
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}
