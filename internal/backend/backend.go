// Package backend defines what every place that runs notebook servers
// (local processes, Docker, Kubernetes, AWS) offers the command line, and the
// spec that every backend hands the agent inside a server. It holds types
// only; implementations live in the sub-packages.
package backend

import (
	"context"
	"io"
	"time"

	"github.com/spinbook/spinbook/internal/secret"
)

// A Backend runs notebook servers on one kind of infrastructure.
// Methods are safe for concurrent use and idempotent.
type Backend interface {
	// Name is the backend's config name, e.g. "local".
	Name() string
	// Up makes spec's server exist and run, and returns once it is ready;
	// if it already runs, Up returns it with Started false.
	Up(ctx context.Context, spec Spec, progress func(Event)) (Server, error)
	// Down stops and removes the server; a missing server is not an error.
	// The workspace is kept.
	Down(ctx context.Context, user string, progress func(Event)) error
	// Status reports the server; a missing one has State Absent and a nil error.
	Status(ctx context.Context, user string) (Server, error)
	// List returns every server this backend created.
	List(ctx context.Context) ([]Server, error)
}

// A Logger is a Backend that can show a server's log.
type Logger interface {
	// Logs copies the server's log to w; with follow it keeps copying new
	// lines until ctx is done.
	Logs(ctx context.Context, user string, follow bool, w io.Writer) error
}

// A SiteManager is a Backend with things its servers share (a network, a
// load balancer), made by `spinbook site up` and removed by `site down`.
type SiteManager interface {
	// SiteUp creates what servers share; what exists already is kept.
	SiteUp(ctx context.Context, progress func(Event)) error
	// SiteDown removes what SiteUp created, but nothing a server still
	// uses: it fails, naming the servers, while any exists.
	SiteDown(ctx context.Context, progress func(Event)) error
}

// A Patient is a Backend whose operations take longer than the command
// line's default timeouts (cloud stacks take minutes). Without --timeout,
// the command line gives command ("up", "down", "site up", "site down")
// Timeout(command).
type Patient interface {
	Timeout(command string) time.Duration
}

// A Purger is a Backend that keeps a user's workspace apart from the server
// (a volume) and can remove it for good.
type Purger interface {
	// Purge removes user's workspace; the server must be down already.
	// A missing workspace is not an error.
	Purge(ctx context.Context, user string, progress func(Event)) error
}

// A VolumeLister is a Purger that can list the workspace volumes it
// keeps, whether their servers run or not (for `ls`, as they cost money
// either way).
type VolumeLister interface {
	// Volumes returns every workspace volume, by user.
	Volumes(ctx context.Context) (map[string]Volume, error)
}

// A Snapshotter is a Purger that can keep a last copy of a workspace
// before it is purged (aws: an EBS snapshot), for `down --purge --snapshot`.
type Snapshotter interface {
	// Snapshot copies user's workspace and returns the copy's id once it
	// is complete; the server must be down already. A copy taken by an
	// earlier call that did not finish is waited for, not taken again.
	Snapshot(ctx context.Context, user string, progress func(Event)) (id string, err error)
}

// Spec says which server Up should bring up.
type Spec struct {
	// User owns the server; already validated by config.ValidateUser.
	User string
	// Agent is what the agent needs whatever the backend — the password
	// hash, access rules, resolved secrets, the repo, the warehouse — as the
	// command line built it from the config. The backend fills in where
	// things live (user, workspace, state dir, listeners) and hands it to
	// the agent as a 0600 file, never in argv or the container's Env.
	Agent AgentSpec
	// AccessDigest sums up the access settings as configured
	// (AgentSpec.AccessDigest, taken before a generated password is filled
	// in). Up restarts a running server whose digest differs, so that a new
	// password, allowlist or certificate takes effect (and old sessions end).
	AccessDigest string
	// KeepFailed leaves a server that failed to come up as it is, for
	// inspection (aws: the failed stack), instead of removing it.
	KeepFailed bool
	// Size names the resources the server gets (config sizes.NAME, from
	// `up --size`); "" is no limits. Backends that cannot honour sizes
	// ignore it.
	Size string
	// passwordHash yields Agent.PasswordHash when HashPasswordLater set it.
	passwordHash func() (string, error)
}

// HashPasswordLater starts hashing password (argon2id: a fifth of a second
// and 64 MiB) in the background, so that the backend's first steps do not
// wait for it; AgentSpec returns the spec with the hash.
func (s *Spec) HashPasswordLater(password string) {
	var (
		hash string
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		hash, err = secret.HashPassword(password)
	}()
	s.passwordHash = func() (string, error) {
		<-done
		return hash, err
	}
}

// AgentSpec is Agent with its password hash, waiting for one that
// HashPasswordLater is still computing. Backends take the agent's spec
// from here, as late as they can.
func (s Spec) AgentSpec() (AgentSpec, error) {
	as := s.Agent
	if s.passwordHash != nil {
		hash, err := s.passwordHash()
		if err != nil {
			return AgentSpec{}, err
		}
		as.PasswordHash = hash
	}
	return as, nil
}

// State is where a server is in its life.
type State string

// The states a server can be in.
const (
	Running State = "running" // the agent runs (see Server.Ready for Jupyter)
	Stopped State = "stopped" // it exited cleanly (signal, idle stop); up starts it again
	Failed  State = "failed"  // it died or never became ready; up starts it again
	Absent  State = "absent"  // there is no such server
)

// Server is what a backend knows about one user's server.
type Server struct {
	User    string `json:"user"`
	Backend string `json:"backend"`
	State   State  `json:"state"`
	// Ready is true when Jupyter answers behind the front door.
	Ready bool `json:"ready"`
	// URL is the front door a person opens; HealthURL answers /healthz and /readyz.
	URL       string `json:"url,omitempty"`
	HealthURL string `json:"health_url,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	// Volume is the workspace's own volume, where a backend keeps it
	// apart from the server and can say what it is (aws: EBS).
	Volume    *Volume   `json:"workspace_volume,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// Detail says why a server is stopped or failed, and what to do.
	Detail string `json:"detail,omitempty"`
	// Started is true when this Up call started the server.
	Started bool `json:"-"`
	// TLSFingerprint is the SHA-256 fingerprint of the front door's
	// certificate ("AB:CD:..."), when it serves HTTPS.
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// AccessDigest is the Spec.AccessDigest the server was started with.
	AccessDigest string `json:"-"`
	// ControlToken is the bearer token of the server's control API
	// (AgentSpec.ControlToken); never printed, never in --json.
	ControlToken string `json:"-"`
}

// Event is one progress report from a long operation.
type Event struct {
	Message string
}

// Volume is a workspace volume that outlives its server.
type Volume struct {
	ID   string `json:"id"`
	GiB  int    `json:"gib"`
	Type string `json:"type,omitempty"` // gp3
	Zone string `json:"zone,omitempty"`
	// MonthlyCost is an estimate in USD of what keeping it costs a month,
	// whether the server runs or not; nil when unknown.
	MonthlyCost *float64 `json:"monthly_cost,omitempty"`
}
