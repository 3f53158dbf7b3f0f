// Package cli is spinbook's command line: one file per command, each
// turning flags and config into calls on a backend and printing the result.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agentcmd"
	"github.com/spinbook/spinbook/internal/config"
)

// Exit codes, as DESIGN.md promises scripts.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as bad usage or bad config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// env is what every command shares: global flags and where output goes.
type env struct {
	configPath string
	user       userFlag
	json       bool
	debug      bool
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

// Main runs the command line with args and returns the process exit code.
func Main(args []string) int {
	return run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if isAgentCommand(args) {
		return agentcmd.Run(ctx, args, stdin, stdout, stderr)
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "Error:", err)
	if e.debug {
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			fmt.Fprintf(stderr, "  caused by (%T): %v\n", u, u)
		}
	}
	var ue usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) || isFlagError(err) {
		return exitUsage
	}
	return exitFailure
}

// isAgentCommand reports whether args are a command of the agent binary
// (cmd/spinbook-agent) that this one still answers, hidden, for command
// lines written before the agent was its own binary: `spinbook agent ...`
// and `spinbook aws delete-own-stack ...`.
func isAgentCommand(args []string) bool {
	return len(args) > 0 && args[0] == "agent" || len(args) > 1 && args[0] == "aws" && args[1] == "delete-own-stack"
}

// isFlagError recognises cobra's errors for bad flags and arguments.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "bad flag syntax"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "spinbook",
		Short: "A powerful Jupyter server for each member of a data team, on demand",
		Long: `spinbook brings up your own Jupyter server with one command — on this machine,
on a Docker Engine, on Kubernetes or on AWS (backend: in the config) — already holding the
team's repo and the warehouse and model-store credentials, reachable only from
allowed networks and only after a password; and takes it away again with one
command, saving your work to git first.

Configuration comes from --config, else $SPINBOOK_CONFIG, else ./spinbook.yaml,
else $XDG_CONFIG_HOME/spinbook/config.yaml; with none, spinbook runs servers on
this machine, reachable from this machine only, with a generated password.
After ` + "`spinbook login PORTAL_URL`" + `, up, down, status, ls, save and extend go
through that team portal instead, unless --config or $SPINBOOK_CONFIG is given.`,
		Example: `  spinbook up                 # start your server, print its URL and password
  spinbook status             # is it running? where?
  spinbook down               # stop it (the workspace is kept)
  spinbook init               # write a commented spinbook.yaml to edit`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.configPath, "config", "", "config file (default ./spinbook.yaml, then $XDG_CONFIG_HOME/spinbook/config.yaml)")
	pf.VarP(&e.user, "user", "u", "whose server (default $SPINBOOK_USER, then your OS user name; through a portal, the token's user)")
	pf.BoolVar(&e.json, "json", false, "print results as JSON, for scripts")
	pf.BoolVar(&e.debug, "debug", false, "show debug logs and the whole error chain")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newInit(e), newUp(e), newDown(e), newStatus(e), newLs(e), newLogs(e),
		newPassword(e), newVersion(e), newPortal(e),
	)
	root.AddCommand(newModels(e))
	root.AddCommand(newSite(e))
	root.AddCommand(newAWS(e))
	root.AddCommand(newSave(e), newGitCredential())
	root.AddCommand(newExtend(e))
	root.AddCommand(newLogin(e), newLogout(e))
	return root
}

// logger is the command line's own log: warnings by default, all with --debug.
func (e *env) logger() *slog.Logger {
	level := slog.LevelWarn
	if e.debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// loadConfig finds and loads the config; with none, the defaults.
func (e *env) loadConfig() (*config.Config, error) {
	path, err := config.Find(e.configPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("config file %s does not exist: create one with `spinbook init --config %s` or drop --config", e.configPath, e.configPath)
		}
		return nil, usageError{err}
	}
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// resolveUser picks whose server a command acts on: --user, then
// $SPINBOOK_USER, then the OS user; always validated.
func (e *env) resolveUser() (string, error) {
	name, from := e.user.name, "--user"
	if !e.user.set {
		name, from = os.Getenv("SPINBOOK_USER"), "$SPINBOOK_USER"
	}
	if name == "" && !e.user.set {
		u, err := user.Current()
		if err != nil {
			return "", usagef("cannot tell who you are (%v): pass --user NAME", err)
		}
		name, from = strings.ToLower(u.Username), "your OS user name"
	}
	if err := config.ValidateUser(name); err != nil {
		return "", usagef("%s: %w", from, err)
	}
	return name, nil
}

// userFlag is --user, remembering whether it was given at all, so that
// --user "" is an error rather than a silent fall-back to the OS user.
type userFlag struct {
	name string
	set  bool
}

func (f *userFlag) String() string     { return f.name }
func (f *userFlag) Set(v string) error { f.name, f.set = v, true; return nil }
func (f *userFlag) Type() string       { return "NAME" }
