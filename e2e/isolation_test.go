package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// isolationPorts keeps these tests' servers clear of the others'.
const isolationPorts = "20400-20499"

// needRoot skips unless the test runs as root, as CI does: only root can
// give servers accounts of their own.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs the e2e suite as root): sudo -E go test ./e2e")
	}
}

// tryRead is Python for a kernel: attempt each (name, action) and print
// one line per attempt, "OK name" or "DENIED name ErrorType".
const tryRead = `
import os, socket
def _try(name, f):
    try:
        f()
        print("OK", name)
    except Exception as e:
        print("DENIED", name, type(e).__name__)
def _read(p):
    with open(p, "rb") as fh:
        fh.read(1)
def _connect(p):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p)
    finally:
        s.close()
`

// attempts runs tryRead's attempts (name -> Python expression) in run's
// kernel and returns name -> "OK" or "DENIED ...".
func attempts(t *testing.T, run func(string) string, tries map[string]string) map[string]string {
	t.Helper()
	var code strings.Builder
	code.WriteString(tryRead)
	for name, expr := range tries {
		fmt.Fprintf(&code, "_try(%q, lambda: %s)\n", name, expr)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(run(code.String())), "\n") {
		verdict, rest, _ := strings.Cut(line, " ")
		name, detail, _ := strings.Cut(rest, " ")
		got[name] = strings.TrimSpace(verdict + " " + detail)
	}
	return got
}

// pidOf reads the pid a record file of the local backend names.
func pidOf(t *testing.T, path string) int {
	t.Helper()
	var rec struct {
		PID int `json:"pid"`
	}
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.PID == 0 {
		t.Fatalf("read %s: %v", path, err)
	}
	return rec.PID
}

// procStatus returns a field of /proc/PID/status ("Uid", "CapEff", ...).
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

