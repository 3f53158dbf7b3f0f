package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// faultStatus is what the rows read of `status --json`.
type faultStatus struct {
	State  string `json:"state"`
	Detail string `json:"detail"`
	// StopBlocked says why an idle or max_age stop waits: its save could
	// not place the work safely ("push failed: ...").
	StopBlocked string `json:"stop_blocked"`
}

func statusOf(t *testing.T, w *world, user string) faultStatus {
	t.Helper()
	r := w.run("status", "--json", "--user", user)
	if r.code != 0 {
		t.Fatalf("status: %s", r)
	}
	var s faultStatus
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	return s
}

// down runs `down` and fails the row unless it succeeds.
func down(t *testing.T, w *world, user string) {
	t.Helper()
	if r := w.run("down", "--user", user); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
}

// rowRemoteDownAtDown: the remote is unreachable when the person runs
// down. down must not stop the server unless the work is safe; the work
// must be on the remote or in a bundle; once the remote is back, down saves
// and stops.
func rowRemoteDownAtDown(t *testing.T, e *faultEnv, user string, l *ledger) int {
	return downWithRemoteUnusable(t, e, user, l, e.remote.Down, func() { e.remote.Up(t) })
}

// rowTokenRevokedAtDown: the same with the token refused (401).
func rowTokenRevokedAtDown(t *testing.T, e *faultEnv, user string, l *ledger) int {
	return downWithRemoteUnusable(t, e, user, l, e.remote.Revoke, e.remote.Restore)
}

func downWithRemoteUnusable(t *testing.T, e *faultEnv, user string, l *ledger, breakIt, mend func()) int {
	e.w.up(user)
	ws := e.backend.workspace(t, e.w, user)
	l.commit(t, e, ws, 0)
	l.write(t, e, ws)
	breakIt()
	var once sync.Once
	defer once.Do(mend)

	r := e.w.run("down", "--user", user)
	if r.code == 0 {
		t.Logf("down with the remote unusable went through: %s", r.stdout)
	} else if st := statusOf(t, e.w, user); st.State != "running" {
		t.Errorf("down failed (%s) yet the server is %s, not running", strings.TrimSpace(r.stderr), st.State)
	}
	measured := e.measure(t, user, l)
	once.Do(mend)
	down(t, e.w, user)
	return measured
}

// rowIdleStopRemoteDown: an idle stop whose save cannot push keeps the
// server up and says why (status --json: stop_blocked "push failed: ...");
// once the remote is back, it saves and stops.
func rowIdleStopRemoteDown(t *testing.T, e *faultEnv, user string, l *ledger) int {
	w := e.newWorld(t, "idle: {stop_after: 8s, warn_before: 4s}\n", user)
	l.w = w
	w.up(user)
	ws := e.backend.workspace(t, w, user)
	l.commit(t, e, ws, 0)
	l.write(t, e, ws)
	e.remote.Down()
	var once sync.Once
	defer once.Do(func() { e.remote.Up(t) })

	var st faultStatus
	waitFor(t, "the idle stop to be blocked (stop_blocked in status --json) or the server to stop", 90*time.Second, func() bool {
		st = statusOf(t, w, user)
		return st.StopBlocked != "" || st.State != "running"
	})
	if st.State != "running" {
		t.Errorf("the idle stop released the server although its save could not push: state %s (%s); want it running with stop_blocked set", st.State, st.Detail)
		return e.measure(t, user, l)
	}
	if !strings.HasPrefix(st.StopBlocked, "push failed") {
		t.Errorf("stop_blocked = %q, want it to start with \"push failed\"", st.StopBlocked)
	}
	measured := e.measure(t, user, l)
	once.Do(func() { e.remote.Up(t) })
	waitFor(t, "the idle stop to go through once the remote is back", 3*time.Minute, func() bool {
		st = statusOf(t, w, user)
		return st.State != "running"
	})
	if st.State != "stopped" || st.StopBlocked != "" {
		t.Errorf("after the remote came back: state %s, stop_blocked %q; want stopped", st.State, st.StopBlocked)
	}
	if c := l.commits[0]; !e.remote.reachable(t, c) {
		t.Errorf("after the idle stop the remote lacks %.12s", c)
	}
	return measured
}

