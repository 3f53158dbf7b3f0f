// Package proc finds and stops processes by what /proc says about them: a
// pid together with its start time names one process for good, even after
// the pid is reused; a tree is walked through parent pids.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/PID/stat), or an error if no such process exists.
func StartTime(pid int) (uint64, error) {
	_, start, err := stat(pid)
	return start, err
}

// Alive reports whether the process pid that started at start still runs
// (a zombie does not count).
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got, err := StartTime(pid)
	if err != nil || got != start {
		return false
	}
	state, err := status(pid)
	return err == nil && state != 'Z' && state != 'X'
}

// Descendants returns every live process below pid, children before their
// own children (breadth first).
func Descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, err := stat(p)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// KillTree sends SIGKILL to pid (if it still is the process that started at
// start) and to every process below it, the tree collected first so that
// orphans cannot slip away to init.
func KillTree(pid int, start uint64) {
	if !Alive(pid, start) {
		return
	}
	tree := Descendants(pid)
	syscall.Kill(pid, syscall.SIGSTOP) // keep it from forking while we work
	tree = append(tree, Descendants(pid)...)
	for _, p := range tree {
		syscall.Kill(p, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// WaitGone polls until the process pid/start is gone or timeout passes, and
// reports whether it is gone.
func WaitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for Alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Stat reads /proc/PID/stat: the command name (field 2) and the fields
// after it, fields[0] being field 3 (the state). The command name is in
// parentheses and may hold spaces and parentheses, so the fields start
// after the last ')'.
func Stat(pid int) (comm string, fields []string, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil, fmt.Errorf("process %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(data, ')')
	j := bytes.IndexByte(data, '(')
	if i < 0 || j < 0 || j > i {
		return "", nil, errors.New("process " + strconv.Itoa(pid) + ": unreadable stat")
	}
	return string(data[j+1 : i]), strings.Fields(string(data[i+1:])), nil
}

// stat reads the parent pid and start time of pid.
func stat(pid int) (ppid int, start uint64, err error) {
	_, f, err := Stat(pid)
	if err != nil {
		return 0, 0, err
	}
	// f[1] is field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 {
		return 0, 0, errors.New("process " + strconv.Itoa(pid) + ": short stat")
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: ppid: %w", pid, err)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return ppid, start, nil
}

func status(pid int) (byte, error) {
	_, f, err := Stat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) == 0 || f[0] == "" {
		return 0, errors.New("unreadable stat")
	}
	return f[0][0], nil
}

// UID returns the real user id pid runs as (the first Uid field of
// /proc/PID/status).
func UID(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.Atoi(string(f[0]))
	}
	return 0, errors.New("process " + strconv.Itoa(pid) + ": no Uid in status")
}