// TestLocalUsersIsolated: run as root, spinbook runs each person's agent,
// Jupyter and kernels as that person's own OS account, so one person's
// kernel reads nothing of another's (workspace, .pgpass, control token,
// Jupyter's token in /proc, Jupyter's socket), and nothing of the
// operator's environment reaches a server unless local.env names it. A
// workspace an older spinbook left owned by root is handed over, without
// following the links in it.
func TestLocalUsersIsolated(t *testing.T) {
	needRoot(t)
	canaryKey := "canary-aws-" + newID()
	canarySock := "/tmp/canary-ssh-" + newID()
	named := "named-" + newID()
	w := newWorldLocal(t, `warehouse:
  host: 127.0.0.1
  port: 5432
  database: postgres
  user: nobody_here
  password: ${env:E2E_ISO_DW_PASSWORD}
`, "  env: [E2E_ISO_NAMED]\n", isolationPorts)
	dwPassword := "dw-canary-" + newID()
	w.env = append(w.env, "AWS_SECRET_ACCESS_KEY="+canaryKey, "SSH_AUTH_SOCK="+canarySock,
		"E2E_ISO_NAMED="+named, "E2E_ISO_DW_PASSWORD="+dwPassword)
	canaries := []string{canaryKey, canarySock, dwPassword}

	// carol's workspace and bundles as an older spinbook, running
	// everything as root, left them; a link in it points outside.
	outside := filepath.Join(t.TempDir(), "root-only.txt")
	if err := os.WriteFile(outside, []byte("root"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldWS := filepath.Join(w.stateDir, "workspaces", "carol")
	if err := os.MkdirAll(filepath.Join(oldWS, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(oldWS, "sub", "old.txt"), []byte("before"), 0o644)
	if err := os.Symlink(outside, filepath.Join(oldWS, "link")); err != nil {
		t.Fatal(err)
	}

	a, b, c := w.up("alice"), w.up("bob"), w.up("carol")
	runA, runB, runC := kernelSession(t, a), kernelSession(t, b), kernelSession(t, c)

	// Each server runs as its own account: not root, not the other's.
	uids := map[string]int{}
	for _, u := range []string{"alice", "bob", "carol"} {
		srv := filepath.Join(w.stateDir, "servers", u)
		agentPID := pidOf(t, filepath.Join(srv, "record.json"))
		jupyterPID := pidOf(t, filepath.Join(srv, "agent", "jupyter.json"))
		uid, _ := strconv.Atoi(strings.Fields(procStatus(t, agentPID, "Uid"))[0])
		if uid == 0 {
			t.Fatalf("%s's agent runs as root", u)
		}
		for name, pid := range map[string]int{"agent": agentPID, "jupyter": jupyterPID} {
			if got := strings.Fields(procStatus(t, pid, "Uid"))[0]; got != strconv.Itoa(uid) {
				t.Errorf("%s's %s runs as uid %s, the agent as %d", u, name, got, uid)
			}
			if got := procStatus(t, pid, "CapEff"); strings.Trim(got, "0") != "" {
				t.Errorf("%s's %s has capabilities %s", u, name, got)
			}
			if got := procStatus(t, pid, "Groups"); got != "" {
				t.Errorf("%s's %s has supplementary groups %q", u, name, got)
			}
			env := strings.Join(environ(t, pid), "\n")
			for _, c := range canaries {
				if strings.Contains(env, c) {
					t.Errorf("%s's %s has the operator's variable holding %q in its environment", u, name, c)
				}
			}
			if !strings.Contains(env, "E2E_ISO_NAMED="+named) {
				t.Errorf("%s's %s lacks E2E_ISO_NAMED, which local.env names", u, name)
			}
		}
		for _, dir := range []string{filepath.Join(w.stateDir, "workspaces", u), filepath.Join(srv, "agent"),
			filepath.Join(srv, "credentials"), filepath.Join(srv, "bundles")} {
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: uid %d mode %v, want uid %d and 0700", dir, st.Uid, fi.Mode().Perm(), uid)
			}
		}
		for _, f := range []string{filepath.Join(srv, "record.json"), filepath.Join(srv, "agent.log")} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: uid %d mode %v, want root's own", f, st.Uid, fi.Mode().Perm())
			}
		}
		uids[u] = uid
	}
	if uids["alice"] == uids["bob"] || uids["bob"] == uids["carol"] || uids["alice"] == uids["carol"] {
		t.Fatalf("two people share an OS account: %v", uids)
	}

	// A kernel's own view: its uid, and an environment with what
	// local.env names and nothing else of the operator's.
	envA := runA("import os, json; print(os.getuid()); print(json.dumps(dict(os.environ)))")
	uidLine, envJSON, _ := strings.Cut(envA, "\n")
	if uidLine != strconv.Itoa(uids["alice"]) {
		t.Errorf("alice's kernel runs as uid %s, want %d", uidLine, uids["alice"])
	}
	var kenv map[string]string
	if err := json.Unmarshal([]byte(envJSON), &kenv); err != nil {
		t.Fatalf("kernel environment: %v\n%s", err, envA)
	}
	if kenv["E2E_ISO_NAMED"] != named {
		t.Errorf("alice's kernel: E2E_ISO_NAMED = %q, want what local.env passed", kenv["E2E_ISO_NAMED"])
	}
	for k, v := range kenv {
		for _, c := range canaries {
			if strings.Contains(v, c) {
				t.Errorf("alice's kernel has %s holding the operator's %q", k, c)
			}
		}
	}
	for _, k := range []string{"AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "E2E_ISO_DW_PASSWORD"} {
		if _, ok := kenv[k]; ok {
			t.Errorf("alice's kernel has %s", k)
		}
	}

	// alice's secrets, as bob's kernel would look for them.
	runA(`open("alice-secret.txt", "w").write("alice")`)
	jupyterA := pidOf(t, filepath.Join(w.stateDir, "servers", "alice", "agent", "jupyter.json"))
	// Her Jupyter's socket, from its command line (--...App.sock=PATH).
	var socks []string
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", jupyterA))
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if _, path, ok := strings.Cut(arg, "App.sock="); ok {
			socks = append(socks, path)
		}
	}
	if len(socks) != 1 {
		t.Fatalf("alice's Jupyter socket: found %v in its command line %q", socks, cmdline)
	}
	aliceSrv := filepath.Join(w.stateDir, "servers", "alice")
	tries := map[string]string{
		"workspace-file": fmt.Sprintf("_read(%q)", filepath.Join(a.Workspace, "alice-secret.txt")),
		"workspace-list": fmt.Sprintf("os.listdir(%q)", a.Workspace),
		"pgpass":         fmt.Sprintf("_read(%q)", filepath.Join(aliceSrv, "credentials", ".pgpass")),
		"control-token":  fmt.Sprintf("_read(%q)", filepath.Join(aliceSrv, "record.json")),
		"agent-dir":      fmt.Sprintf("os.listdir(%q)", filepath.Join(aliceSrv, "agent")),
		"agent-log":      fmt.Sprintf("_read(%q)", filepath.Join(aliceSrv, "agent.log")),
		"jupyter-env":    fmt.Sprintf("_read('/proc/%d/environ')", jupyterA),
		"jupyter-socket": fmt.Sprintf("_connect(%q)", socks[0]),
		"runtime-dir":    fmt.Sprintf("os.listdir(%q)", filepath.Dir(socks[0])),
	}
	// The same look, by alice's own kernel, works: the attempts are sound.
	for name, verdict := range attempts(t, runA, tries) {
		if !strings.HasPrefix(verdict, "OK") && name != "control-token" && name != "agent-log" {
			t.Errorf("alice's own kernel: %s: %s (the check is broken)", name, verdict)
		}
	}
	got := attempts(t, runB, tries)
	t.Logf("bob's kernel looking at alice's files: %v", got)
	for name := range tries {
		if got[name] != "DENIED PermissionError" {
			t.Errorf("bob's kernel read alice's %s: %q", name, got[name])
		}
	}

	// carol's old workspace is hers now, and the link's target is not.
	if out := runC(`print(open("sub/old.txt", "a").write(" after"))`); out != "6\n" {
		t.Errorf("carol's kernel appending to her old file printed %q", out)
	}
	if fi, err := os.Lstat(outside); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the file a link in carol's old workspace points to changed owner: %v", err)
	}
}

