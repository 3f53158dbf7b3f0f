package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick
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
