package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/secret"
)

func newAgent(e *env) *cobra.Command {
	var specPath, specEnv string
	var specFD int
	var asInit bool
	var hosts []string
	var waitSpec time.Duration
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Internal: the entrypoint inside a server (started by a backend)",
		Hidden: true,
		Long: `Run the agent of one server: start Jupyter, serve the front door and the health
listener, and stop everything cleanly on SIGTERM. Backends start it; people
do not need to. The spec file (--spec or $SPINBOOK_AGENT_SPEC) is read and then
removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if specPath == "" {
				specPath = os.Getenv("SPINBOOK_AGENT_SPEC")
			}
			switch {
			case specEnv != "":
				// First the spec leaves the environment: into a memfd, and
				// this process re-executes itself without the variable
				// (as PID 1, the init that runs the agent proper).
				return backend.ExecWithSpecFD(specEnv, func(fd int) []string {
					args := append([]string{"agent", "--spec-fd", strconv.Itoa(fd)}, hostArgs(hosts)...)
					if os.Getpid() == 1 {
						args = append(args, "--init")
					}
					if e.debug {
						args = append(args, "--debug")
					}
					return args
				})
			case asInit:
				os.Exit(runAgentInit(e, specFD, hosts))
			}
			if specPath == "" && specFD < 0 {
				return usagef("agent: no spec: pass --spec FILE or set SPINBOOK_AGENT_SPEC")
			}
			level := slog.LevelInfo
			if e.debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			var err error
			if waitSpec > 0 && specFD < 0 {
				if err = waitForSpec(cmd.Context(), specPath, waitSpec); err != nil {
					return err
				}
			}
			var spec backend.AgentSpec
			if specFD >= 0 {
				spec, err = backend.AgentSpecFromFD(specFD)
			} else {
				spec, err = backend.ReadAgentSpec(specPath)
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
			log.Info("agent starting", "user", spec.User, "pid", os.Getpid(), "version", version())
			ag := agent.New(spec, log, e.stderr)
			err = ag.Run(cmd.Context())
			if err != nil {
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
		},
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the agent spec file written by the backend")
	cmd.Flags().StringVar(&specEnv, "spec-env", "", "take the spec from this environment variable (aws: injected by ECS from Secrets Manager) and re-execute without it")
	cmd.Flags().IntVar(&specFD, "spec-fd", -1, "read the spec from this descriptor and close it (--spec-env hands it over so)")
	cmd.Flags().BoolVar(&asInit, "init", false, "be PID 1: run the agent as a child with --spec-fd, forward signals, reap orphans")
	cmd.Flags().MarkHidden("spec-fd")
	cmd.Flags().MarkHidden("init")
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "one more name the front door answers to, known only where the server runs (aws: the load balancer's); repeatable")
	cmd.Flags().DurationVar(&waitSpec, "wait-spec", 0, "wait this long for the spec file to appear (container backends hand it over after start)")
	cmd.AddCommand(newAgentReceiveSpec(), newAgentReadControlToken(), newAgentStage())
	return cmd
}

// runAgentInit is the agent's PID 1 (agent.RunInit): it runs the agent
// proper as its child, handing it the spec's descriptor, which it closes
// itself without reading, and returns the status to exit with.
func runAgentInit(e *env, specFD int, hosts []string) int {
	self, err := os.Executable()
	if err == nil && specFD < 0 {
		err = errors.New("--init needs --spec-fd")
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "Error: agent init:", err)
		return exitFailure
	}
	spec := os.NewFile(uintptr(specFD), "spinbook-agent-spec")
	args := append([]string{"agent", "--spec-fd", "3"}, hostArgs(hosts)...) // fd 3: the first of ExtraFiles
	if e.debug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{spec}
	code, err := agent.RunInit(cmd, func() { spec.Close() })
	if err != nil {
		fmt.Fprintln(e.stderr, "Error:", err)
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

// errAgentLogged: the agent already logged why it failed.
var errAgentLogged = errors.New("agent failed; see the log above")
