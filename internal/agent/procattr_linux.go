package agent

import "syscall"

// jupyterProcAttr starts Jupyter in a process group of its own, sent
// SIGTERM when the agent dies: an agent killed with SIGKILL still stops
// Jupyter and its kernels.
func jupyterProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
