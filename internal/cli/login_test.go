package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runCLIIn runs the command line with stdin and returns exit code and output.
func runCLIIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// portalHome gives the test its own config dir and no config file.
func portalHome(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("SPINBOOK_CONFIG", "")
	t.Setenv("SPINBOOK_USER", "")
	t.Chdir(t.TempDir())
	return filepath.Join(dir, "spinbook", "portal.json")
}

func TestLogin(t *testing.T) {
	p := newStandinPortal(t)
	good := p.token("alice", false)
	revoked := p.token("alice", false)
	p.revoke(revoked)
	other := strings.Replace(good, "sbp_", "sbp_", 1)[:len(good)-1] + "A"
	if other == good {
		other = good[:len(good)-1] + "B"
	}

	tests := []struct {
		name     string
		url      string
		stdin    string
		want     int
		inStderr string
	}{
		{"good token", p.URL, good + "\n", exitOK, "now go through the portal"},
		{"good token, trailing slash and spaces", p.URL + "/", "  " + good + "  \n", exitOK, ""},
		{"unknown token", p.URL, other + "\n", exitFailure, "Tokens page"},
		{"revoked token", p.URL, revoked + "\n", exitFailure, "revoked"},
		{"not a token", p.URL, "hunter2\n", exitUsage, "not a portal API token"},
		{"no token", p.URL, "", exitUsage, "no token on stdin"},
		{"plain http elsewhere", "http://notebooks.example.com", good + "\n", exitUsage, "unencrypted"},
		{"not a URL", "notebooks", good + "\n", exitUsage, "not a portal URL"},
		{"nothing listening", "http://127.0.0.1:9", good + "\n", exitFailure, "cannot reach the portal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := portalHome(t)
			code, stdout, stderr := runCLIIn(t, tt.stdin, "login", tt.url)
			if code != tt.want || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("login: exit %d, stderr %q; want %d and %q", code, stderr, tt.want, tt.inStderr)
			}
			for _, tok := range []string{good, revoked, other} {
				if strings.Contains(stdout+stderr, tok) {
					t.Fatalf("the token is in the output: %q %q", stdout, stderr)
				}
			}
			fi, err := os.Stat(path)
			if tt.want != exitOK {
				if err == nil {
					t.Fatalf("a failed login left %s", path)
				}
				return
			}
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("the login file: %v, mode %v; want 0600", err, fi.Mode().Perm())
			}
			var l portalLogin
			raw, _ := os.ReadFile(path)
			if err := json.Unmarshal(raw, &l); err != nil || l.URL != p.URL || l.Token != good {
				t.Fatalf("the login file holds %+v, %v; want %s and the token", l, err, p.URL)
			}
			if !strings.Contains(stdout, "as alice") {
				t.Fatalf("login says %q, want it to name alice", stdout)
			}
		})
	}
}

// TestFailedLoginKeepsTheOldOne: a refused token leaves the login as it was.
func TestFailedLoginKeepsTheOldOne(t *testing.T) {
	p := newStandinPortal(t)
	path := portalHome(t)
	good := p.token("alice", false)
	if code, _, stderr := runCLIIn(t, good+"\n", "login", p.URL); code != exitOK {
		t.Fatalf("login: %d %s", code, stderr)
	}
	before, _ := os.ReadFile(path)
	bad := p.token("bob", false)
	p.revoke(bad)
	if code, _, _ := runCLIIn(t, bad+"\n", "login", p.URL); code != exitFailure {
		t.Fatalf("login with a revoked token: exit %d, want %d", code, exitFailure)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatalf("a refused login changed %s", path)
	}
	if code, stdout, stderr := runCLIIn(t, "", "status"); code != exitOK || !strings.Contains(stdout, "alice") {
		t.Fatalf("status after a refused login: %d %q %q", code, stdout, stderr)
	}
}

