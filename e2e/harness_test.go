// Package e2e drives the built spinbook binary against real services: real
// Jupyter processes, real sockets, real browsers later. Nothing is mocked.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
)

// bin is the spinbook binary under test, built once by TestMain with the
// agent binary beside it.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spinbook-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Run as root, spinbook starts each server as that person's own OS
	// account, which must be able to run the agent binary.
	os.Chmod(dir, 0o755)
	// The agent, cmd/spinbook-agent, beside it, where spinbook looks.
	bin = filepath.Join(dir, "spinbook")
	for out, pkg := range map[string]string{bin: "../cmd/spinbook", filepath.Join(dir, "spinbook-agent"): "../cmd/spinbook-agent"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	k8stest.Stop() // the kubernetes tests' cluster, if they started it
	os.RemoveAll(dir)
	os.Exit(code)
}

// needJupyter skips with the install command when no Jupyter is present
// (CI installs it, so CI never skips).
func needJupyter(t *testing.T) {
	t.Helper()
	for _, c := range []string{"jupyter-lab", "jupyter-notebook", "jupyter-server"} {
		if _, err := exec.LookPath(c); err == nil {
			return
		}
	}
	t.Skip("no Jupyter on PATH: apt-get install jupyter-notebook python3-ipykernel")
}

// A flavour is one Jupyter the e2e tests run spinbook's servers on. Debian's
// notebook 6 is what a server gets when nothing is configured here (it is
// first on PATH); the others come from the venv of scripts/jupyter-venv,
// the pinned current stack of scripts/jupyter/lock.txt.
//
// To run a test on several Jupyters, loop over jupyterFlavours(t) and put
// f.config in front of the world's config:
//
//	for _, f := range jupyterFlavours(t) {
//		t.Run(f.name, func(t *testing.T) {
//			w := newWorld(t, f.config+"idle:\n  stop_after: 1m\n")
//			...
//		})
//	}
//
// A test that needs one Jupyter in particular (jupyter_server 2, say) asks
// for it by name: f := jupyterFlavour(t, flavourLab4). Either way a missing
// Jupyter is a skip that names the install command, and in CI (CI set) a
// failure, since CI installs both (scripts/setup --for-tests).
//
// SPINBOOK_TEST_JUPYTER=notebook6|lab4|notebook7 narrows jupyterFlavours to
// that one flavour, for a quick run by hand; CI leaves it unset and runs
// every flavour.
type flavour struct {
	name string
	// config is the YAML jupyter: section that selects this Jupyter.
	config string
	// describes matches what status --json says in "jupyter".
	describes *regexp.Regexp
	// venv is the virtualenv it runs from; "" for Debian's.
	venv string
	// page is the page a person lands on: /tree (notebook 6 and 7) or /lab.
	page string
}

const (
	flavourNotebook6 = "notebook6" // Debian 12's notebook 6.4, /usr/bin/jupyter-notebook
	flavourLab4      = "lab4"      // JupyterLab 4.6 on jupyter_server 2.21, from the venv
	flavourNotebook7 = "notebook7" // Notebook 7.6 on jupyter_server 2.21, from the venv
)

// jupyterFlavours returns the Jupyters the main local flows run on:
// notebook 6 and JupyterLab 4 (see flavour).
func jupyterFlavours(t *testing.T) []flavour {
	t.Helper()
	names := []string{flavourNotebook6, flavourLab4}
	if only := os.Getenv("SPINBOOK_TEST_JUPYTER"); only != "" {
		names = []string{only}
	}
	out := make([]flavour, 0, len(names))
	for _, n := range names {
		out = append(out, jupyterFlavour(t, n))
	}
	return out
}

