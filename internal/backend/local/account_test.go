package local

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestAccountName(t *testing.T) {
	long := strings.Repeat("a", 28)
	tests := []struct {
		name, user, want string
	}{
		{"short", "alice", "spinbook-alice"},
		{"exactly 32", strings.Repeat("b", 23), "spinbook-" + strings.Repeat("b", 23)},
		{"too long: start and hash", long, accountName(long)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := accountName(tc.user)
			if got != tc.want || len(got) > maxAccountName || !strings.HasPrefix(got, "spinbook-") {
				t.Errorf("accountName(%q) = %q (%d chars), want %q, at most %d", tc.user, got, len(got), tc.want, maxAccountName)
			}
		})
	}
	if accountName(long) == accountName(long[:27]+"b") {
		t.Error("two long names that differ at the end share an account")
	}
}

func TestLoginAccount(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name     string
		u        user.User
		ok       bool
		wantHome string
	}{
		{"person", user.User{Username: "alice", Uid: "1001", Gid: "1001", HomeDir: home}, true, home},
		{"person without a home", user.User{Username: "alice", Uid: "1001", Gid: "1001", HomeDir: "/nonexistent"}, true, ""},
		{"root", user.User{Username: "root", Uid: "0", Gid: "0", HomeDir: "/root"}, false, ""},
		{"system account", user.User{Username: "postgres", Uid: "105", Gid: "110", HomeDir: home}, false, ""},
		{"nobody", user.User{Username: "nobody", Uid: "65534", Gid: "65534", HomeDir: "/nonexistent"}, false, ""},
		{"root's group", user.User{Username: "odd", Uid: "1002", Gid: "0", HomeDir: home}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acct, ok := loginAccount(&tc.u)
			if ok != tc.ok || (ok && (acct.Home != tc.wantHome || !acct.Switch)) {
				t.Errorf("loginAccount(%+v) = %+v, %v; want ok %v, home %q", tc.u, acct, ok, tc.ok, tc.wantHome)
			}
		})
	}
}

// TestSystemAccountConcurrent: two `up`s creating the same account at
// once both end with it (useradd fails for the loser).
func TestSystemAccountConcurrent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create accounts (CI runs as root)")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "spinbook-t" + hex.EncodeToString(b)
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	l := &Local{stateDir: t.TempDir(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var wg sync.WaitGroup
	accts := make([]account, 4)
	errs := make([]error, 4)
	for i := range accts {
		wg.Go(func() { accts[i], errs[i] = l.systemAccount(t.Context(), name, "t") })
	}
	wg.Wait()
	for i := range accts {
		if errs[i] != nil {
			t.Fatalf("systemAccount #%d: %v", i, errs[i])
		}
		if accts[i].UID != accts[0].UID || accts[i].UID == 0 || !accts[i].Switch {
			t.Fatalf("systemAccount #%d = %+v, #0 = %+v", i, accts[i], accts[0])
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if u.HomeDir != "/nonexistent" {
		t.Errorf("home in /etc/passwd = %q, want /nonexistent", u.HomeDir)
	}
}

// TestAccountPrefersLoginAccount: a person with a login account of their
// name runs as it; without a home of its own, HOME is under the state dir.
func TestAccountPrefersLoginAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create accounts (CI runs as root)")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "sbt" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	l := &Local{stateDir: t.TempDir(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	acct, err := l.account(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := user.Lookup(name)
	if acct.Name != name || strconv.Itoa(acct.UID) != u.Uid || !acct.Switch {
		t.Errorf("account(%s) = %+v, want the login account (uid %s)", name, acct, u.Uid)
	}
	if want := filepath.Join(l.stateDir, "homes", name); acct.Home != want {
		t.Errorf("HOME = %q, want %q (its own home is missing)", acct.Home, want)
	}
	if _, err := user.Lookup(accountName(name)); err == nil {
		t.Errorf("account %s was created although %s exists", accountName(name), name)
	}
}
