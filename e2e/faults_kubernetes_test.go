package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
)

// newK8sFaultEnv: servers are pods on the test cluster; the remote
// listens on an address of this machine, which pods reach through the
// cluster's bridge, and adds the token itself. The cluster has a few pre-made volumes only, so every row uses
// one user (and so one claim), and the rows that need a world or a disk of
// their own are not run here (faultEnv.omit says why).
func newK8sFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	w, cl := newK8sWorld(t, "")
	host := hostAddress(t)
	e := &faultEnv{name: "kubernetes", w: w, backend: &k8sFaults{cl: cl}}
	e.remote = newFaultRemote(t, host, true)
	appendConfig(t, w, repoConfig(e.remote))
	e.user = func(int) string { return "ft-k8" }
	e.omit = map[string]string{
		"idle stop with the remote down":  "a second world needs a second claim; the agent's idle path is the same on every backend",
		"full workspace disk during save": "the claim's volume is a hostPath chosen at bind time; the disk-full path is the agent's, as on docker",
	}
	return e
}

type k8sFaults struct{ cl *k8stest.Cluster }

func (k *k8sFaults) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.cl.Kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// workspace is the hostPath of the volume bound to user's claim.
func (k *k8sFaults) workspace(t *testing.T, w *world, user string) string {
	t.Helper()
	pv := k.kubectl(t, "get", "pvc", "spinbook-"+user+"-work", "-o", "jsonpath={.spec.volumeName}")
	return k.kubectl(t, "get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
}

func (k *k8sFaults) fixOwner(t *testing.T, dir string) { (&dockerFaults{}).fixOwner(t, dir) }

func (k *k8sFaults) bundleDirs(t *testing.T, w *world, user string) []string {
	return []string{k.workspace(t, w, user) + "/.git/spinbook-bundles"}
}

// podPIDs are the host pids of the processes in user's pod (cgroupfs:
// .../pod<uid>/...), and which of them is the agent.
func (k *k8sFaults) podPIDs(t *testing.T, user string) (all []int, agent int) {
	t.Helper()
	uid := k.kubectl(t, "get", "pod", "spinbook-"+user, "-o", "jsonpath={.metadata.uid}")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil || !bytes.Contains(cg, []byte("pod"+uid)) {
			continue
		}
		all = append(all, pid)
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) == 2 && args[1] == "agent" {
			agent = pid
		}
	}
	return all, agent
}

func (k *k8sFaults) agentPID(t *testing.T, w *world, user string) int {
	t.Helper()
	all, agent := k.podPIDs(t, user)
	if agent == 0 {
		t.Fatalf("no agent among the %d processes of %s's pod", len(all), user)
	}
	return agent
}

func (k *k8sFaults) reboot(t *testing.T, w *world, user string) {
	t.Helper()
	all, _ := k.podPIDs(t, user)
	if len(all) == 0 {
		t.Fatalf("no process of %s's pod found", user)
	}
	for _, pid := range all {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (k *k8sFaults) smallDisk(t *testing.T, w *world, user string, size int64) {
	t.Fatal(fmt.Sprintf("kubernetes: no small disk for %s (the row is omitted)", user))
}

// hostAddress is a non-loopback IPv4 address of this machine.
func hostAddress(t *testing.T) string {
	t.Helper()
	ifcs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifcs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address for the pods to reach the test's git server on")
	return ""
}