// jupyterFlavour returns the flavour called name, or skips (fails in CI)
// naming the command that installs it.
func jupyterFlavour(t *testing.T, name string) flavour {
	t.Helper()
	missing := func(what, install string) {
		t.Helper()
		msg := fmt.Sprintf("Jupyter flavour %s: %s; install it with: %s", name, what, install)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	switch name {
	case flavourNotebook6:
		const cmd = "/usr/bin/jupyter-notebook"
		if _, err := os.Stat(cmd); err != nil {
			missing(cmd+" is missing", "apt-get install jupyter-notebook python3-ipykernel (scripts/setup --for-tests)")
		}
		return flavour{name: name, config: "jupyter:\n  command: [" + cmd + "]\n",
			describes: regexp.MustCompile(`^notebook 6\.\d+\.\d+$`), page: "/tree"}
	case flavourLab4, flavourNotebook7:
		out, err := exec.Command("../scripts/jupyter-venv").Output()
		if err != nil {
			missing("the venv of scripts/jupyter/lock.txt is not installed", "scripts/jupyter-venv install (scripts/setup --for-tests)")
		}
		venv := strings.TrimSpace(string(out))
		if name == flavourLab4 {
			return flavour{name: name, config: "jupyter:\n  venv: " + venv + "\n", venv: venv, page: "/lab",
				describes: regexp.MustCompile(`^jupyterlab 4\.6\.\d+ \(jupyter_server 2\.21\.\d+\)$`)}
		}
		return flavour{name: name, config: "jupyter:\n  venv: " + venv + "\n  command: [jupyter-notebook]\n", venv: venv, page: "/tree",
			describes: regexp.MustCompile(`^notebook 7\.6\.\d+ \(jupyter_server 2\.21\.\d+\)$`)}
	}
	t.Fatalf("no Jupyter flavour %q: %s, %s or %s", name, flavourNotebook6, flavourLab4, flavourNotebook7)
	return flavour{}
}

// world is one isolated spinbook installation: its own state dir and config.
type world struct {
	t        *testing.T
	stateDir string
	config   string
	env      []string
	users    map[string]bool
	// cred, when set, is the OS user the binary runs as (else this
	// process's, root in CI).
	cred *syscall.Credential
}

// newWorld writes cfg (YAML; state_dir and ports are added) and arranges
// that every server it started is taken down at the end.
func newWorld(t *testing.T, cfg string) *world {
	t.Helper()
	return newWorldPorts(t, cfg, "18800-18999")
}

// newWorldPorts is newWorld with its own local.ports range (LO-HI), for
// tests that keep clear of the others' ports.
func newWorldPorts(t *testing.T, cfg, ports string) *world {
	t.Helper()
	return newWorldLocal(t, cfg, "", ports)
}

// newWorldLocal is newWorldPorts with more keys of the local section
// (YAML lines indented by two spaces).
func newWorldLocal(t *testing.T, cfg, local, ports string) *world {
	t.Helper()
	needJupyter(t)
	w := &world{t: t, stateDir: passableTempDir(t), users: map[string]bool{}}
	w.config = filepath.Join(t.TempDir(), "spinbook.yaml")
	full := cfg + fmt.Sprintf("\nlocal:\n  state_dir: %s\n  ports: %s\n", w.stateDir, ports) + local
	if err := os.WriteFile(w.config, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	w.env = append(os.Environ(), "SPINBOOK_CONFIG="+w.config, "SPINBOOK_USER=")
	t.Cleanup(func() {
		for u := range w.users {
			w.run("down", "--force", "--user", u) // --force: a save that fails must not leave servers behind
		}
		if leftover := w.processes(); len(leftover) > 0 {
			t.Errorf("processes left after the test: %v", leftover)
		}
	})
	return w
}

// passableTempDir is t.TempDir() in a parent that other OS users may pass
// through (t.TempDir's own parent is 0700), as the servers' accounts must
// to reach their directories in a state dir.
func passableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs spinbook with args in this world.
func (w *world) run(args ...string) result {
	w.t.Helper()
	for i, a := range args {
		if a == "--user" && i+1 < len(args) {
			w.users[args[i+1]] = true
		}
	}
	return runBinary(w.t, w.env, "", "", w.cred, args...)
}

// runBinary runs spinbook with args, env, in dir ("": this one) with
// stdin, as cred (nil: this process's user); it gives up after 4 minutes.
func runBinary(t *testing.T, env []string, dir, stdin string, cred *syscall.Credential, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = env, dir, strings.NewReader(stdin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run spinbook %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// server is what `up --json` and `status --json` print.
type server struct {
	User      string `json:"user"`
	Backend   string `json:"backend"`
	State     string `json:"state"`
	Ready     bool   `json:"ready"`
	URL       string `json:"url"`
	HealthURL string `json:"health_url"`
	Workspace string `json:"workspace"`
	Password  string `json:"password"`
	// Jupyter is which Jupyter runs and its version (status, running servers).
	Jupyter string `json:"jupyter"`

	TLSFingerprint string `json:"tls_fingerprint"`
}

// up brings user's server up and returns what it printed.
func (w *world) up(user string) server {
	w.t.Helper()
	r := w.run("up", "--json", "--user", user)
	if r.code != 0 {
		w.t.Fatalf("spinbook up --user %s: %s", user, r)
	}
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		w.t.Fatalf("up --json printed no JSON object: %v\n%s", err, r)
	}
	return s
}

func (w *world) status(user string) server {
	w.t.Helper()
	r := w.run("status", "--json", "--user", user)
	if r.code != 0 {
		w.t.Fatalf("spinbook status: %s", r)
	}
	var s server
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		w.t.Fatalf("status --json: %v\n%s", err, r)
	}
	return s
}

// processes lists live processes that belong to this world: their command
// line names its state dir, or a Jupyter runtime dir of one of its users.
func (w *world) processes() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue // a zombie is gone, only not yet reaped
			}
		}
		line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		mine := strings.Contains(line, w.stateDir)
		for u := range w.users {
			mine = mine || strings.Contains(line, "/spinbook-"+u+"-")
		}
		if mine {
			out = append(out, e.Name()+": "+line)
		}
	}
	return out
}

// browser is an HTTP client with a cookie jar, optionally dialing from a
// given loopback source address, that does not follow redirects.
type browser struct {
	*http.Client
	base *url.URL
}

func newBrowser(t *testing.T, base string, source string) *browser {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{
		Client: &http.Client{
			Jar:           jar,
			Transport:     tr,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		base: u,
	}
}

func (b *browser) origin() string { return b.base.Scheme + "://" + b.base.Host }

// do sends a request to path with the headers a same-origin page would set.
func (b *browser) do(t *testing.T, method, path string, body io.Reader, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, b.origin()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// login posts password to the login form, as the page would.
func (b *browser) login(t *testing.T, password string) *http.Response {
	t.Helper()
	form := url.Values{"password": {password}, "next": {"/tree"}}
	return b.do(t, http.MethodPost, "/spinbook/login", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"Origin":       b.origin(),
	})
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