// TestThroughPortal: logged in, the server commands act through the
// portal, print as they do with a backend, and never show the token.
func TestThroughPortal(t *testing.T) {
	p := newStandinPortal(t)
	portalHome(t)
	tok := p.token("alice", false)
	p.token("bob", false)
	if code, _, stderr := runCLIIn(t, tok+"\n", "login", p.URL); code != exitOK {
		t.Fatalf("login: %d %s", code, stderr)
	}

	steps := []struct {
		args     []string
		want     int
		inStdout string
		inStderr string
	}{
		{[]string{"status"}, exitOK, "portal:     " + p.URL, ""},
		{[]string{"up", "--size", "small"}, exitOK, "alice's server is ready: https://alice.notebooks.example.com", "creating alice's container"},
		{[]string{"up"}, exitOK, "alice's server is already running", "through the portal"},
		{[]string{"up", "--size", "huge"}, exitUsage, "", `size "huge" is not one of the portal's sizes`},
		{[]string{"status"}, exitOK, "running (ready)", ""},
		{[]string{"status"}, exitOK, "$0.00 so far, $0.25/h", ""},
		{[]string{"ls"}, exitOK, "small", ""},
		{[]string{"ls"}, exitOK, "alice", ""},
		{[]string{"save", "-m", "first"}, exitOK, "is on the remote branch main", "saving alice's workspace through the portal"},
		{[]string{"extend", "--for", "2h"}, exitOK, "alice's server now stops at", ""},
		{[]string{"status", "--user", "bob"}, exitFailure, "", "there is no server of bob that you may see"},
		{[]string{"down", "--user", "bob"}, exitFailure, "", "there is no server of bob that you may see"},
		{[]string{"down"}, exitOK, "alice's server is down; the workspace is kept", "saving alice's work"},
		{[]string{"down"}, exitOK, "alice has no server; nothing to do", ""},
		{[]string{"save"}, exitFailure, "", "alice's server is not running: start it first"},
	}
	for _, s := range steps {
		code, stdout, stderr := runCLIIn(t, "", s.args...)
		if code != s.want || !strings.Contains(stdout, s.inStdout) || !strings.Contains(stderr, s.inStderr) {
			t.Fatalf("spinbook %v: exit %d\nstdout %q\nstderr %q\nwant exit %d, %q in stdout, %q in stderr", s.args, code, stdout, stderr, s.want, s.inStdout, s.inStderr)
		}
		if strings.Contains(stdout+stderr, tok) {
			t.Fatalf("spinbook %v printed the token", s.args)
		}
	}
	want := []string{"POST /api/v1/servers/alice/start", "POST /api/v1/servers/alice/save", "POST /api/v1/servers/alice/extend", "POST /api/v1/servers/alice/stop"}
	for _, w := range want {
		if !slices.Contains(p.calls, w) {
			t.Errorf("the portal never got %s; it got %v", w, p.calls)
		}
	}

	// ls --json is the shape `ls --json` always had: alice sees only hers.
	runCLIIn(t, "", "up")
	code, stdout, _ := runCLIIn(t, "", "ls", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(stdout), &list); code != exitOK || err != nil || len(list) != 1 || list[0]["user"] != "alice" || list[0]["state"] != "running" {
		t.Fatalf("ls --json: exit %d, %v, %s", code, err, stdout)
	}

	// A revoked token: every command says so and what to do.
	p.revoke(tok)
	code, _, stderr := runCLIIn(t, "", "status")
	if code != exitFailure || !strings.Contains(stderr, "revoked") || !strings.Contains(stderr, "spinbook login") {
		t.Fatalf("status with a revoked token: exit %d, %q", code, stderr)
	}
}

// TestConfigBeatsLogin: --config (or $SPINBOOK_CONFIG) uses the config's
// backend even while logged in; logout forgets the login, twice is fine.
func TestConfigBeatsLogin(t *testing.T) {
	p := newStandinPortal(t)
	path := portalHome(t)
	if code, _, stderr := runCLIIn(t, p.token("alice", false)+"\n", "login", p.URL); code != exitOK {
		t.Fatalf("login: %d %s", code, stderr)
	}
	cfg := filepath.Join(t.TempDir(), "spinbook.yaml")
	state := t.TempDir()
	if err := os.WriteFile(cfg, []byte("backend: local\nlocal: {state_dir: "+state+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLIIn(t, "", "status", "--config", cfg, "--user", "alice")
	if code != exitOK || strings.Contains(stdout, "portal:") || !strings.Contains(stdout, "backend:    local") {
		t.Fatalf("status --config while logged in: exit %d %q %q; want the local backend", code, stdout, stderr)
	}
	t.Setenv("SPINBOOK_CONFIG", cfg)
	if _, stdout, _ := runCLIIn(t, "", "status", "--user", "alice"); strings.Contains(stdout, "portal:") {
		t.Fatalf("status with $SPINBOOK_CONFIG while logged in went to the portal: %q", stdout)
	}
	t.Setenv("SPINBOOK_CONFIG", "")

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLIIn(t, "", "status"); code != exitUsage || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("status with a login others can read: exit %d %q; want exit 2 and chmod 600", code, stderr)
	}

	for i, want := range []string{"logged out of " + p.URL, "not logged in"} {
		code, stdout, _ := runCLIIn(t, "", "logout")
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Fatalf("logout #%d: exit %d %q; want %q", i+1, code, stdout, want)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("logout left %s: %v", path, err)
	}
}
