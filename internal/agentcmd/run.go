package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/buildinfo"
	"github.com/spinbook/spinbook/internal/secret"
)

// errAgentLogged: the agent already logged why it failed.
var errAgentLogged = errors.New("agent failed; see the log above")

// runAgent runs the agent of one server: start Jupyter, serve the front
// door and the health listener, and stop everything cleanly on SIGTERM.
// The spec file (--spec or $SPINBOOK_AGENT_SPEC) is read and then removed.
func runAgent(ctx context.Context, args []string, s stdio) error {
	fs := flags("agent", s)
	specPath := fs.String("spec", "", "the agent spec file written by the backend")
	specEnv := fs.String("spec-env", "", "take the spec from this environment variable (aws: injected by ECS from Secrets Manager) and re-execute without it")
	specFD := fs.Int("spec-fd", -1, "read the spec from this descriptor and close it (--spec-env hands it over so)")
	asInit := fs.Bool("init", false, "be PID 1: run the agent as a child with --spec-fd, forward signals, reap orphans")
	var hosts stringList
	fs.Var(&hosts, "host", "one more name the front door answers to, known only where the server runs (aws: the load balancer's); repeatable")
	specStdin := fs.Duration("spec-stdin", 0, "read the spec from stdin, waiting at most this long (docker: the backend writes it through the Engine's attach)")
	tokenFile := fs.String("control-token-file", "", "with --spec-stdin: keep the spec's control token in this file (0600), for `agent read-control-token`")
	asUser := fs.String("user", "", "started as root: give the workspace (and a missing home) to this user (the image's USER: name or uid, [:group]) and become it before anything runs (docker)")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *specPath == "" {
		*specPath = os.Getenv("SPINBOOK_AGENT_SPEC")
	}
	switch {
	case *specEnv != "":
		// First the spec leaves the environment: into a memfd, and this
		// process re-executes itself without the variable (as PID 1, the
		// init that runs the agent proper).
		return backend.ExecWithSpecFD(*specEnv, func(fd int) []string {
			args := append([]string{"agent", "--spec-fd", strconv.Itoa(fd)}, hostArgs(hosts)...)
			if os.Getpid() == 1 {
				args = append(args, "--init")
			}
			if *debug {
				args = append(args, "--debug")
			}
			return args
		})
	case *asInit:
		return exitCode(runInit(s, *specFD, hosts, *debug))
	}
	if *specPath == "" && *specFD < 0 && *specStdin <= 0 {
		return usagef("agent: no spec: pass --spec FILE or set SPINBOOK_AGENT_SPEC")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: level}))
	var (
		spec backend.AgentSpec
		err  error
	)
	switch {
	case *specFD >= 0:
		spec, err = backend.AgentSpecFromFD(*specFD)
	case *specStdin > 0:
		spec, err = backend.AgentSpecFromStdin(ctx, s.stdin, *specStdin)
		if err == nil && *asUser != "" {
			err = becomeImageUser(*asUser, spec.CredentialsDir, spec.Workspace)
		}
		if err == nil && *tokenFile != "" && spec.ControlToken != "" {
			err = keepControlToken(*tokenFile, spec.ControlToken)
		}
	default:
		spec, err = backend.ReadAgentSpec(*specPath)
	}
	if err != nil {
		return err
	}
	spec.Hosts = append(spec.Hosts, hosts...)
	// Its own last words pass the redactor too: an error may quote a secret.
	redact := &secret.Redactor{}
	redact.Add(spec.PasswordHash)
	redact.Add(spec.Secrets...)
	log = slog.New(redact.Handler(log.Handler()))
	log.Info("agent starting", "user", spec.User, "pid", os.Getpid(), "version", buildinfo.String())
	ag := agent.New(spec, log, s.stderr)
	if err = ag.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		agent.WriteExit(spec.StateDir, 1, redact.Redact(err.Error()))
		return errAgentLogged
	}
	reason := "stopped by a signal"
	if r := ag.StopReason(); r != "" {
		reason = r // it stopped itself: idle, max_age
	}
	log.Info("agent stopped", "reason", reason)
	agent.WriteExit(spec.StateDir, 0, reason)
	return nil
}

// runInit is the agent's PID 1 (agent.RunInit): it runs the agent proper
// as its child, handing it the spec's descriptor, which it closes itself
// without reading, and returns the status to exit with.
func runInit(s stdio, specFD int, hosts []string, debug bool) int {
	self, err := os.Executable()
	if err == nil && specFD < 0 {
		err = errors.New("--init needs --spec-fd")
	}
	if err != nil {
		fmt.Fprintln(s.stderr, "Error: agent init:", err)
		return exitFailure
	}
	spec := os.NewFile(uintptr(specFD), "spinbook-agent-spec")
	args := append([]string{"agent", "--spec-fd", "3"}, hostArgs(hosts)...) // fd 3: the first of ExtraFiles
	if debug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{spec}
	code, err := agent.RunInit(cmd, func() { spec.Close() })
	if err != nil {
		fmt.Fprintln(s.stderr, "Error:", err)
		return exitFailure
	}
	return code
}

// hostArgs passes --host names on to the agent's next process.
func hostArgs(hosts []string) []string {
	var args []string
	for _, h := range hosts {
		args = append(args, "--host", h)
	}
	return args
}
