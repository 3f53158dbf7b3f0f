package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpLoginKernelDown is the newcomer's path: up, log in, run a cell
// through the front door, down, and nothing left behind; on every Jupyter
// flavour (Debian's notebook 6, the venv's JupyterLab 4), each saying in
// status which it is, its kernels running in its venv.
func TestUpLoginKernelDown(t *testing.T) {
	for _, f := range jupyterFlavours(t) {
		t.Run(f.name, func(t *testing.T) { testUpLoginKernelDown(t, f) })
	}
}

func testUpLoginKernelDown(t *testing.T, f flavour) {
	w := newWorld(t, f.config)
	s := w.up("alice")
	if s.State != "running" || !s.Ready || s.Backend != "local" || s.User != "alice" {
		t.Fatalf("up --json = %+v, want a ready local server for alice", s)
	}
	if s.URL == "" || s.HealthURL == "" || s.Password == "" {
		t.Fatalf("up --json lacks url, health_url or the generated password: %+v", s)
	}

	// Health answers without any credential.
	for _, p := range []string{"/healthz", "/readyz"} {
		u := strings.TrimSuffix(s.HealthURL, "/healthz") + p
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %s, want 200 without auth", u, resp.Status)
		}
	}

	b := newBrowser(t, s.URL, "")
	resp := b.do(t, http.MethodGet, "/tree", nil, map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/spinbook/login") {
		t.Fatalf("unauthenticated GET /tree = %s Location %q, want a redirect to the login page", resp.Status, resp.Header.Get("Location"))
	}
	if resp := b.do(t, http.MethodGet, "/api/kernels", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET /api/kernels = %s, want 401", resp.Status)
	}
	if resp := b.login(t, "wrong-"+s.Password); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password = %s, want 401", resp.Status)
	}
	if resp := b.do(t, http.MethodGet, "/api/kernels", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after a failed login GET /api/kernels = %s, want 401", resp.Status)
	}
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/tree" {
		t.Fatalf("login = %s Location %q, want 303 to /tree", resp.Status, resp.Header.Get("Location"))
	}

	kernel := startKernel(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, kernel, b.origin())
	if err != nil {
		t.Fatalf("kernel websocket through the front door: %v", err)
	}
	defer conn.CloseNow()
	if got := execute(ctx, t, conn, "print(6*7)"); got != "42\n" {
		t.Fatalf("print(6*7) printed %q, want \"42\\n\"", got)
	}
	// Kernels run below the agent's CPU priority, so however busy they are,
	// health checks keep answering.
	if got := execute(ctx, t, conn, "import os; print(os.nice(0))"); got != "10\n" {
		t.Errorf("the kernel's niceness is %q, want 10 (the agent runs at 0)", strings.TrimSpace(got))
	}
	kernelPID, err := strconv.Atoi(strings.TrimSpace(execute(ctx, t, conn, "import os; print(os.getpid())")))
	if err != nil {
		t.Fatal(err)
	}
	// The kernel runs the flavour's Python, its venv activated.
	wantPrefix := f.venv
	if wantPrefix == "" {
		wantPrefix = "/usr"
	}
	want := wantPrefix + "|" + f.venv + "\n"
	if got := execute(ctx, t, conn, `import os, sys; print(sys.prefix + "|" + os.environ.get("VIRTUAL_ENV", ""))`); got != want {
		t.Errorf("kernel sys.prefix|VIRTUAL_ENV = %q, want %q", got, want)
	}
	conn.Close(1000, "")

	// The page a person lands on loads through the front door.
	if resp := b.do(t, http.MethodGet, f.page, nil, map[string]string{"Accept": "text/html"}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %s, want 200", f.page, resp.Status)
	}

	got := w.status("alice")
	if got.State != "running" || !got.Ready || got.URL != s.URL {
		t.Fatalf("status = %+v, want running at %s", got, s.URL)
	}
	if !f.describes.MatchString(got.Jupyter) {
		t.Errorf("status --json jupyter = %q, want %s", got.Jupyter, f.describes)
	}
	if r := w.run("status", "--user", "alice"); !strings.Contains(r.stdout, "jupyter:    "+got.Jupyter+"\n") {
		t.Errorf("status does not say which Jupyter runs:\n%s", r)
	}
	if logs := w.run("logs", "--user", "alice"); !strings.Contains(logs.stdout+logs.stderr, got.Jupyter) {
		t.Errorf("the log does not say which Jupyter started:\n%s", lastLines(logs.stdout+logs.stderr, 20))
	}

	if r := w.run("down", "--user", "alice"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if got := w.status("alice"); got.State != "absent" {
		t.Fatalf("status after down = %q, want absent", got.State)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(kernelPID)); err == nil {
		t.Errorf("the kernel (pid %d) survived down", kernelPID)
	}
	if left := w.processes(); len(left) > 0 {
		t.Fatalf("processes left after down: %v", left)
	}
	if r := w.run("down", "--user", "alice"); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("a second down must succeed and say there is nothing to do: %s", r)
	}
}

