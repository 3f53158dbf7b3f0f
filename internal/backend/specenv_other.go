//go:build !linux

package backend

import "errors"

// errNotLinux: the aws task, the one place a spec arrives in the
// environment, runs Linux.
var errNotLinux = errors.New("agent spec: --spec-env and --spec-fd need Linux")

// ExecWithSpecFD needs Linux (memfd, /proc/self/exe).
func ExecWithSpecFD(string, SpecEnvArgs) error { return errNotLinux }

// AgentSpecFromFD needs Linux.
func AgentSpecFromFD(int) (AgentSpec, error) { return AgentSpec{}, errNotLinux }
