package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestWarehouseFromKernel: with warehouse: pointing at a real PostgreSQL
// whose role has a scram-sha-256 password (a canary), a kernel behind the
// front door connects with psycopg2.connect("") and psql without any
// password in code, and the canary shows up nowhere but in the server's
// 0600 .pgpass: not in argv of any process, the environment of the agent,
// Jupyter or the kernel, the log, the workspace, a notebook, or any output.
func TestWarehouseFromKernel(t *testing.T) {
	needJupyter(t)
	needPsycopg2(t)
	// ':' and '\' must be escaped in .pgpass; libpq reads them back here.
	canary := "dw-canary-" + newID()[:16] + `:p\w`
	role := "nb_" + newID()[:8]
	leaks := watchForLeaks(t, canary) // registered first: it checks last, after down
	pg := startPostgres(t, role, canary)

	const user = "warehouse"
	w := newWorld(t, fmt.Sprintf(`warehouse:
  host: 127.0.0.1
  port: %d
  database: postgres
  user: %s
  password: ${env:SPINBOOK_E2E_DW_PASSWORD}
`, pg.port, role))
	w.env = append(w.env, "SPINBOOK_E2E_DW_PASSWORD="+canary)
	w.users[user] = true

	r := w.run("status", "--json", "--user", user)
	leaks.check(t, "status --json", r.String())
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "warehouse.password"`) ||
		!strings.Contains(r.stdout, `"ref": "${env:SPINBOOK_E2E_DW_PASSWORD}"`) || !strings.Contains(r.stdout, `"resolved": true`) {
		t.Fatalf("status --json does not report warehouse.password as resolved: %s", leaks.hide(r.String()))
	}

	r = w.run("up", "--json", "--user", user)
	leaks.check(t, "up", r.String())
	if r.code != 0 {
		t.Fatalf("up: %s", leaks.hide(r.String()))
	}
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || !s.Ready {
		t.Fatalf("up --json: %v\n%s", err, leaks.hide(r.String()))
	}

	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %s", resp.Status)
	}
	kernel := startKernel(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, kernel, b.origin())
	if err != nil {
		t.Fatalf("kernel websocket: %v", err)
	}
	defer conn.CloseNow()
	run := func(code string) string {
		t.Helper()
		out := execute(ctx, t, conn, code)
		leaks.check(t, "kernel output", out)
		return out
	}

	const query = `import psycopg2
c = psycopg2.connect("")
cur = c.cursor()
cur.execute("select current_user, 6*7")
print(cur.fetchone())`
	if got, want := run(query), fmt.Sprintf("('%s', 42)\n", role); got != want {
		t.Fatalf("the query printed %q, want %q", leaks.hide(got), want)
	}
	got := run(`import subprocess
r = subprocess.run("psql -c 'select 1'", shell=True, capture_output=True, text=True)
print(r.returncode, "(1 row)" in r.stdout, r.stderr.strip())`)
	if got != "0 True \n" {
		t.Fatalf("psql -c 'select 1' from the kernel: %q, want exit 0 and one row", leaks.hide(got))
	}
	// The password is what lets it in: without the .pgpass the server refuses.
	got = run(`try:
    psycopg2.connect("", passfile="/dev/null")
    print("connected")
except psycopg2.OperationalError:
    print("refused")`)
	if got != "refused\n" {
		t.Fatalf("a connection without the .pgpass: %q, want refused (is password auth on?)", got)
	}

	kernelPID, err := strconv.Atoi(strings.TrimSpace(run("import os; print(os.getpid())")))
	if err != nil {
		t.Fatal(err)
	}
	kenv := environ(t, kernelPID)
	leaks.check(t, "the kernel's environment", strings.Join(kenv, "\n"))
	wantEnv := map[string]string{
		"PGHOST": "127.0.0.1", "PGPORT": strconv.Itoa(pg.port), "PGDATABASE": "postgres",
		"PGUSER": role, "PGSSLMODE": "prefer",
	}
	pgpass := ""
	for _, kv := range kenv {
		name, v, _ := strings.Cut(kv, "=")
		switch {
		case name == "PGPASSWORD" || name == "SPINBOOK_E2E_DW_PASSWORD":
			t.Errorf("the kernel's environment has %s", name)
		case name == "PGPASSFILE":
			pgpass = v
		case wantEnv[name] != "":
			if v != wantEnv[name] {
				t.Errorf("kernel %s=%s, want %s", name, v, wantEnv[name])
			}
			delete(wantEnv, name)
		}
	}
	if len(wantEnv) > 0 {
		t.Errorf("the kernel's environment lacks %v", wantEnv)
	}
	checkPgpass(t, pgpass, kernelPID, canary)

	// The agent and Jupyter got no variable holding the secret either.
	srvDir := filepath.Join(w.stateDir, "servers", user)
	for _, name := range []string{"record.json", "agent/jupyter.json"} {
		var rec struct{ PID int }
		data, err := os.ReadFile(filepath.Join(srvDir, name))
		if err != nil || json.Unmarshal(data, &rec) != nil || rec.PID == 0 {
			t.Fatalf("read %s: %v", name, err)
		}
		leaks.check(t, "the environment of the process in "+name, strings.Join(environ(t, rec.PID), "\n"))
	}

	// A notebook that queries the warehouse holds no password; nor does any
	// file of the workspace, the state dir (but the .pgpass) or Jupyter's
	// runtime dir.
	saveNotebook(t, b, "warehouse.ipynb", query, fmt.Sprintf("('%s', 42)\n", role))
	conn.Close(1000, "")
	leaks.scanTree(t, w.stateDir, pgpass)
	runtimeDirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "spinbook-"+user+"-*"))
	for _, dir := range runtimeDirs {
		leaks.scanTree(t, dir, "")
	}

	r = w.run("logs", "--user", user)
	leaks.check(t, "logs", r.String())
	if !strings.Contains(r.stdout, "warehouse ready") {
		t.Errorf("the log does not say the warehouse was set up:\n%s", leaks.hide(r.stdout))
	}
	r = w.run("down", "--user", user)
	leaks.check(t, "down", r.String())
	if r.code != 0 {
		t.Fatalf("down: %s", leaks.hide(r.String()))
	}
	if _, err := os.Stat(pgpass); !os.IsNotExist(err) {
		t.Errorf("the .pgpass outlived the server (%v)", err)
	}
	leaks.scanTree(t, w.stateDir, "")
	for _, line := range pg.log() {
		leaks.check(t, "the PostgreSQL log", line)
	}
}

// TestWarehouseMissingSecret: a ${env:...} that is not set stops up with
// exit 2 and an error naming the reference, before anything is started.
func TestWarehouseMissingSecret(t *testing.T) {
	w := newWorld(t, `warehouse:
  host: 127.0.0.1
  database: postgres
  user: nb
  password: ${env:SPINBOOK_E2E_DW_UNSET}
`)
	env := w.env[:0:0]
	for _, kv := range w.env {
		if !strings.HasPrefix(kv, "SPINBOOK_E2E_DW_UNSET=") {
			env = append(env, kv)
		}
	}
	w.env = env

	r := w.run("up", "--user", "nosecret")
	if r.code != 2 {
		t.Fatalf("up with a missing secret: %s\nwant exit 2", r)
	}
	if !strings.Contains(r.stderr, "${env:SPINBOOK_E2E_DW_UNSET}") || !strings.Contains(r.stderr, "warehouse.password") {
		t.Errorf("the error does not name the reference and the key:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("up printed a result: %q", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, "servers")); !os.IsNotExist(err) {
		t.Errorf("up created server state before failing (%v)", err)
	}
	if got := w.status("nosecret"); got.State != "absent" {
		t.Errorf("status = %+v, want absent", got)
	}
	if ps := w.processes(); len(ps) > 0 {
		t.Errorf("processes started: %v", ps)
	}
}

func needPsycopg2(t *testing.T) {
	t.Helper()
	if exec.Command("/usr/bin/python3", "-c", "import psycopg2").Run() != nil {
		t.Skip("no psycopg2 for /usr/bin/python3: scripts/setup --for-tests (apt-get install python3-psycopg2 postgresql-client)")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("no psql: scripts/setup --for-tests (apt-get install postgresql-client)")
	}
}

// pgServer is a PostgreSQL server of one test.
type pgServer struct {
	port int
	mu   sync.Mutex
	out  bytes.Buffer // the server's log
}

func (p *pgServer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *pgServer) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Split(p.out.String(), "\n")
}

// startPostgres starts Debian's PostgreSQL in a fresh data dir on a free
// loopback port, with scram-sha-256 password auth for the superuser role,
// whose password never appears in argv; it stops it when the test ends.
// As root it runs the server as the postgres user (or nobody), as
// PostgreSQL refuses to run as root.
func startPostgres(t *testing.T, role, password string) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server: scripts/setup --for-tests (apt-get install postgresql)")
	}
	sort.Slice(bins, func(i, j int) bool { return pgVersion(bins[i]) < pgVersion(bins[j]) })
	binDir := filepath.Dir(bins[len(bins)-1])

	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatalf("no user to run PostgreSQL as (it refuses root): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as another user.
	base, err := os.MkdirTemp("", "spinbook-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	own := func(path string) {
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	own(base)
	pwfile := filepath.Join(base, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	own(pwfile)

	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, name), args...)
		cmd.Dir = base
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=" + base}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return cmd
	}
	data := filepath.Join(base, "data")
	initdb := command("initdb", "-D", data, "-U", role, "--pwfile="+pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)

	port := freePort(t)
	pg := &pgServer{port: port}
	srv := command("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", base,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "log_connections=on")
	srv.Stdout, srv.Stderr = pg, pg
	if err := srv.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	waitFor(t, "PostgreSQL to accept connections", time.Minute, func() bool {
		select {
		case <-exited:
			t.Fatalf("postgres exited:\n%s", strings.Join(pg.log(), "\n"))
		default:
		}
		return command("pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port)).Run() == nil
	})
	return pg
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin/initdb.
func pgVersion(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// leakWatch samples every process's argv and environment while a test
// runs and scans what the test hands it, all for one canary secret.
type leakWatch struct {
	canary string
	mu     sync.Mutex
	found  map[string]bool
}

// watchForLeaks starts sampling /proc every 50 ms until the test ends,
// then fails the test for every process whose argv held the canary, or
// whose environment did, but for the spinbook commands themselves (up,
// status, down ...), which read it from ${env:...} as the config says.
func watchForLeaks(t *testing.T, canary string) *leakWatch {
	l := &leakWatch{canary: canary, found: map[string]bool{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	samples := 0
	go func() {
		defer close(done)
		for {
			l.sample()
			samples++
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		l.mu.Lock()
		defer l.mu.Unlock()
		for f := range l.found {
			t.Errorf("the secret leaked: %s", f)
		}
		t.Logf("sampled every process's argv and environment %d times", samples)
	})
	return l
}

func (l *leakWatch) sample() {
	entries, _ := os.ReadDir("/proc")
	canary := []byte(l.canary)
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		argv := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		name := l.hide(strings.Join(argv, " "))
		if bytes.Contains(cmdline, canary) {
			l.report("argv of pid " + e.Name() + ": " + name)
		}
		if len(argv) > 1 && argv[0] == bin && argv[1] != "agent" {
			continue // a spinbook command: it resolves ${env:...} from its own environment
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(env, canary) {
			l.report("environment of pid " + e.Name() + ": " + name)
		}
	}
}

func (l *leakWatch) report(what string) {
	l.mu.Lock()
	l.found[what] = true
	l.mu.Unlock()
}

// check fails the test if text, output of what, holds the canary.
func (l *leakWatch) check(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, l.canary) {
		t.Errorf("the secret shows in %s:\n%s", what, l.hide(text))
	}
}

// hide replaces the canary, so that a failing test does not print it.
func (l *leakWatch) hide(s string) string { return strings.ReplaceAll(s, l.canary, "<CANARY>") }

// scanTree checks every file under dir, but except, for the canary.
func (l *leakWatch) scanTree(t *testing.T, dir, except string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || path == except {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil
		}
		n++
		if bytes.Contains(data, []byte(l.canary)) {
			t.Errorf("the secret is in the file %s", path)
		}
		return nil
	})
	if n == 0 {
		t.Errorf("found no files to scan under %s", dir)
	}
}

// environ returns the environment of process pid.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("environment of pid %d: %v", pid, err)
	}
	return strings.Split(string(bytes.TrimRight(data, "\x00")), "\x00")
}

// checkPgpass checks that path is a 0600 file owned by the kernel's user
// that holds the password, escaped as libpq reads it.
func checkPgpass(t *testing.T, path string, kernelPID int, password string) {
	t.Helper()
	if path == "" {
		t.Fatal("the kernel has no PGPASSFILE")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("PGPASSFILE: %v", err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("%s has mode %v, want -rw-------", path, fi.Mode())
	}
	kp, err := os.Stat(fmt.Sprintf("/proc/%d", kernelPID))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Sys().(*syscall.Stat_t).Uid != kp.Sys().(*syscall.Stat_t).Uid {
		t.Errorf("%s belongs to uid %d, the kernel runs as %d", path, fi.Sys().(*syscall.Stat_t).Uid, kp.Sys().(*syscall.Stat_t).Uid)
	}
	data, _ := os.ReadFile(path)
	escaped := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password)
	if !bytes.Contains(data, []byte(":"+escaped+"\n")) {
		t.Errorf("%s does not end its line with the escaped password", path)
	}
}

// saveNotebook saves a one-cell notebook with source and its output
// through the front door.
func saveNotebook(t *testing.T, b *browser, name, source, output string) {
	t.Helper()
	nb := map[string]any{
		"type": "notebook",
		"content": map[string]any{
			"nbformat": 4, "nbformat_minor": 5, "metadata": map[string]any{},
			"cells": []any{map[string]any{
				"cell_type": "code", "id": "query", "execution_count": 1, "metadata": map[string]any{},
				"source":  source,
				"outputs": []any{map[string]any{"output_type": "stream", "name": "stdout", "text": output}},
			}},
		},
	}
	data, _ := json.Marshal(nb)
	resp := b.do(t, http.MethodPut, "/api/contents/"+name, bytes.NewReader(data), map[string]string{
		"Content-Type": "application/json",
		"Origin":       b.origin(),
	})
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /api/contents/%s: %s", name, resp.Status)
	}
}
