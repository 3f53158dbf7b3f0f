package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExecWithSpecFD hands over the spec that the environment variable name
// holds (aws: ECS injects it from Secrets Manager) without leaving it in
// any process's environment, and does not return unless it fails.
//
// Unsetting the variable is not enough: /proc/PID/environ reads the
// environment block the process was started with, in its memory, and
// os.Unsetenv does not touch that. So the spec goes into an anonymous,
// sealed memory file (memfd: no path, gone once its last descriptor
// closes), and this process replaces itself (execve, same pid) with
// /proc/self/exe and args(fd), in the environment less name: the new
// image's environment block is the clean one. AgentSpecFromFD then reads
// the spec and closes the descriptor before anything else starts.
func ExecWithSpecFD(name string, args SpecEnvArgs) error {
	data, ok := os.LookupEnv(name)
	if !ok || data == "" {
		return fmt.Errorf("agent spec: the environment variable %s is not set", name)
	}
	fd, err := unix.MemfdCreate("spinbook-agent-spec", unix.MFD_ALLOW_SEALING) // no CLOEXEC: it survives the exec
	if err != nil {
		return fmt.Errorf("agent spec: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "spinbook-agent-spec")
	if _, err := io.WriteString(f, data); err != nil {
		f.Close()
		return fmt.Errorf("agent spec: write memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return fmt.Errorf("agent spec: seal memfd: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("agent spec: memfd: %w", err)
	}
	// os.NewFile set it blocking and kept CLOEXEC off; make sure.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		f.Close()
		return fmt.Errorf("agent spec: memfd: %w", err)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	argv := append([]string{"spinbook"}, args(fd)...)
	err = syscall.Exec("/proc/self/exe", argv, env)
	f.Close()
	return fmt.Errorf("agent spec: re-execute the agent without %s: %w", name, err)
}

// AgentSpecFromFD reads the spec from the descriptor fd (ExecWithSpecFD's
// memfd, or one a parent passed on), closes it, and makes the process
// non-dumpable, so that its memory, where the spec now lives, and its
// descriptors are root's only.
func AgentSpecFromFD(fd int) (AgentSpec, error) {
	source := fmt.Sprintf("descriptor %d", fd)
	if err := hideEnviron(); err != nil {
		return AgentSpec{}, fmt.Errorf("agent spec: %w", err)
	}
	f := os.NewFile(uintptr(fd), "spinbook-agent-spec")
	if f == nil {
		return AgentSpec{}, fmt.Errorf("agent spec: no %s", source)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return AgentSpec{}, fmt.Errorf("agent spec: read %s: %w", source, err)
	}
	return decodeSpec(data, source)
}

// AgentSpecFromStdin reads the spec a container backend writes to the
// agent's stdin (docker: through the Engine's attach, before anything
// else runs in the container) until its end, waiting at most wait, and
// makes the process non-dumpable first, as AgentSpecFromFD does: what it
// holds never reaches a file.
func AgentSpecFromStdin(ctx context.Context, stdin io.Reader, wait time.Duration) (AgentSpec, error) {
	if err := hideEnviron(); err != nil {
		return AgentSpec{}, fmt.Errorf("agent spec: %w", err)
	}
	type read struct {
		data []byte
		err  error
	}
	got := make(chan read, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(stdin, maxStdinSpec+1))
		got <- read{data, err}
	}()
	select {
	case r := <-got:
		switch {
		case r.err != nil:
			return AgentSpec{}, fmt.Errorf("agent spec: read stdin: %w", r.err)
		case len(r.data) == 0:
			return AgentSpec{}, errors.New("agent spec: stdin closed with no spec (the spinbook command that started this server stopped before handing it over; run up again)")
		case len(r.data) > maxStdinSpec:
			return AgentSpec{}, fmt.Errorf("agent spec: more than %d bytes on stdin", maxStdinSpec)
		}
		return decodeSpec(r.data, "stdin")
	case <-time.After(wait):
		return AgentSpec{}, fmt.Errorf("agent spec: none arrived on stdin within %s (run up again)", wait)
	case <-ctx.Done():
		return AgentSpec{}, fmt.Errorf("agent spec: %w", context.Cause(ctx))
	}
}

// maxStdinSpec bounds a spec read from stdin.
const maxStdinSpec = 4 << 20

// hideEnviron makes the process non-dumpable: /proc/PID/mem, /proc/PID/fd
// and /proc/PID/environ become root's, out of reach of the kernels that
// run as the same user.
func hideEnviron() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the agent non-dumpable: %w", err)
	}
	return nil
}
