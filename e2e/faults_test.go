package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
)

// The fault suite: every way a server can be stopped, starved or cut off
// in the middle of its work, on every backend that runs here, each counting
// the commits and files it lost — which must be 0. The table it prints is
// the one in docs/guarantees.md.
//
// Lost means: a commit made in the workspace that is neither on a branch of
// the remote nor in a bundle that survives the server (the model store, or
// the backend's bundle directory); a file written in the workspace whose
// content exists nowhere afterwards (the workspace, kept across down and up,
// counts as somewhere).

// faultRow is one scenario. run strikes the fault at user's server and
// drives it to its end as a person would (bring the remote back, up, down),
// noting in l what was made; it returns a count of losses it measured on
// the way (faultEnv.measure), or 0. The suite counts once more at the end.
type faultRow struct {
	name string
	run  func(t *testing.T, e *faultEnv, user string, l *ledger) int
}

var faultRows = []faultRow{
	{"remote down at down", rowRemoteDownAtDown},
	{"token revoked at down", rowTokenRevokedAtDown},
	{"idle stop with the remote down", rowIdleStopRemoteDown},
	{"SIGKILL of the agent mid-push", rowKillMidPush},
	{"full workspace disk during save", rowFullDisk},
	{"machine rebooted, then up", rowReboot},
	{"two ups at the same moment", rowTwoUps},
	{"down while a kernel writes", rowDownWhileKernelWrites},
}

// faultTable collects scenario -> lost across backends.
type faultTable struct {
	mu   sync.Mutex
	rows []faultResult
}

type faultResult struct {
	scenario, backend string
	lost              int
	failed, omitted   bool
}

func (ft *faultTable) add(r faultResult) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.rows = append(ft.rows, r)
}

// String renders the table as the markdown docs/guarantees.md keeps.
func (ft *faultTable) String() string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	order := map[string]int{}
	for i, r := range faultRows {
		order[r.name] = i
	}
	rows := append([]faultResult(nil), ft.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return order[rows[i].scenario] < order[rows[j].scenario] })
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| scenario\t backend\t lost\t")
	fmt.Fprintln(tw, "|---\t---\t---\t")
	for _, r := range rows {
		lost := fmt.Sprint(r.lost)
		if r.omitted {
			lost = "not run"
		} else if r.failed {
			lost += " (row failed)"
		}
		fmt.Fprintf(tw, "| %s\t %s\t %s\t\n", r.scenario, r.backend, lost)
	}
	tw.Flush()
	return b.String()
}

// TestFaults runs every row on every backend present. The table goes to
// the test log, and to $SPINBOOK_FAULT_TABLE when that names a file.
func TestFaults(t *testing.T) {
	table := &faultTable{}
	t.Cleanup(func() {
		t.Logf("fault suite: commits and files lost\n%s", table)
		if path := os.Getenv("SPINBOOK_FAULT_TABLE"); path != "" {
			if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
				t.Errorf("write the fault table: %v", err)
			}
		}
	})
	backends := []struct {
		name string
		new  func(t *testing.T, users []string) *faultEnv
	}{
		{"local", func(t *testing.T, _ []string) *faultEnv { return newLocalFaultEnv(t) }},
		{"docker", newDockerFaultEnv},
		{"kubernetes", func(t *testing.T, _ []string) *faultEnv { return newK8sFaultEnv(t) }},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			var users []string
			for i := range faultRows {
				users = append(users, fmt.Sprintf("ft-%s-%d", be.name[:2], i))
			}
			e := be.new(t, users)
			for i, row := range faultRows {
				if why, ok := e.omit[row.name]; ok {
					t.Logf("%s: not run on %s: %s", row.name, e.name, why)
					table.add(faultResult{scenario: row.name, backend: e.name, omitted: true})
					continue
				}
				user := users[i]
				if e.user != nil {
					user = e.user(i)
				}
				t.Run(row.name, func(t *testing.T) {
					l := &ledger{}
					measured := 0
					defer func() {
						missing := e.lost(t, user, l)
						for _, m := range missing {
							t.Errorf("lost: %s", m)
						}
						lost := max(measured, len(missing))
						if lost > 0 {
							t.Errorf("%s on %s lost %d commit(s) or file(s)", row.name, e.name, lost)
						}
						table.add(faultResult{scenario: row.name, backend: e.name, lost: lost, failed: t.Failed()})
					}()
					measured = row.run(t, e, user, l)
				})
			}
		})
	}
}