// rowKillMidPush: the agent is killed (SIGKILL, by the pid the backend
// records) while a big push is half-way through; the next up and down
// place everything on the remote.
func rowKillMidPush(t *testing.T, e *faultEnv, user string, l *ledger) int {
	e.w.up(user)
	ws := e.backend.workspace(t, e.w, user)
	l.commit(t, e, ws, 4<<20)
	l.write(t, e, ws)
	pid := e.backend.agentPID(t, e.w, user)

	before := e.remote.received.Load()
	e.remote.throttle.Store(128 << 10)
	defer e.remote.throttle.Store(0)
	save := exec.Command(bin, "save", "--user", user)
	save.Env = e.w.env
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	saved := make(chan error, 1)
	go func() { saved <- save.Wait() }()
	waitFor(t, "the push to be in flight", 2*time.Minute, func() bool { return e.remote.received.Load()-before > 256<<10 })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the agent (pid %d): %v", pid, err)
	}
	e.remote.throttle.Store(0)
	select {
	case err := <-saved:
		t.Logf("save, its agent killed: %v", err)
	case <-time.After(2 * time.Minute):
		save.Process.Kill()
		t.Fatal("save did not end within 2 minutes of its agent's death")
	}
	waitFor(t, "status to see the agent gone", time.Minute, func() bool { return statusOf(t, e.w, user).State != "running" })
	e.w.up(user)
	down(t, e.w, user)
	return 0
}

// rowFullDisk: the workspace disk is full when the work is saved. The save
// fails saying so, down keeps the server; once space is freed, down saves.
func rowFullDisk(t *testing.T, e *faultEnv, user string, l *ledger) int {
	e.backend.smallDisk(t, e.w, user, 16<<20)
	e.w.up(user)
	ws := e.backend.workspace(t, e.w, user)
	l.commit(t, e, ws, 0)
	l.write(t, e, ws)
	filler := filepath.Join(ws, "scratch", "filler") // scratch/ is in the team's .gitignore
	fillDisk(t, filler)
	e.backend.fixOwner(t, ws)

	r := e.w.run("save", "--user", user)
	t.Logf("save on a full disk: exit %d: %s", r.code, strings.TrimSpace(r.stdout+r.stderr))
	r = e.w.run("down", "--user", user)
	if r.code != 0 {
		if st := statusOf(t, e.w, user); st.State != "running" {
			t.Errorf("down failed on a full disk (%s) yet the server is %s, not running", strings.TrimSpace(r.stderr), st.State)
		}
	}
	measured := 0
	if r.code == 0 {
		measured = e.measure(t, user, l) // down says the work is safe: count it so
		e.w.up(user)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	down(t, e.w, user)
	return measured
}

// fillDisk writes path until the disk holding it is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 1} {
		buf := bytes.Repeat([]byte{'x'}, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the disk: %v", err)
				}
				break
			}
		}
	}
}

// rowReboot: the machine loses power: agent, Jupyter and kernels die
// with SIGKILL, nothing saves. The next up finds the workspace; down saves.
func rowReboot(t *testing.T, e *faultEnv, user string, l *ledger) int {
	s := e.w.up(user)
	ws := e.backend.workspace(t, e.w, user)
	l.commit(t, e, ws, 0)
	l.write(t, e, ws)
	run := kernelSession(t, s)
	run("x = 1")
	e.backend.reboot(t, e.w, user)
	waitFor(t, "status to see the server gone", time.Minute, func() bool { return statusOf(t, e.w, user).State != "running" })
	e.w.up(user)
	l.write(t, e, ws)
	down(t, e.w, user)
	return 0
}

