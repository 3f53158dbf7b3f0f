// Package local runs each user's server as a detached `spinbook agent`
// process on this machine. Its state directory is the truth about what
// runs: one directory per user holding a record of the agent process, the
// agent's log, and what the agent wrote as it exited.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/proc"
	"github.com/spinbook/spinbook/internal/secret"
)

var _ backend.Backend = (*Local)(nil)
var _ backend.Logger = (*Local)(nil)

// stopTimeout is how long Down waits for the agent to save the work, stop
// its kernels and exit before it kills what is left; the agent learns it
// (AgentSpec.StopGrace) and fits its save on SIGTERM into it.
const stopTimeout = 45 * time.Second

// Local is the local backend.
type Local struct {
	cfg       *config.Config
	stateDir  string
	agentPath string
	log       *slog.Logger
}

// New returns the local backend for cfg. agentPath is the agent binary to
// run ("" = spinbook-agent beside this executable: backend.AgentBinary).
func New(cfg *config.Config, log *slog.Logger, agentPath string) (*Local, error) {
	agentPath, err := backend.AgentBinary(agentPath)
	if err != nil {
		return nil, err
	}
	if cfg.Local.StateDir == "" {
		return nil, errors.New("local.state_dir is not set")
	}
	return &Local{cfg: cfg, stateDir: cfg.Local.StateDir, agentPath: agentPath, log: log}, nil
}

// Name implements backend.Backend.
func (l *Local) Name() string { return "local" }

// record is what the state dir keeps about a running agent.
type record struct {
	User string `json:"user"`
	PID  int    `json:"pid"`
	// UID is the OS user the agent runs as.
	UID        int       `json:"uid"`
	Start      uint64    `json:"start"` // process start time (package proc)
	Listen     string    `json:"listen"`
	FrontPort  int       `json:"front_port"`
	HealthPort int       `json:"health_port"`
	Workspace  string    `json:"workspace"`
	StartedAt  time.Time `json:"started_at"`
	// TLS: the front door serves HTTPS, with the certificate whose
	// SHA-256 is TLSFingerprint (known once the agent is ready).
	TLS            bool   `json:"tls,omitempty"`
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// AccessDigest is the spec's: Up restarts the agent when it changes.
	AccessDigest string `json:"access_digest,omitempty"`
	// ControlToken is the bearer token of the agent's control API; this
	// 0600 record is where the command line reads it back.
	ControlToken string `json:"control_token,omitempty"`
}

func (l *Local) serverDir(user string) string { return filepath.Join(l.stateDir, "servers", user) }
func (l *Local) workspace(user string) string { return filepath.Join(l.stateDir, "workspaces", user) }
func (l *Local) logPath(user string) string   { return filepath.Join(l.serverDir(user), "agent.log") }