// ledger is what a row made in a workspace: commits, and pieces of files
// (a piece is kept when some copy of its file contains it).
type ledger struct {
	// w is the world the row's server lives in; nil means the env's.
	w       *world
	commits []string
	pieces  []piece
}

type piece struct{ path, text string }

// commit writes a new file with unique content into the workspace and
// commits it by hand, as a person in a terminal would; size bytes of
// random (incompressible) text, at least a line.
func (l *ledger) commit(t *testing.T, e *faultEnv, ws string, size int) string {
	t.Helper()
	name := "committed-" + newID()[:8] + ".txt"
	text := uniqueText(size)
	writeWorkspace(t, e, ws, name, text)
	wsGit(t, ws, "add", name)
	wsGit(t, ws, "commit", "-q", "-m", "by hand: "+name)
	e.backend.fixOwner(t, ws)
	c := strings.TrimSpace(wsGit(t, ws, "rev-parse", "HEAD"))
	l.commits = append(l.commits, c)
	l.pieces = append(l.pieces, piece{name, text})
	return c
}

// write writes a new file into the workspace and leaves it uncommitted.
func (l *ledger) write(t *testing.T, e *faultEnv, ws string) {
	t.Helper()
	name := "unsaved-" + newID()[:8] + ".txt"
	text := uniqueText(0)
	writeWorkspace(t, e, ws, name, text)
	l.pieces = append(l.pieces, piece{name, text})
}

func uniqueText(size int) string {
	s := "written by the fault suite " + newID() + "\n"
	if size > len(s) {
		buf := make([]byte, (size-len(s))/2)
		rand.Read(buf)
		s += fmt.Sprintf("%x\n", buf)
	}
	return s
}

func writeWorkspace(t *testing.T, e *faultEnv, ws, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ws, name), []byte(text), 0o644); err != nil {
		t.Fatalf("write %s into the workspace: %v", name, err)
	}
	e.backend.fixOwner(t, ws)
}

// wsGit runs git in a workspace as the test (root, on the host) may,
// whoever owns it.
func wsGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitIn(dir, append([]string{"-c", "safe.directory=*"}, args...)...)
	if err != nil {
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return out
}