// TestAllowlist: a client outside access.allow is refused everywhere, and
// an X-Forwarded-For from an untrusted peer changes nothing.
func TestAllowlist(t *testing.T) {
	w := newWorld(t, "access:\n  allow: [127.0.0.1/32]\n")
	s := w.up("carol")

	inside := newBrowser(t, s.URL, "127.0.0.1")
	if resp := inside.do(t, http.MethodGet, "/spinbook/login", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("login page from 127.0.0.1 = %s, want 200", resp.Status)
	}
	if resp := inside.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login from 127.0.0.1 = %s", resp.Status)
	}
	kernel := startKernel(t, inside)

	outside := newBrowser(t, s.URL, "127.0.0.2")
	outside.Jar.SetCookies(outside.base, inside.Jar.Cookies(inside.base)) // even with a valid session
	spoof := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header map[string]string
	}{
		{"login page", http.MethodGet, "/spinbook/login", nil},
		{"login post", http.MethodPost, "/spinbook/login", map[string]string{"Origin": outside.origin()}},
		{"API", http.MethodGet, "/api/kernels", nil},
		{"API with spoofed forwarding headers", http.MethodGet, "/api/kernels", spoof},
		{"login page with spoofed forwarding headers", http.MethodGet, "/spinbook/login", spoof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := outside.do(t, tc.method, tc.path, nil, tc.header); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s from 127.0.0.2 = %s, want 403", tc.method, tc.path, resp.Status)
			}
		})
	}
	t.Run("websocket upgrade", func(t *testing.T) {
		conn, resp, err := dialKernel(t.Context(), outside, kernel, outside.origin())
		if err == nil {
			conn.CloseNow()
			t.Fatal("a websocket from 127.0.0.2 was accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("websocket from 127.0.0.2: %v, want 403", err)
		}
	})
}

// TestCrossSiteRequestsRefused: the agent authenticates to Jupyter with its
// token, so it must itself refuse foreign origins and open redirects.
func TestCrossSiteRequestsRefused(t *testing.T) {
	w := newWorld(t, "")
	s := w.up("dave")
	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %s", resp.Status)
	}
	kernel := startKernel(t, b)

	t.Run("websocket with a foreign Origin", func(t *testing.T) {
		for _, origin := range []string{"http://evil.example", "null", "", b.origin() + ".evil.example"} {
			conn, resp, err := dialKernel(t.Context(), b, kernel, origin)
			if err == nil {
				conn.CloseNow()
				t.Errorf("Origin %q: websocket accepted", origin)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("Origin %q: %v, want 403", origin, err)
			}
		}
	})
	t.Run("cross-site POST", func(t *testing.T) {
		for _, h := range []map[string]string{
			{"Origin": "http://evil.example", "Content-Type": "application/json"},
			{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
		} {
			resp := b.do(t, http.MethodPost, "/api/kernels", strings.NewReader(`{}`), h)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST /api/kernels with %v = %s, want 403", h, resp.Status)
			}
		}
	})
	t.Run("login next stays on the origin", func(t *testing.T) {
		for _, next := range []string{"//evil.example", "https://evil.example", "/\\evil.example", "///evil.example"} {
			login := newBrowser(t, s.URL, "")
			form := url.Values{"password": {s.Password}, "next": {next}}
			resp := login.do(t, http.MethodPost, "/spinbook/login", strings.NewReader(form.Encode()), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Origin": login.origin(),
			})
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Host != "" || loc.Scheme != "" ||
				!strings.HasPrefix(loc.Path, "/") || strings.HasPrefix(resp.Header.Get("Location"), "//") {
				t.Errorf("next=%q: %s Location %q, want a path on this origin", next, resp.Status, resp.Header.Get("Location"))
			}
		}
	})
}

