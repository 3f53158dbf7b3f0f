// Package agentcmd is the command line of the agent binary,
// cmd/spinbook-agent. It accepts the command lines backends have always
// run, so that a container or pod can hold this binary under the name
// spinbook:
//
//	agent [--spec FILE | --spec-env VAR | --spec-fd N | --spec-stdin D [--control-token-file FILE]] [--host NAME]... [--debug]
//	agent read-control-token --file FILE
//	agent stage --bin-dir DIR --spec-from FILE --spec-to FILE --owner UID:GID [--workspace DIR]
//	aws delete-own-stack --stack NAME --region REGION [--wait D]
//	models put|get|ls|rm ...     (a kernel's `!spinbook models get`; see models.go)
//	git-credential get|store|erase
//	version
//
// It uses the standard library's flag package, not cobra, and none of the
// SDKs: the binary is copied into every server.
package agentcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/internal/buildinfo"
	"github.com/spinbook/spinbook/internal/gitwork"
)

// Exit codes, as the spinbook command line's.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks bad usage: exit code 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// stdio is where a command reads and writes.
type stdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Main runs the command args names and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// Run is Main with its context and streams given. The spinbook command
// line hands it `spinbook agent ...` and `spinbook aws delete-own-stack`,
// which stay there as hidden aliases.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := stdio{stdin, stdout, stderr}
	err := dispatch(ctx, args, s)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	if !errors.Is(err, errAgentLogged) {
		fmt.Fprintln(s.stderr, "Error:", err)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// exitCode ends Run with that code and no message (the agent's init
// returns its child's status).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

const usage = `spinbook-agent runs inside a server; backends start it, people do not need to.

Commands:
  agent [--spec FILE] ...        run the agent of one server
  agent read-control-token       print the control token kept by agent --control-token-file
  agent stage ...                prepare a kubernetes pod (init container)
  aws delete-own-stack ...       delete this server's own stack after an idle stop
  models put|get|ls|rm ...       the model store, as the command line's (kernels, terminals)
  imds-relay [--listen ADDR]     a spot instance's metadata relay for its server (aws)
  git-credential get             git's credential helper, answered by the agent
  version                        print the version
`

func dispatch(ctx context.Context, args []string, s stdio) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		// spinbook-agent --spec FILE: the agent itself.
		return runAgent(ctx, args, s)
	}
	switch args[0] {
	case "agent":
		if len(args) > 1 {
			switch args[1] {
			case "read-control-token":
				return readControlToken(args[2:], s)
			case "stage":
				return stage(args[2:], s)
			}
		}
		return runAgent(ctx, args[1:], s)
	case "aws":
		if len(args) > 1 && args[1] == "delete-own-stack" {
			return deleteOwnStackCmd(ctx, args[2:], s)
		}
		return usagef("aws: the agent knows only `aws delete-own-stack`")
	case "models":
		return modelsCmd(ctx, args[1:], s)
	case "imds-relay":
		return imdsRelay(ctx, args[1:], s)
	case "git-credential":
		// git's credential helper in the server (gitwork.Repo.Helper):
		// the agent answers it over its private socket.
		if len(args) != 2 {
			return usagef("git-credential: want one of get, store, erase")
		}
		return gitwork.CredentialHelper(args[1], s.stdin, s.stdout)
	case "version", "--version":
		fmt.Fprintf(s.stdout, "spinbook-agent %s (%s, %s/%s)\n", buildinfo.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(s.stdout, usage)
		return nil
	}
	return usagef("unknown command %q; this is the agent binary (run `spinbook-agent help`); the command line is spinbook", args[0])
}

// flags makes a flag set for command name whose errors go to stderr.
func flags(name string, s stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	return fs
}

// parse parses args, which take no positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
