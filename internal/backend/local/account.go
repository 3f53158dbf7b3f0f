package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// An account is the OS user a server's agent, Jupyter and kernels run as.
//
// Run as root, spinbook gives each person their own account, so that one
// person's kernel can read nothing of another's: a login account of the
// same name (uid in the range of login accounts, not root), else a system
// account spinbook-USER that spinbook creates (no login shell, no password,
// home /nonexistent in /etc/passwd; HOME is STATE/homes/USER). Run as
// anyone else, every server runs as that user, and one OS user serves one
// person (see checkOnePerson).
type account struct {
	Name     string // the OS account's name
	UID, GID int
	Home     string // HOME of the server's processes
	Shell    string
	// Switch: the agent starts as this account (spinbook runs as root).
	Switch bool
}

// The uids of login accounts (Debian's /etc/login.defs UID_MIN..UID_MAX):
// an account of the person's name outside it (root, daemon, postgres,
// nobody) is never used for a server.
const (
	loginUIDMin = 1000
	loginUIDMax = 60000
)

// maxAccountName is the longest account name useradd accepts.
const maxAccountName = 32

// accountName is the system account spinbook creates for user: spinbook-USER,
// or for a long name its start and a hash (the same every time).
func accountName(user string) string {
	name := "spinbook-" + user
	if len(name) <= maxAccountName {
		return name
	}
	sum := sha256.Sum256([]byte(user))
	return "spinbook-" + user[:14] + "-" + hex.EncodeToString(sum[:4])
}

// account returns the account user's server runs as, creating it when
// spinbook runs as root and there is none.
func (l *Local) account(ctx context.Context, name string) (account, error) {
	if os.Geteuid() != 0 {
		return currentAccount()
	}
	home := filepath.Join(l.stateDir, "homes", name)
	if u, err := user.Lookup(name); err == nil {
		if acct, ok := loginAccount(u); ok {
			if acct.Home == "" {
				acct.Home = home // its own is missing
			}
			return acct, nil
		}
	}
	sys := accountName(name)
	acct, err := l.systemAccount(ctx, sys, name)
	if err != nil {
		return account{}, err
	}
	acct.Home = home
	return acct, nil
}

// loginAccount reports whether u is a person's login account, and
// describes it. Its home is its own when that directory exists.
func loginAccount(u *user.User) (account, bool) {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid < loginUIDMin || uid > loginUIDMax || gid == 0 {
		return account{}, false
	}
	acct := account{Name: u.Username, UID: uid, GID: gid, Switch: true, Shell: loginShell()}
	if fi, err := os.Stat(u.HomeDir); err == nil && fi.IsDir() {
		acct.Home = u.HomeDir
	}
	return acct, true
}

// systemAccount looks up the system account sys, made for spinbook user
// person, and creates it when it is missing. useradd is not safe to run
// twice at once (both succeed and one account is lost), so spinbook holds
// a machine-wide lock (accountsLock) while it looks and creates.
func (l *Local) systemAccount(ctx context.Context, sys, person string) (account, error) {
	unlock, err := l.lockFile(accountsLock(l.stateDir), true)
	if err != nil {
		return account{}, fmt.Errorf("create the OS account %s: %w", sys, err)
	}
	defer unlock()
	created := false
	for {
		if u, err := user.Lookup(sys); err == nil {
			uid, err1 := strconv.Atoi(u.Uid)
			gid, err2 := strconv.Atoi(u.Gid)
			if err1 != nil || err2 != nil || uid == 0 || gid == 0 {
				return account{}, fmt.Errorf("account %s has uid %s and gid %s: a server never runs as root or root's group; remove or fix that account", sys, u.Uid, u.Gid)
			}
			return account{Name: sys, UID: uid, GID: gid, Switch: true, Shell: loginShell()}, nil
		}
		if created {
			return account{}, fmt.Errorf("create the OS account %s for %s's server: useradd succeeded but the account is not in /etc/passwd", sys, person)
		}
		if err := useradd(ctx, sys, person); err != nil {
			return account{}, fmt.Errorf("create the OS account %s for %s's server: %w", sys, person, err)
		}
		created = true
		l.log.Info("created an OS account for the server", "user", person, "account", sys)
	}
}

// accountsLock is the file spinbook locks while it creates accounts: one
// for the machine (/run is root's), else one for the state dir.
func accountsLock(stateDir string) string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/spinbook-accounts.lock"
	}
	return filepath.Join(stateDir, "servers", "accounts.lock")
}

// useradd creates the system account name: its own group, no login shell,
// no password, no home in /etc/passwd (spinbook gives its processes one).
func useradd(ctx context.Context, name, person string) error {
	path, err := exec.LookPath("useradd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/useradd", "/sbin/useradd"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return errors.New("useradd not found (Debian: apt-get install passwd); or create the account yourself")
	}
	shell := "/usr/sbin/nologin"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/false"
	}
	cmd := exec.CommandContext(ctx, path, "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", shell,
		"--comment", "spinbook server of "+person, name)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// currentAccount is the account spinbook itself runs as (not root).
func currentAccount() (account, error) {
	acct := account{UID: os.Getuid(), GID: os.Getgid(), Home: os.Getenv("HOME"), Shell: os.Getenv("SHELL")}
	if u, err := user.LookupId(strconv.Itoa(acct.UID)); err == nil {
		acct.Name = u.Username
		if acct.Home == "" {
			acct.Home = u.HomeDir
		}
	}
	if acct.Name == "" {
		acct.Name = os.Getenv("USER")
	}
	return acct, nil
}

// loginShell is SHELL for a server's processes when spinbook runs as root:
// what Jupyter's terminals start.
func loginShell() string {
	if _, err := os.Stat("/bin/bash"); err == nil {
		return "/bin/bash"
	}
	return "/bin/sh"
}

// ErrOnePerson: spinbook, not run as root, already serves someone else
// from this state dir; all servers would run as one OS user and every
// kernel could read the other person's files.
var ErrOnePerson = errors.New("one OS user can serve one person; run as root to serve several")

// checkOnePerson refuses to serve user when the state dir holds another
// person's server or workspace (spinbook is not root). A lock on the state
// dir keeps two `up`s of different people from both passing.
func (l *Local) checkOnePerson(person string) error {
	if err := os.MkdirAll(filepath.Join(l.stateDir, "servers"), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	unlock, err := l.lockFile(filepath.Join(l.stateDir, "servers", "people.lock"), true)
	if err != nil {
		return err
	}
	defer unlock()
	var others []string
	for _, sub := range []string{"servers", "workspaces"} {
		entries, err := os.ReadDir(filepath.Join(l.stateDir, sub))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state dir: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || e.Name() == person || slices.Contains(others, e.Name()) {
				continue
			}
			if sub == "servers" {
				if _, err := os.Stat(filepath.Join(l.stateDir, sub, e.Name(), "record.json")); err != nil {
					continue // a log without a server
				}
			}
			others = append(others, e.Name())
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%w (%s already holds the server or workspace of %s; remove %s when that person is done with it)",
			ErrOnePerson, l.stateDir, strings.Join(others, ", "), filepath.Join(l.stateDir, "workspaces", others[0]))
	}
	// Claim the state dir for person while the lock is held.
	if err := os.MkdirAll(l.workspace(person), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}