// TestUpIsIdempotentAndRecovers: a second up reports the same server; after
// the agent is killed, status says so and up brings a working server back.
func TestUpIsIdempotentAndRecovers(t *testing.T) {
	w := newWorld(t, "")
	first := w.up("erin")
	r := w.run("up", "--user", "erin")
	if r.code != 0 || !strings.Contains(r.stdout, "already running: "+first.URL) || strings.Contains(r.stdout, "password") {
		t.Fatalf("second up must report the running server without a new password: %s", r)
	}
	second := w.up("erin")
	if second.URL != first.URL || second.Password != "" {
		t.Fatalf("second up --json = %+v, want the same URL %s and no password", second, first.URL)
	}

	var rec struct{ PID int }
	data, err := os.ReadFile(filepath.Join(w.stateDir, "servers", "erin", "record.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &rec)
	if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status to notice the dead agent", 10*time.Second, func() bool { return w.status("erin").State == "failed" })

	third := w.up("erin")
	if third.State != "running" || !third.Ready || third.Password == "" {
		t.Fatalf("up after a killed agent = %+v, want a ready server and a new password", third)
	}
	b := newBrowser(t, third.URL, "")
	if resp := b.login(t, third.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login after recovery = %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, _, err := dialKernel(ctx, b, startKernel(t, b), b.origin())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if got := execute(ctx, t, conn, "print(6*7)"); got != "42\n" {
		t.Fatalf("after recovery print(6*7) printed %q", got)
	}
}

// TestTwoUsersAreIsolated: separate servers, ports and workspaces; a
// session cookie of one server is worthless at the other (cookies do not
// isolate by port).
func TestTwoUsersAreIsolated(t *testing.T) {
	w := newWorld(t, "")
	a, bo := w.up("frank"), w.up("grace")
	if a.URL == bo.URL || a.HealthURL == bo.HealthURL || a.Workspace == bo.Workspace {
		t.Fatalf("two users share a URL or workspace: %+v / %+v", a, bo)
	}
	ba := newBrowser(t, a.URL, "")
	if resp := ba.login(t, a.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login at frank's = %s", resp.Status)
	}
	bb := newBrowser(t, bo.URL, "")
	if resp := bb.login(t, bo.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login at grace's = %s", resp.Status)
	}
	graceKernel := startKernel(t, bb)

	// Frank's browser carries his cookies to grace's server.
	thief := newBrowser(t, bo.URL, "")
	for _, c := range ba.Jar.Cookies(ba.base) {
		thief.Jar.SetCookies(thief.base, []*http.Cookie{c})
	}
	if resp := thief.do(t, http.MethodGet, "/api/kernels", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("frank's cookie at grace's API = %s, want 401", resp.Status)
	}
	conn, resp, err := dialKernel(t.Context(), thief, graceKernel, thief.origin())
	if err == nil {
		conn.CloseNow()
		t.Error("frank's cookie opened grace's kernel websocket")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("frank's cookie at grace's websocket: %v, want 401", err)
	}
	// And the reverse is not the point, but the two stay logged in.
	if resp := ba.do(t, http.MethodGet, "/api/kernels", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("frank's own API = %s, want 200", resp.Status)
	}
	if resp := bb.do(t, http.MethodGet, "/api/kernels", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("grace's own API = %s, want 200", resp.Status)
	}
	os.WriteFile(filepath.Join(a.Workspace, "mine.txt"), []byte("frank"), 0o644)
	if _, err := os.Stat(filepath.Join(bo.Workspace, "mine.txt")); err == nil {
		t.Error("a file in frank's workspace shows up in grace's")
	}
}
