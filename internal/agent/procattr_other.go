//go:build !linux

package agent

import "syscall"

// jupyterProcAttr starts Jupyter in a process group of its own. Servers
// run on Linux; this lets the command line, which shares the agent's
// types, build for macOS.
func jupyterProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
