//go:build !linux

package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// errNotLinux: the aws task, the one place a spec arrives in the
// environment, runs Linux.
var errNotLinux = errors.New("agent spec: --spec-env, --spec-fd and --spec-stdin need Linux")

// ExecWithSpecFD needs Linux (memfd, /proc/self/exe).
func ExecWithSpecFD(string, SpecEnvArgs) error { return errNotLinux }

// AgentSpecFromFD needs Linux.
func AgentSpecFromFD(int) (AgentSpec, error) { return AgentSpec{}, errNotLinux }

// AgentSpecFromStdin needs Linux (the docker backend's containers run it).
func AgentSpecFromStdin(context.Context, io.Reader, time.Duration) (AgentSpec, error) {
	return AgentSpec{}, errNotLinux
}
