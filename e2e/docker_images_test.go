package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestDockerOnBothImages: everything spinbook does to an image works on
// Debian's notebook 6 and on a docker-stacks-shaped JupyterLab 4 image
// (what the default image: quay.io/jupyter/scipy-notebook is): the agent
// goes in, the team repo is cloned into ~/work, which belongs to the
// image's user, kernels run as that user with the warehouse's .pgpass and
// PG* variables, a terminal sees the checkout, and down pushes the work.
func TestDockerOnBothImages(t *testing.T) {
	for _, flavour := range []string{"notebook6", "lab4"} {
		t.Run(flavour, func(t *testing.T) {
			user := "dk-img-" + strings.TrimSuffix(strings.TrimSuffix(flavour, "6"), "4")
			w, cli := newDockerWorldOn(t, flavour, `warehouse:
  host: dw.example.invalid
  database: analytics
  user: nb
  password: ${env:SPINBOOK_E2E_DW_IMAGE}
`, user)
			w.env = append(w.env, "SPINBOOK_E2E_DW_IMAGE=canary-"+newID())
			g := dockerGitRemote(t, w, cli, nil)

			onImage(t, w, g, user, flavour)
		})
	}
}

// dockerGitRemote serves a team repo seeded with gitSeed where w's
// containers reach it (the network's gateway) and adds it to w's config.
// The config refuses a token over http:// to anything but loopback, so the
// server takes no token from the client: a proxy in front of it adds the
// credentials. (Token handling is the git tests'.) gate, when not nil, sees
// each request first and may answer it itself (a remote that is down, or
// slow).
func dockerGitRemote(t *testing.T, w *world, cli *client.Client, gate func(http.ResponseWriter, *http.Request) bool) *gittest.Server {
	t.Helper()
	if r := w.run("site", "up"); r.code != 0 {
		t.Fatalf("site up: %s", r)
	}
	n, err := cli.NetworkInspect(t.Context(), "spinbook-e2e", network.InspectOptions{})
	if err != nil || len(n.IPAM.Config) == 0 {
		t.Fatalf("network spinbook-e2e: %+v, %v", n.IPAM, err)
	}
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	ln, err := net.Listen("tcp", net.JoinHostPort(n.IPAM.Config[0].Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if gate != nil && gate(rw, r) {
			return
		}
		r.SetBasicAuth("e2e", token)
		g.ServeHTTP(rw, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f, err := os.OpenFile(w.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "repo:\n  url: http://%s/team.git\n  branch: main\n", ln.Addr())
	f.Close()
	return g
}

// onImage checks what spinbook does to an image, on a server of user
// brought up in w with the team repo g: kernels run as uid 1000 in
// ~/work holding the repo, with the warehouse's PG* variables and a 0600
// .pgpass; a terminal's git status sees a kernel's new file, and down
// pushes it.
func onImage(t *testing.T, w *world, g *gittest.Server, user, name string) {
	t.Helper()
	s := w.up(user)
	run := kernelSession(t, s)
	if got := strings.TrimSpace(run("import os; print(os.getuid(), os.getcwd())")); got != "1000 /home/jovyan/work" {
		t.Errorf("kernel uid and cwd = %q, want 1000 /home/jovyan/work", got)
	}
	if got := strings.TrimSpace(run("print(open('/home/jovyan/work/a.txt').read())")); got != strings.TrimSpace(gitSeed["a.txt"]) {
		t.Errorf("a.txt in the workspace reads %q, want the repo's", got)
	}
	pg := strings.TrimSpace(run(`import os, stat
p = os.environ.get("PGPASSFILE", "")
st = os.stat(p)
print(os.environ.get("PGHOST"), os.environ.get("PGUSER"), "PGPASSWORD" in os.environ, oct(stat.S_IMODE(st.st_mode)), st.st_uid)`))
	if pg != "dw.example.invalid nb False 0o600 1000" {
		t.Errorf("warehouse in the kernel = %q, want PGHOST, PGUSER, no PGPASSWORD, a 0600 .pgpass of uid 1000", pg)
	}
	run("open('/home/jovyan/work/from-" + name + ".txt', 'w').write('made on " + name + "\\n')")

	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	term := dialTerminal(ctx, t, b, startTerminal(t, b))
	out := terminalRun(ctx, t, term, `cd ~/work && git status --porcelain && echo done-$((6*7))`, "done-42")
	term.Close(websocket.StatusNormalClosure, "")
	if !strings.Contains(out, "?? from-"+name+".txt") {
		t.Errorf("git status in a terminal does not show the kernel's file:\n%s", out)
	}

	if r := w.run("down", "--user", user); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if got := g.Tree(t, "main")["from-"+name+".txt"]; got != "made on "+name+"\n" {
		t.Errorf("remote main after down holds from-%s.txt = %q, want the kernel's file", name, got)
	}
}
