package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/secret"
)

// TestAWSSpecInNoProcess runs the agent as the aws task does: the task's
// command (aws.AgentCommand, this build of the binary for the mounted
// one) with the spec in aws.SpecEnv, as PID 1 of a PID namespace of its
// own, as in the container without docker-init. The spec holds canary
// secrets. Once Jupyter runs a kernel, no process of the namespace, read
// as root (more than a kernel may), has a canary in its environment block
// (/proc/PID/environ) or command line, and no file under the agent's
// workspace, state dir, home or temporary dir holds one.
func TestAWSSpecInNoProcess(t *testing.T) {
	needJupyter(t)
	if os.Geteuid() != 0 {
		t.Skip("a PID namespace needs root (CI runs as root)")
	}
	canary := "canary-" + newID()
	hash, err := secret.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	home, tmp, state := t.TempDir(), t.TempDir(), t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	spec := backend.AgentSpec{
		User: "alice", Workspace: work, StateDir: state,
		Listen: "127.0.0.1", FrontPort: ports[0], HealthPort: ports[1],
		PasswordHash: hash, ControlToken: "control-" + canary,
		Secrets: []string{"secret-" + canary},
	}
	data, _ := json.Marshal(spec)
	command := aws.AgentCommand()
	cmd := exec.Command(bin, command[1:]...)
	cmd.Env = append(os.Environ(), aws.SpecEnv+"="+string(data), "HOME="+home, "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var logs proctest.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitFor(t, "the agent's /readyz", 90*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	b := newBrowser(t, fmt.Sprintf("http://127.0.0.1:%d", ports[0]), "")
	if resp := b.login(t, "correct horse"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	startKernel(t, b)

	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var procs []string
	waitFor(t, "a kernel in the task's PID namespace", 60*time.Second, func() bool {
		procs = namespaceProcesses(t, ns)
		return slices.ContainsFunc(procs, func(p string) bool { return strings.Contains(p, "ipykernel") })
	})
	if len(procs) < 4 { // init, agent, Jupyter, kernel
		t.Errorf("the namespace holds only %d processes: %q", len(procs), procs)
	}
	for _, pid := range namespacePIDs(t, ns) {
		for _, f := range []string{"environ", "cmdline"} {
			data, err := os.ReadFile(filepath.Join("/proc", pid, f))
			if err != nil {
				continue // gone since
			}
			if bytes.Contains(data, []byte(canary)) {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
				t.Errorf("/proc/%s/%s holds the spec's canary (process %q)", pid, f, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	}
	for _, dir := range []string{work, state, home, tmp} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte(canary)) {
				t.Errorf("the file %s holds the spec's canary", path)
			}
			return nil
		})
	}
	if t.Failed() {
		t.Logf("the agent's output:\n%s", logs.String())
	}
}

// TestDockerSpecInNoProcess: on docker the spec goes through an exec's
// stdin into a tmpfs file the agent deletes, so once a kernel runs, no
// process of the container (read as root from the host, and as the
// kernel's user from the kernel) has the spec, its password hash or its
// control token key in its environment block or command line, and no file
// in the container's /run/spinbook holds the spec.
func TestDockerSpecInNoProcess(t *testing.T) {
	w, cli := newDockerWorld(t, "", "dk-spec")
	srv := w.up("dk-spec")
	run := kernelSession(t, srv)
	markers := []string{"$argon2id$", `"control_token"`, `"password_hash"`}
	fromKernel := run(`import os
marks = [m.encode() for m in ` + pyList(markers) + `]
hits = []
for p in os.listdir('/proc'):
    if p.isdigit():
        for f in ('environ', 'cmdline'):
            try:
                d = open('/proc/%s/%s' % (p, f), 'rb').read()
            except OSError:
                continue
            if any(m in d for m in marks):
                hits.append(p + '/' + f)
for root, dirs, files in os.walk('/run/spinbook'):
    for n in files:
        try:
            d = open(os.path.join(root, n), 'rb').read()
        except OSError:
            continue
        if any(m in d for m in marks):
            hits.append(os.path.join(root, n))
print('hits', hits)`)
	if strings.TrimSpace(fromKernel) != "hits []" {
		t.Errorf("the kernel finds the spec: %s", fromKernel)
	}
	c, err := cli.ContainerInspect(t.Context(), "spinbook-dk-spec")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.State.Pid))
	if err != nil {
		t.Fatal(err)
	}
	procs := namespaceProcesses(t, ns)
	if !slices.ContainsFunc(procs, func(p string) bool { return strings.Contains(p, "ipykernel") }) {
		t.Fatalf("no kernel among the container's processes: %q", procs)
	}
	for _, pid := range namespacePIDs(t, ns) {
		for _, f := range []string{"environ", "cmdline"} {
			data, err := os.ReadFile(filepath.Join("/proc", pid, f))
			if err != nil {
				continue
			}
			for _, m := range markers {
				if bytes.Contains(data, []byte(m)) {
					t.Errorf("/proc/%s/%s holds %s", pid, f, m)
				}
			}
		}
	}
}

// pyList is ss as a Python list of str.
func pyList(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}

// namespacePIDs are the processes whose PID namespace is ns (as
// /proc/PID/ns/pid reads).
func namespacePIDs(t *testing.T, ns string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil && link == ns {
			out = append(out, e.Name())
		}
	}
	return out
}

// namespaceProcesses are the command lines of namespacePIDs.
func namespaceProcesses(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, pid := range namespacePIDs(t, ns) {
		if data, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline")); err == nil {
			out = append(out, pid+": "+string(bytes.ReplaceAll(data, []byte{0}, []byte{' '})))
		}
	}
	return out
}