// TestLocalNonRootServesOnePerson: spinbook run by an unprivileged OS user
// serves one person; a second is refused with a sentence that says why and
// what to do, and the first one's server keeps working.
func TestLocalNonRootServesOnePerson(t *testing.T) {
	needRoot(t) // to become nobody
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no account nobody on this machine")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	w := newWorldPorts(t, "", isolationPorts)
	home := passableTempDir(t)
	for _, p := range []string{w.stateDir, home} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(w.config), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(w.config, 0o644)
	w.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	w.env = append(w.env, "HOME="+home, "AWS_SECRET_ACCESS_KEY=canary-"+newID())

	a := w.up("dora")
	r := w.run("up", "--user", "emil")
	if r.code != 1 || !strings.Contains(r.stderr, "one OS user can serve one person; run as root to serve several") {
		t.Fatalf("up of a second person as an unprivileged user: %s; want exit 1 and the refusal", r)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, "workspaces", "emil")); err == nil {
		t.Error("the refused up made a workspace")
	}
	if s := w.status("dora"); s.State != "running" || !s.Ready {
		t.Fatalf("dora's server after the refusal: %+v", s)
	}
	run := kernelSession(t, a)
	if got := run("import os; print(os.getuid(), 'AWS_SECRET_ACCESS_KEY' in os.environ)"); got != fmt.Sprintf("%d False\n", uid) {
		t.Errorf("dora's kernel: %q, want uid %d and no AWS_SECRET_ACCESS_KEY", got, uid)
	}
}

// writeAsOwner writes files (path -> content) into a workspace as the
// person would: they end up owned by the workspace's owner (the server's
// OS account when spinbook runs as root).
func writeAsOwner(t *testing.T, ws string, files map[string]string) {
	t.Helper()
	gittest.WriteFiles(t, ws, files)
	handBack(t, ws)
}

// gitAsOwner runs git in a workspace as the person would, and returns its
// output.
func gitAsOwner(t *testing.T, ws string, args ...string) string {
	t.Helper()
	out := gittest.Git(t, ws, append([]string{"-c", "safe.directory=*"}, args...)...)
	handBack(t, ws)
	return out
}

// handBack gives everything under ws to ws's owner.
func handBack(t *testing.T, ws string) {
	t.Helper()
	fi, err := os.Stat(ws)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid == uint32(os.Geteuid()) {
		return
	}
	err = filepath.WalkDir(ws, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(st.Uid), int(st.Gid))
	})
	if err != nil {
		t.Fatal(err)
	}
}
