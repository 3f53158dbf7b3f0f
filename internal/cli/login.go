package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/portal/client"
)

// portalLogin is what `spinbook login` keeps, 0600, in loginPath().
type portalLogin struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// loginPath is where the login is kept: $XDG_CONFIG_HOME/spinbook/portal.json.
func loginPath() (string, error) {
	dir := config.UserConfigDir()
	if dir == "" {
		return "", usagef("cannot tell where to keep the login: set $HOME or $XDG_CONFIG_HOME")
	}
	return filepath.Join(dir, "spinbook", "portal.json"), nil
}

func newLogin(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "login PORTAL_URL",
		Short: "Use a team portal: up, down, status, ls, save and extend go through it",
		Long: `Log in to a spinbook portal with a personal API token, made on the portal's
Tokens page (it is shown once there). login reads the token from the terminal
without echo, or one line from stdin; never pass it as an argument. It checks
the token with the portal, then keeps the address and the token in
$XDG_CONFIG_HOME/spinbook/portal.json (mode 0600).

While logged in, up, down, status, ls, save and extend act through the portal,
which holds the backend's credentials: you need none. They act on your own
server (the user the token belongs to) unless --user names another, which the
portal allows admins only. The login wins over a config file found by itself
(./spinbook.yaml or $XDG_CONFIG_HOME/spinbook/config.yaml); --config or
$SPINBOOK_CONFIG makes a command use that config's backend directly instead.
` + "`spinbook status`" + ` says which it used. ` + "`spinbook logout`" + ` forgets the login.

The portal's address must be https://, or http:// to this machine only.`,
		Example: `  spinbook login https://notebooks.example.com          # prompts for the token
  pass show spinbook-token | spinbook login https://notebooks.example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := client.CheckURL(args[0])
			if err != nil {
				return usageError{fmt.Errorf("login: %w", err)}
			}
			token, err := e.readSecret("API token (from the portal's Tokens page): ", "token")
			if err != nil {
				return err
			}
			token = strings.TrimSpace(token)
			if err := client.CheckToken(token); err != nil {
				return usageError{fmt.Errorf("login: %w", err)}
			}
			path, err := loginPath()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			me, err := client.New(base, token, nil).Me(ctx)
			if err != nil {
				return fmt.Errorf("login to %s: %w", base, err) // the old login, if any, is kept
			}
			data, err := json.MarshalIndent(portalLogin{URL: base, Token: token}, "", "  ")
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("login: keep the login: %w", err)
			}
			if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
				return fmt.Errorf("login: keep the login: %w", err)
			}
			role := ""
			if me.Admin {
				role = " (admin)"
			}
			fmt.Fprintf(e.stdout, "logged in to %s as %s%s\n", base, me.User, role)
			fmt.Fprintf(e.stderr, "  up, down, status, ls, save and extend now go through the portal; the token is in %s\n", path)
			return nil
		},
	}
}

func newLogout(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the portal login; commands use the config's backend again",
		Long: `Delete the login that ` + "`spinbook login`" + ` keeps. The token itself stays valid
until you revoke it on the portal's Tokens page. logout is safe to repeat.`,
		Example: `  spinbook logout`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := loginPath()
			if err != nil {
				return err
			}
			// A broken file is removed all the same: that is the way out.
			l := portalLogin{URL: "the portal"}
			if raw, err := os.ReadFile(path); err == nil {
				json.Unmarshal(raw, &l)
			}
			if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintln(e.stdout, "not logged in to a portal; nothing to do")
				return nil
			} else if err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			fmt.Fprintf(e.stdout, "logged out of %s\n", l.URL)
			fmt.Fprintln(e.stderr, "  the token stays valid until you revoke it on the portal's Tokens page")
			return nil
		},
	}
}

// readLogin reads and checks the kept login; a missing one is fs.ErrNotExist.
func readLogin(path string) (*portalLogin, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, usagef("%s holds a portal token but others may read it (mode %v): run `chmod 600 %s`, or `spinbook logout` and log in again", path, fi.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the portal login: %w", err)
	}
	var l portalLogin
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, usagef("%s is not a spinbook login (%v): run `spinbook logout`, then `spinbook login URL`", path, err)
	}
	if _, err := client.CheckURL(l.URL); err != nil {
		return nil, usagef("%s: %v: run `spinbook logout`, then `spinbook login URL`", path, err)
	}
	if client.CheckToken(l.Token) != nil {
		return nil, usagef("%s holds no valid token: run `spinbook logout`, then `spinbook login URL`", path)
	}
	return &l, nil
}

// portal returns the client of the portal the person logged in to, or nil
// when commands should use a backend directly: no login, or --config or
// $SPINBOOK_CONFIG name a config.
func (e *env) portal() (*client.Client, error) {
	if e.configPath != "" || os.Getenv("SPINBOOK_CONFIG") != "" {
		return nil, nil
	}
	path, err := loginPath()
	if err != nil {
		return nil, nil // no home: no login either
	}
	l, err := readLogin(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return client.New(l.URL, l.Token, nil), nil
}

// portalUser is whose server a command acts on through the portal: --user,
// else the token's own user.
func (e *env) portalUser(ctx context.Context, pc *client.Client) (string, error) {
	if e.user.set {
		if err := config.ValidateUser(e.user.name); err != nil {
			return "", usagef("--user: %w", err)
		}
		return e.user.name, nil
	}
	me, err := pc.Me(ctx)
	if err != nil {
		return "", err
	}
	return me.User, nil
}

// readSecret reads one secret without echo from a terminal (after
// prompt), else one line from stdin.
func (e *env) readSecret(prompt, what string) (string, error) {
	if f, ok := e.stdinTerminal(); ok {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", what, err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no %s on stdin: pipe one in, or run in a terminal to be prompted", what)
	}
	return line, nil
}

// stdinTerminal returns stdin when it is a terminal.
func (e *env) stdinTerminal() (*os.File, bool) {
	f, ok := e.stdin.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}