// gitIn runs git in dir with no system or global config and a fixed
// identity; the error carries git's message.
func gitIn(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.invalid")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// measure counts what of l is lost now, failing the test for each.
func (e *faultEnv) measure(t *testing.T, user string, l *ledger) int {
	t.Helper()
	missing := e.lost(t, user, l)
	for _, m := range missing {
		t.Errorf("lost: %s", m)
	}
	return len(missing)
}

// lost says what of l exists nowhere: commits neither on a branch of the
// remote nor in a surviving bundle; pieces in no copy of their file (the
// workspace, a remote branch, a bundle).
func (e *faultEnv) lost(t *testing.T, user string, l *ledger) []string {
	t.Helper()
	if len(l.commits)+len(l.pieces) == 0 {
		return nil
	}
	// A scratch repository holding every branch of the remote and every
	// head of every bundle that survived.
	w := e.w
	if l.w != nil {
		w = l.w
	}
	scratch := t.TempDir()
	wsGit(t, scratch, "init", "-q", "--bare")
	wsGit(t, scratch, "fetch", "-q", e.remote.git.Bare, "+refs/heads/*:refs/remote/*")
	var bundles []string
	for _, dir := range e.backend.bundleDirs(t, w, user) {
		found, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
		bundles = append(bundles, found...)
	}
	for i, b := range bundles {
		heads, err := gitIn(scratch, "bundle", "list-heads", b)
		if err != nil {
			t.Logf("bundle %s cannot be read: %v", b, err)
			continue
		}
		for j, line := range strings.Split(strings.TrimSpace(heads), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			if _, err := gitIn(scratch, "fetch", "-q", b, fmt.Sprintf("+%s:refs/bundle/%d/%d", f[1], i, j)); err != nil {
				t.Logf("bundle %s does not restore %s: %v", b, f[1], err)
			}
		}
	}
	refs := strings.Fields(wsGit(t, scratch, "for-each-ref", "--format=%(refname)"))

	var lost []string
	for _, c := range l.commits {
		if out, err := gitIn(scratch, "for-each-ref", "--contains", c); err != nil || strings.TrimSpace(out) == "" {
			lost = append(lost, fmt.Sprintf("commit %.12s is on no branch of the remote and in no bundle (bundles: %v)", c, bundles))
		}
	}
	ws := e.backend.workspace(t, w, user)
	for _, p := range l.pieces {
		if data, err := os.ReadFile(filepath.Join(ws, p.path)); err == nil && strings.Contains(string(data), p.text) {
			continue
		}
		kept := false
		for _, ref := range refs {
			if data, err := gitIn(scratch, "show", ref+":"+p.path); err == nil && strings.Contains(data, p.text) {
				kept = true
				break
			}
		}
		if !kept {
			lost = append(lost, fmt.Sprintf("%q of %s is in no copy of the file (workspace, remote, bundles)", firstLine(p.text), p.path))
		}
	}
	return lost
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestFaultLedgerCountsLoss: the suite's counter sees a loss when there is
// one — a commit only in a workspace, a file gone — and sees the work kept
// once it is on the remote, or in a bundle in the backend's bundle
// directory.
func TestFaultLedgerCountsLoss(t *testing.T) {
	w := &world{t: t, stateDir: t.TempDir()}
	e := &faultEnv{name: "local", w: w, backend: localFaults{}, remote: newFaultRemote(t, "127.0.0.1", true)}
	ws := e.backend.workspace(t, w, "u")
	wsGit(t, w.stateDir, "clone", "-q", e.remote.URL(), ws)
	l := &ledger{}
	c := l.commit(t, e, ws, 0)
	l.write(t, e, ws)
	if got := e.lost(t, "u", l); len(got) != 1 || !strings.Contains(got[0], c[:12]) {
		t.Fatalf("a commit only in the workspace: lost = %q, want that commit", got)
	}
	if err := os.Remove(filepath.Join(ws, l.pieces[1].path)); err != nil {
		t.Fatal(err)
	}
	if got := e.lost(t, "u", l); len(got) != 2 {
		t.Fatalf("a commit only in the workspace and a deleted file: lost = %q, want both", got)
	}

	// The commit in a bundle in the backend's bundle directory: kept, and
	// so is the committed file once the workspace loses it too.
	bundles := e.backend.bundleDirs(t, w, "u")[0]
	os.MkdirAll(bundles, 0o700)
	wsGit(t, ws, "bundle", "create", "-q", filepath.Join(bundles, "x.bundle"), "HEAD", "--not", "--remotes=origin")
	if err := os.Remove(filepath.Join(ws, l.pieces[0].path)); err != nil {
		t.Fatal(err)
	}
	if got := e.lost(t, "u", l); len(got) != 1 || !strings.Contains(got[0], l.pieces[1].path) {
		t.Fatalf("the commit in a bundle: lost = %q, want only the deleted, uncommitted file", got)
	}
	// On the remote, the bundle gone: kept.
	os.RemoveAll(bundles)
	wsGit(t, ws, "push", "-q", "origin", "HEAD:refs/heads/elsewhere")
	if got := e.lost(t, "u", l); len(got) != 1 {
		t.Fatalf("the commit on a remote branch: lost = %q, want only the deleted, uncommitted file", got)
	}
}
