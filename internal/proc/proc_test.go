package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestStartTimeIdentifiesProcess(t *testing.T) {
	start, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), start) {
		t.Fatal("this process is not alive by its own start time")
	}
	if Alive(os.Getpid(), start+1) {
		t.Fatal("a different start time must name a different process")
	}
	if Alive(0, 0) || Alive(-1, 0) {
		t.Fatal("pid <= 0 is never alive")
	}
}

func TestKillTreeTakesGrandchildren(t *testing.T) {
	// sh starts a sleep in a new session (as Jupyter does for kernels), so a
	// signal to sh's group would miss it; KillTree must still find it.
	cmd := exec.Command("sh", "-c", "setsid sleep 300 & echo $! ; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 32)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			child = child*10 + int(c-'0')
		}
	}
	childStart, err := StartTime(child)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	deadline := time.Now().Add(5 * time.Second)
	for !found && time.Now().Before(deadline) {
		for _, p := range Descendants(cmd.Process.Pid) {
			found = found || p == child
		}
	}
	if !found {
		t.Fatalf("Descendants(%d) does not list the grandchild %d", cmd.Process.Pid, child)
	}
	shStart, _ := StartTime(cmd.Process.Pid)
	KillTree(cmd.Process.Pid, shStart)
	cmd.Wait()
	if !WaitGone(child, childStart, 5*time.Second) {
		t.Fatalf("grandchild %d survived KillTree", child)
	}
}

func TestUID(t *testing.T) {
	got, err := UID(os.Getpid())
	if err != nil || got != os.Getuid() {
		t.Fatalf("UID(self) = %d, %v; want %d", got, err, os.Getuid())
	}
	if _, err := UID(0); err == nil {
		t.Fatal("UID(0): want an error, there is no process 0")
	}
}

// TestStatCommandWithParentheses: a command name holding a space and a
// ')' (the executable's name, which a user controls) neither shifts the
// fields nor ends the name early.
func TestStatCommandWithParentheses(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "a) b")
	if err := os.WriteFile(odd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	comm, f, err := Stat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if comm != "a) b" {
		t.Errorf("command name %q, want %q", comm, "a) b")
	}
	if len(f) < 20 || f[1] != strconv.Itoa(os.Getpid()) {
		t.Errorf("fields %q: want field 4 (ppid) to be this process, %d", f, os.Getpid())
	}
	if _, err := status(cmd.Process.Pid); err != nil {
		t.Errorf("status: %v", err)
	}
}
