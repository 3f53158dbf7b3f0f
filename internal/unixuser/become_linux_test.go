package unixuser

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const becomeStage = "SPINBOOK_TEST_BECOME"

// TestBecome runs Become in a child process (it cannot be undone) as root:
// afterwards every uid and gid is the user's, the groups are the user's,
// and the process cannot become root again.
func TestBecome(t *testing.T) {
	if os.Getenv(becomeStage) == "child" {
		becomeChild()
		return
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestBecome needs root, which CI has")
		}
		t.Skip("needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBecome$")
	cmd.Env = append(os.Environ(), becomeStage+"=child")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child: ok") {
		t.Fatalf("the child: %v\n%s", err, out)
	}
}

func becomeChild() {
	fail := func(format string, args ...any) {
		fmt.Printf("child: "+format+"\n", args...)
		os.Exit(1)
	}
	if err := Become(User{UID: 65534, GID: 65533, Groups: []int{65533, 65532}}); err != nil {
		fail("Become: %v", err)
	}
	if r, e, s := unix.Getresuid(); r != 65534 || e != 65534 || s != 65534 {
		fail("uids %d %d %d", r, e, s)
	}
	if r, e, s := unix.Getresgid(); r != 65533 || e != 65533 || s != 65533 {
		fail("gids %d %d %d", r, e, s)
	}
	if g, _ := syscall.Getgroups(); fmt.Sprint(slices.Sorted(slices.Values(g))) != "[65532 65533]" {
		fail("groups %v", g)
	}
	if syscall.Setuid(0) == nil {
		fail("became root again")
	}
	if err := Become(User{UID: 1000}); err == nil {
		fail("Become as a user succeeded")
	}
	fmt.Println("child: ok")
	os.Exit(0)
}