// rowTwoUps: two `up`s of one user at the same moment, on a workspace
// holding work made while the server was down: one server comes up (an up
// that loses the race says to try again), and down saves everything.
func rowTwoUps(t *testing.T, e *faultEnv, user string, l *ledger) int {
	e.w.up(user)
	ws := e.backend.workspace(t, e.w, user)
	l.commit(t, e, ws, 0)
	down(t, e.w, user)
	l.commit(t, e, ws, 0)
	l.write(t, e, ws)

	var results [2]result
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = runBin(e.w, "up", "--json", "--user", user) })
	}
	wg.Wait()
	ok := 0
	var urls []string
	for i, r := range results {
		t.Logf("up %d of 2: exit %d %s", i+1, r.code, strings.TrimSpace(r.stderr))
		if r.code == 0 {
			ok++
			var s server
			json.Unmarshal([]byte(r.stdout), &s)
			urls = append(urls, s.URL)
		} else if !strings.Contains(r.stderr, "try again") {
			t.Errorf("an up beside another failed without saying to try again: %s", r)
		}
	}
	if ok == 0 {
		t.Fatalf("neither of two ups at once succeeded:\n%s\n%s", results[0], results[1])
	}
	if ok == 2 && urls[0] != urls[1] {
		t.Errorf("two ups at once answered two servers: %v", urls)
	}
	if st := statusOf(t, e.w, user); st.State != "running" {
		t.Errorf("after two ups at once the server is %s", st.State)
	}
	if e.name == "local" {
		agents := 0
		for _, p := range e.w.processes() {
			if strings.Contains(p, " agent --spec ") && strings.Contains(p, "/servers/"+user+"/") {
				agents++
			}
		}
		if agents != 1 {
			t.Errorf("%d agents of %s run after two ups at once, want 1", agents, user)
		}
	}
	down(t, e.w, user)
	return 0
}

// runBin runs spinbook in w without touching the test (safe in goroutines).
func runBin(w *world, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = w.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return result{out.String(), errb.String(), code}
}

// rowDownWhileKernelWrites: a kernel appends numbered lines to a file of
// the workspace (each acknowledged once flushed) while the person runs
// down: every acknowledged line is in the workspace or on the remote.
func rowDownWhileKernelWrites(t *testing.T, e *faultEnv, user string, l *ledger) int {
	s := e.w.up(user)
	acked := streamToFile(t, s, "stream.txt")
	waitFor(t, "the kernel to write 20 lines", time.Minute, func() bool { return len(acked()) >= 20 })
	down(t, e.w, user)
	lines := acked()
	t.Logf("the kernel acknowledged %d lines before it stopped", len(lines))
	for _, i := range lines {
		l.pieces = append(l.pieces, piece{"stream.txt", fmt.Sprintf("line %06d\n", i)})
	}
	return 0
}

// streamToFile starts, on a new kernel of s, a loop appending numbered
// lines to file (relative to the kernel's directory, the workspace) and
// printing each number once the line is flushed; it returns the numbers
// printed so far.
func streamToFile(t *testing.T, s server, file string) func() []int {
	t.Helper()
	b := loggedIn(t, s)
	id := startKernel(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	conn, _, err := dialKernel(ctx, b, id, b.origin())
	if err != nil {
		t.Fatalf("kernel websocket: %v", err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	code := fmt.Sprintf(`import time
f = open(%q, "a")
i = 0
while True:
    f.write("line %%06d\n" %% i)
    f.flush()
    print(i, flush=True)
    i += 1
    time.sleep(0.05)
`, file)
	msgID := newID()
	msg, _ := json.Marshal(map[string]any{
		"header": map[string]any{"msg_id": msgID, "username": "e2e", "session": newID(), "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano)},
		"parent_header": map[string]any{}, "metadata": map[string]any{},
		"content": map[string]any{"code": code, "silent": false, "store_history": false,
			"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true},
		"buffers": []any{}, "channel": "shell",
	})
	if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatalf("send execute_request: %v", err)
	}
	var mu sync.Mutex
	var acked []int
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return // the server stopped
			}
			var m struct {
				Header struct {
					MsgType string `json:"msg_type"`
				} `json:"header"`
				ParentHeader struct {
					MsgID string `json:"msg_id"`
				} `json:"parent_header"`
				Content struct{ Name, Text string } `json:"content"`
			}
			if json.Unmarshal(data, &m) != nil || m.ParentHeader.MsgID != msgID || m.Header.MsgType != "stream" || m.Content.Name != "stdout" {
				continue
			}
			mu.Lock()
			for _, f := range strings.Fields(m.Content.Text) {
				if n, err := strconv.Atoi(f); err == nil {
					acked = append(acked, n)
				}
			}
			mu.Unlock()
		}
	}()
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), acked...)
	}
}
