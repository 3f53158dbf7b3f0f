package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spinbook/spinbook/internal/proc"
)

// The processor time each side uses while its users start at once: on two
// cores ten Jupyters starting together are bound by the processor, so the
// wall time follows the work each side does, and work from outside the
// run (another engineer's tests) shows as the machine's other time.

// kubepodsCPU is the cluster's pods' processor time so far: the kubelet's
// kubepods cgroup (cgroupfs driver, cgroup v1), which charges every pod's
// time to it as it is spent, so pods that ended still count.
const kubepodsCPU = "/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage"

// cpuSample is the counters a phase's processor time is read from.
type cpuSample struct {
	pods     time.Duration // the kubepods cgroup
	children time.Duration // this process's ended children (spinbook's commands)
	procs    time.Duration // the processes watched (the hub, CHP)
	machine  time.Duration // every processor's busy time (/proc/stat)
}

// sideCPU is a phase's processor time: the side's own and the machine's.
type sideCPU struct {
	side, machine time.Duration
	cluster       time.Duration            // the cluster's own processes
	components    map[string]time.Duration // each of them
}

func sampleCPU(pids ...int) cpuSample {
	var s cpuSample
	if data, err := os.ReadFile(kubepodsCPU); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		s.pods = time.Duration(n)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		s.children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range pids {
		s.procs += procCPU(pid)
	}
	s.machine = machineBusy()
	return s
}

// since is the processor time from s to now, of the side whose host
// processes are pids (their ended children, spinbook's commands, count
// too) and of the machine.
func (s cpuSample) since(pids ...int) sideCPU {
	now := sampleCPU(pids...)
	return sideCPU{
		side:    now.pods - s.pods + now.children - s.children + now.procs - s.procs,
		machine: now.machine - s.machine,
	}
}

// clockTick is USER_HZ, the unit of /proc's processor times.
const clockTick = 100

// procCPU is a process's user and system time (0 if it is gone).
func procCPU(pid int) time.Duration {
	own, _, _ := procTimes(pid)
	return own
}

// procTimes reads /proc/PID/stat: the process's own user and system time,
// its ended children's (those it waited for), and its command name.
func procTimes(pid int) (own, children time.Duration, comm string) {
	if pid == 0 {
		return 0, 0, ""
	}
	comm, f, err := proc.Stat(pid)
	if err != nil || len(f) < 15 {
		return 0, 0, comm
	}
	n := func(k int) time.Duration {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return time.Duration(v) * time.Second / clockTick
	}
	return n(11) + n(12), n(13) + n(14), comm
}

// clusterCPU is the processor time so far of each of the cluster's own
// processes (components: name to pid), their ended children included
// (kube-router's and kube-proxy's iptables, containerd's shims); the
// running shims count with containerd.
func clusterCPU(components map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range components {
		own, children, _ := procTimes(pid)
		out[name] = own + children
		if name == "containerd" {
			for _, p := range proc.Descendants(pid) {
				if o, _, comm := procTimes(p); strings.HasPrefix(comm, "containerd-shim") {
					out[name] += o
				}
			}
		}
	}
	return out
}

// clusterSince is what each component used since start, and all of them.
func clusterSince(components map[string]int, start map[string]time.Duration) (map[string]time.Duration, time.Duration) {
	out := map[string]time.Duration{}
	var total time.Duration
	for name, t := range clusterCPU(components) {
		out[name] = max(0, t-start[name])
		total += out[name]
	}
	return out, total
}

// topCPU names the n components that used the most, with their time.
func topCPU(used map[string]time.Duration, n int) string {
	names := make([]string, 0, len(used))
	for name := range used {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return used[names[i]] > used[names[j]] })
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, name+" "+formatCPU(used[name]))
	}
	return strings.Join(parts, ", ")
}

// machineBusy is every processor's time not idle or waiting, from /proc/stat.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseBusy(string(data))
}

// parseBusy reads /proc/stat's first line: user nice system idle iowait
// irq softirq steal ...; busy is all but idle and iowait.
func parseBusy(stat string) time.Duration {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTick
}

// formatCPU prints processor time in seconds.
func formatCPU(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