// Up implements backend.Backend.
func (l *Local) Up(ctx context.Context, spec backend.Spec, progress func(backend.Event)) (backend.Server, error) {
	if err := ctx.Err(); err != nil {
		return backend.Server{}, fmt.Errorf("up: %w", context.Cause(ctx))
	}
	user := spec.User
	unlock, err := l.lock(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	defer unlock()

	rec, err := l.readRecord(user)
	if err != nil {
		return backend.Server{}, err
	}
	if rec != nil {
		if proc.Alive(rec.PID, rec.Start) && rec.AccessDigest != spec.AccessDigest {
			return l.restart(ctx, spec, rec, progress)
		}
		if proc.Alive(rec.PID, rec.Start) {
			srv := l.server(rec)
			if !srv.Ready {
				progress(backend.Event{Message: "server already starting; waiting for Jupyter"})
				return l.waitReady(ctx, rec, nil, progress)
			}
			return srv, nil
		}
		progress(backend.Event{Message: fmt.Sprintf("the previous agent (pid %d) is gone (%s); starting a new one", rec.PID, l.exitReason(user))})
		l.cleanup(user, rec)
	}
	return l.start(ctx, spec, progress)
}

// start launches a new agent for spec.User; the caller holds the lock.
func (l *Local) start(ctx context.Context, spec backend.Spec, progress func(backend.Event)) (backend.Server, error) {
	user := spec.User
	acct, err := l.account(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	if !acct.Switch {
		if err := l.checkOnePerson(user); err != nil {
			return backend.Server{}, err
		}
	}
	if err := l.prepareDirs(user, acct); err != nil {
		return backend.Server{}, err
	}
	dir, agentDir := l.serverDir(user), l.agentDir(user)
	for _, name := range []string{"exit.json", "jupyter.json"} {
		os.Remove(filepath.Join(agentDir, name))
	}
	front, health, err := l.bindPorts()
	if err != nil {
		return backend.Server{}, err
	}
	defer front.Close()
	defer health.Close()

	specPath := filepath.Join(agentDir, "agent-spec.json")
	as, err := spec.AgentSpec()
	if err != nil {
		return backend.Server{}, err
	}
	as.User = user
	as.Workspace = l.workspace(user)
	as.StateDir = agentDir
	as.CacheDir = agentDir // per account: one person's cache never steers another's agent
	as.CredentialsDir = filepath.Join(dir, "credentials")
	as.BundleDir = filepath.Join(dir, "bundles")
	as.StopGrace = stopTimeout // Down waits this long after SIGTERM
	as.InheritListeners = true
	// The front door answers the name in the URL (server), besides
	// access.hosts; an address it listens on needs no entry.
	as.Hosts = append(slices.Clip(as.Hosts), urlHost(l.cfg.Local.Listen))
	if err := writeSpec(specPath, as, acct); err != nil {
		return backend.Server{}, err
	}
	logf, err := openLog(l.logPath(user))
	if err != nil {
		os.Remove(specPath)
		return backend.Server{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- spinbook agent for %s starting at %s as OS user %s (uid %d)\n", user, time.Now().UTC().Format(time.RFC3339), acct.Name, acct.UID)

	frontFile, err := front.File()
	if err != nil {
		return backend.Server{}, fmt.Errorf("front door listener: %w", err)
	}
	defer frontFile.Close()
	healthFile, err := health.File()
	if err != nil {
		return backend.Server{}, fmt.Errorf("health listener: %w", err)
	}
	defer healthFile.Close()

	// The agent outlives this command: its own session, no terminal, its
	// output in the log. The spec file (not argv) carries the password hash.
	agentPath, err := l.reachableAgent(acct)
	if err != nil {
		os.Remove(specPath)
		return backend.Server{}, err
	}
	cmd := exec.Command(agentPath, "agent", "--spec", specPath)
	cmd.Dir = "/"
	// The agent starts from an allowlisted environment, never the
	// operator's, and without the variables that held secrets
	// (${env:NAME}) even when local.env names them: it has them from the spec.
	cmd.Env = secret.Scrub(agentEnv(os.Environ(), acct, l.cfg.Local.Env), as.Secrets)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{frontFile, healthFile}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if acct.Switch {
		// Its own account, no supplementary groups; a uid other than 0
		// after exec holds no capabilities.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		os.Remove(specPath)
		if acct.Switch && errors.Is(err, fs.ErrPermission) {
			return backend.Server{}, fmt.Errorf("start agent %s as OS user %s: %w: the binary, and every directory above it, must be readable and executable by others (install spinbook in /usr/local/bin)", agentPath, acct.Name, err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return backend.Server{}, backend.MissingAgent(agentPath, err)
		}
		return backend.Server{}, fmt.Errorf("start agent %s: %w", agentPath, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it if it dies while we wait
	start, err := proc.StartTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		return backend.Server{}, fmt.Errorf("agent exited at once: %s", l.exitReason(user))
	}
	rec := &record{
		TLS:          as.TLSSelfSigned || as.TLSCert != "",
		AccessDigest: spec.AccessDigest,
		ControlToken: as.ControlToken,
		User:         user,
		PID:          cmd.Process.Pid,
		UID:          acct.UID,
		Start:        start,
		Listen:       l.cfg.Local.Listen,
		FrontPort:    front.Addr().(*net.TCPAddr).Port,
		HealthPort:   health.Addr().(*net.TCPAddr).Port,
		Workspace:    l.workspace(user),
		StartedAt:    time.Now().UTC().Truncate(time.Second),
	}
	if err := l.writeRecord(rec); err != nil {
		proc.KillTree(rec.PID, rec.Start)
		return backend.Server{}, err
	}
	progress(backend.Event{Message: fmt.Sprintf("agent started (pid %d); front door on port %d, health on %d", rec.PID, rec.FrontPort, rec.HealthPort)})
	srv, err := l.waitReady(ctx, rec, exited, progress)
	if err != nil {
		l.cleanup(user, rec)
		return backend.Server{}, err
	}
	if err := l.recordTLS(rec, as); err != nil {
		l.cleanup(user, rec)
		return backend.Server{}, err
	}
	srv = l.server(rec)
	srv.Ready = true
	srv.Started = true
	return srv, nil
}

// waitReady polls the agent's /readyz until Jupyter answers, the agent
// dies, or ctx ends.
func (l *Local) waitReady(ctx context.Context, rec *record, exited <-chan struct{}, progress func(backend.Event)) (backend.Server, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	health := l.healthBase(rec)
	began := time.Now()
	nextNote := began.Add(3 * time.Second)
	for {
		if backend.Ready(client, health) {
			srv := l.server(rec)
			srv.Ready = true
			return srv, nil
		}
		if !proc.Alive(rec.PID, rec.Start) {
			return backend.Server{}, fmt.Errorf("the server did not start: %s (full log: spinbook logs --user %s)", l.exitReason(rec.User), rec.User)
		}
		if time.Now().After(nextNote) {
			progress(backend.Event{Message: fmt.Sprintf("waiting for Jupyter to answer (%s)", time.Since(began).Round(time.Second))})
			nextNote = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return backend.Server{}, fmt.Errorf("wait for Jupyter: %w", context.Cause(ctx))
		case <-exited:
			exited = nil // checked by Alive on the next round
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Down implements backend.Backend.
func (l *Local) Down(ctx context.Context, user string, progress func(backend.Event)) error {
	unlock, err := l.lock(ctx, user)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := l.readRecord(user)
	if err != nil || rec == nil {
		return err
	}
	l.stopAgent(ctx, rec, progress)
	l.cleanup(user, rec)
	return nil
}

// stopAgent asks rec's agent to stop its kernels and exit, and waits for
// it (stopTimeout at most); cleanup kills what is left.
func (l *Local) stopAgent(ctx context.Context, rec *record, progress func(backend.Event)) {
	if !proc.Alive(rec.PID, rec.Start) {
		return
	}
	progress(backend.Event{Message: fmt.Sprintf("stopping the agent (pid %d) and its kernels", rec.PID)})
	syscall.Kill(rec.PID, syscall.SIGTERM)
	wait := stopTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if !proc.WaitGone(rec.PID, rec.Start, wait) {
		progress(backend.Event{Message: "the agent did not stop in time; killing it"})
	}
}

// cleanup kills whatever is left of rec's agent and its Jupyter, and
// removes the record.
func (l *Local) cleanup(user string, rec *record) {
	proc.KillTree(rec.PID, rec.Start)
	// jupyter.json is the agent's word, written as the person's account:
	// root kills only a process of the agent's own user.
	if data, err := readOwned(filepath.Join(l.agentDir(user), "jupyter.json")); err == nil {
		var j backend.ProcessRecord
		if json.Unmarshal(data, &j) == nil && j.PID > 0 {
			if uid, err := proc.UID(j.PID); err == nil && uid == rec.UID {
				proc.KillTree(j.PID, j.Start)
			}
		}
	}
	for _, name := range []string{"jupyter.json", "exit.json", "agent-spec.json"} {
		os.Remove(filepath.Join(l.agentDir(user), name))
		os.Remove(filepath.Join(l.serverDir(user), name)) // where an older spinbook kept them
	}
	os.Remove(filepath.Join(l.serverDir(user), "record.json"))
	// Credential files (.pgpass) live only as long as the server.
	os.RemoveAll(filepath.Join(l.serverDir(user), "credentials"))
}

// Status implements backend.Backend.
func (l *Local) Status(ctx context.Context, user string) (backend.Server, error) {
	rec, err := l.readRecord(user)
	if err != nil {
		return backend.Server{}, err
	}
	if rec == nil {
		return backend.Server{User: user, Backend: l.Name(), State: backend.Absent}, nil
	}
	return l.server(rec), nil
}

// List implements backend.Backend.
func (l *Local) List(ctx context.Context) ([]backend.Server, error) {
	entries, err := os.ReadDir(filepath.Join(l.stateDir, "servers"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	var out []backend.Server
	for _, e := range entries {
		if !e.IsDir() || config.ValidateUser(e.Name()) != nil {
			continue
		}
		rec, err := l.readRecord(e.Name())
		if err != nil || rec == nil {
			continue
		}
		out = append(out, l.server(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// Logs implements backend.Logger.
func (l *Local) Logs(ctx context.Context, user string, follow bool, w io.Writer) error {
	f, err := os.Open(l.logPath(user))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no log for user %s: the server was never started here (state dir %s)", user, l.stateDir)
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// server describes rec as it is now.
func (l *Local) server(rec *record) backend.Server {
	srv := backend.Server{
		User:      rec.User,
		Backend:   l.Name(),
		URL:       fmt.Sprintf("%s://%s/", frontScheme(rec), net.JoinHostPort(urlHost(rec.Listen), strconv.Itoa(rec.FrontPort))),
		HealthURL: l.healthBase(rec) + "/healthz",
		Workspace: rec.Workspace,
		StartedAt: rec.StartedAt,

		TLSFingerprint: rec.TLSFingerprint,
		AccessDigest:   rec.AccessDigest,
		ControlToken:   rec.ControlToken,
	}
	if !proc.Alive(rec.PID, rec.Start) {
		reason := l.exitReason(rec.User)
		if ex := l.readExit(rec.User); ex != nil && ex.Code == 0 {
			srv.State = backend.Stopped
			srv.Detail = "stopped: " + reason + "; run `spinbook up` to start it again"
		} else {
			srv.State = backend.Failed
			srv.Detail = "the agent is not running (" + reason + "); run `spinbook up` to start it again, `spinbook logs` to see why"
		}
		return srv
	}
	srv.State = backend.Running
	client := &http.Client{Timeout: time.Second}
	srv.Ready = backend.Ready(client, l.healthBase(rec))
	client.CloseIdleConnections()
	if !srv.Ready {
		srv.Detail = "Jupyter is starting or not answering"
	}
	return srv
}

func (l *Local) healthBase(rec *record) string {
	return "http://" + net.JoinHostPort(urlHost(rec.Listen), strconv.Itoa(rec.HealthPort))
}

// urlHost is the host a person uses to reach a listener on listen.
func urlHost(listen string) string {
	if ip := net.ParseIP(listen); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			return h
		}
		return "127.0.0.1"
	}
	return listen
}

// exitReason says how the agent ended, from what it wrote as it exited.
func (l *Local) exitReason(user string) string {
	ex := l.readExit(user)
	if ex == nil {
		return "it was killed or crashed without a word; see `spinbook logs`"
	}
	return ex.Reason
}

func (l *Local) readExit(user string) *backend.ExitRecord {
	data, err := readOwned(filepath.Join(l.agentDir(user), "exit.json"))
	if err != nil {
		return nil
	}
	var ex backend.ExitRecord
	if json.Unmarshal(data, &ex) != nil {
		return nil
	}
	return &ex
}

func (l *Local) readRecord(user string) (*record, error) {
	data, err := os.ReadFile(filepath.Join(l.serverDir(user), "record.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read server record: %w", err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil || rec.User != user {
		// A torn or foreign record cannot name a live process we own.
		l.log.Warn("ignoring unreadable server record", "user", user, "err", err)
		return nil, nil
	}
	return &rec, nil
}

func (l *Local) writeRecord(rec *record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(l.serverDir(rec.User), "record.json")
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("write server record: %w", err)
	}
	return nil
}

// lock serialises Up and Down for one user across processes.
func (l *Local) lock(ctx context.Context, user string) (func(), error) {
	dir := filepath.Join(l.stateDir, "servers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(dir, user+".lock")
	for {
		unlock, err := l.lockFile(path, false)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for another spinbook command on %s's server: %w", user, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lockFile takes an exclusive lock on path: at once or an error wrapping
// unix.EWOULDBLOCK when it is held, or with block, waiting for it.
func (l *Local) lockFile(path string, block bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	how := unix.LOCK_EX | unix.LOCK_NB
	if block {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// bindPorts binds the front door and health listeners on the first two
// free ports of local.ports.
func (l *Local) bindPorts() (front, health *net.TCPListener, err error) {
	var got []*net.TCPListener
	for p := l.cfg.Local.PortLo; p <= l.cfg.Local.PortHi && len(got) < 2; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(l.cfg.Local.Listen, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		got = append(got, ln.(*net.TCPListener))
	}
	if len(got) < 2 {
		for _, ln := range got {
			ln.Close()
		}
		return nil, nil, fmt.Errorf("no two free ports in local.ports %d-%d on %s: stop other servers (spinbook ls) or widen the range",
			l.cfg.Local.PortLo, l.cfg.Local.PortHi, l.cfg.Local.Listen)
	}
	return got[0], got[1], nil
}

// openLog opens the agent log for appending, rotating it past 10 MiB.
func openLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 10<<20 {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open agent log: %w", err)
	}
	return f, nil
}
