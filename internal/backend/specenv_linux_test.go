package backend

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	testSpecVar   = "SPINBOOK_TEST_SPEC_JSON"
	testStageVar  = "SPINBOOK_TEST_SPEC_STAGE"
	testSpecToken = "canary-control-token-6d1f"
)

// TestExecWithSpecFD runs this test binary as the agent's first stage
// would run: the spec in an environment variable. ExecWithSpecFD
// re-executes it (same pid) without the variable; the second stage reads
// the spec from the descriptor and finds it in neither its environment
// block (/proc/self/environ, what other processes read) nor its
// arguments, and the descriptor closed.
func TestExecWithSpecFD(t *testing.T) {
	if os.Getenv(testStageVar) == "handover" {
		handoverStage()
		return
	}
	data, _ := json.Marshal(AgentSpec{User: "alice", Workspace: "/home/jovyan/work", ControlToken: testSpecToken})
	cmd := exec.Command(os.Args[0], "-test.run=^TestExecWithSpecFD$")
	cmd.Env = append(os.Environ(), testStageVar+"=handover", testSpecVar+"="+string(data))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the handover failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "second stage: ok") {
		t.Errorf("the second stage did not run as expected:\n%s", out.String())
	}
}

// handoverStage is the subprocess: the first time with the variable,
// after the exec without it and with the descriptor as its argument.
func handoverStage() {
	fail := func(format string, args ...any) {
		fmt.Printf("second stage: "+format+"\n", args...)
		os.Exit(3)
	}
	if _, ok := os.LookupEnv(testSpecVar); ok {
		pid := os.Getpid()
		err := ExecWithSpecFD(testSpecVar, func(fd int) []string {
			return []string{"-test.run=^TestExecWithSpecFD$", strconv.Itoa(fd), strconv.Itoa(pid)}
		})
		fail("ExecWithSpecFD returned: %v", err)
	}
	fd, err := strconv.Atoi(flag.Arg(0))
	if err != nil {
		fail("no descriptor argument: %q", flag.Args())
	}
	if flag.Arg(1) != strconv.Itoa(os.Getpid()) {
		fail("the pid changed from %s to %d: not an exec", flag.Arg(1), os.Getpid())
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil || bytes.Contains(environ, []byte(testSpecToken)) || bytes.Contains(environ, []byte(testSpecVar)) {
		fail("the environment block holds the spec (or cannot be read: %v)", err)
	}
	cmdline, err := os.ReadFile("/proc/self/cmdline")
	if err != nil || bytes.Contains(cmdline, []byte(testSpecToken)) {
		fail("the command line holds the spec (or cannot be read: %v)", err)
	}
	spec, err := AgentSpecFromFD(fd)
	if err != nil || spec.ControlToken != testSpecToken || spec.User != "alice" {
		fail("AgentSpecFromFD = %+v, %v", spec, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		fail("descriptor %d is still open", fd)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		fail("PR_GET_DUMPABLE = %d, %v; want 0", d, err)
	}
	fmt.Println("second stage: ok")
	os.Exit(0)
}

// TestSpecHandoverErrors: a missing variable, a descriptor that is not
// open, and a spec without its required fields are errors that say so.
func TestSpecHandoverErrors(t *testing.T) {
	os.Unsetenv(testSpecVar)
	if err := ExecWithSpecFD(testSpecVar, func(int) []string { return nil }); err == nil || !strings.Contains(err.Error(), "is not set") {
		t.Errorf("ExecWithSpecFD without the variable: %v", err)
	}
	if _, err := AgentSpecFromFD(987); err == nil {
		t.Error("AgentSpecFromFD read a closed descriptor")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(`{"user": "alice"}`)
	w.Close()
	fd, err := unix.Dup(int(r.Fd()))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AgentSpecFromFD(fd); err == nil || !strings.Contains(err.Error(), "user and workspace are required") {
		t.Errorf("AgentSpecFromFD of a spec without a workspace: %v", err)
	}
}

// TestAgentSpecFromStdin: the docker backend's hand-over. A whole spec is
// read to the end of stdin; a stdin closed with nothing, one that is not a
// spec, one over the bound and one that never ends are errors that say
// what happened, and none quotes what it read.
func TestAgentSpecFromStdin(t *testing.T) {
	good, _ := json.Marshal(AgentSpec{User: "alice", Workspace: "/home/jovyan/work", ControlToken: testSpecToken})
	got, err := AgentSpecFromStdin(t.Context(), bytes.NewReader(good), time.Minute)
	if err != nil || got.User != "alice" || got.ControlToken != testSpecToken {
		t.Fatalf("AgentSpecFromStdin = %+v, %v", got, err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("PR_GET_DUMPABLE after reading the spec = %d, %v; want 0 (not dumpable)", d, err)
	}
	tests := []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{"empty", strings.NewReader(""), "stdin closed with no spec"},
		{"not json", strings.NewReader(`canary-` + testSpecToken), "decode agent spec from stdin"},
		{"no workspace", strings.NewReader(`{"user": "alice"}`), "user and workspace are required"},
		{"too large", io.LimitReader(neverEnding('x'), maxStdinSpec+10), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AgentSpecFromStdin(t.Context(), tt.stdin, time.Minute)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), testSpecToken) {
				t.Errorf("err = %v, want one with %q and without the input", err, tt.want)
			}
		})
	}
	r, w := io.Pipe() // a writer that never closes
	defer w.Close()
	if _, err := AgentSpecFromStdin(t.Context(), r, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "none arrived on stdin within 50ms") {
		t.Errorf("a stdin that never ends: %v", err)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
