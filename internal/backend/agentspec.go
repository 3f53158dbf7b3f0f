package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// AgentSpec is what a backend hands the agent inside a server. It travels as
// a 0600 JSON file that the agent reads and then removes, never in argv or
// the environment, because it holds the password hash (and later secrets).
type AgentSpec struct {
	// User owns the server.
	User string `json:"user"`
	// Workspace is the directory Jupyter serves; created if missing.
	Workspace string `json:"workspace"`
	// StateDir is where the agent records how it exited (exit.json) and
	// which Jupyter process it runs (jupyter.json); the backend reads them.
	StateDir string `json:"state_dir"`
	// CredentialsDir is where the agent writes credential files for Jupyter,
	// kernels and terminals (.pgpass, .aws/credentials), each 0600, and
	// points PGPASSFILE / AWS_SHARED_CREDENTIALS_FILE at them. Containers
	// use the Jupyter user's home; the local backend a private per-server
	// directory, so a user's own ~/.pgpass is never overwritten.
	CredentialsDir string `json:"credentials_dir,omitempty"`
	// CacheDir keeps what the agent learns about the Jupyter install between
	// starts; "" disables the cache.
	CacheDir string `json:"cache_dir,omitempty"`
	// ProbeCache are files the agent puts in CacheDir before it probes its
	// Jupyter: what an agent of the same image learned, carried by the
	// kubernetes backend from one pod to the next (the docker backend
	// copies the directory itself). Names are jupyter-KEY.json, KEY naming
	// the executable the answer is for; others are refused.
	ProbeCache map[string]string `json:"probe_cache,omitempty"`

	// InheritListeners: the front door and health listeners arrive already
	// bound as file descriptors 3 and 4 (local backend: no port races).
	// Otherwise the agent binds Listen:FrontPort and Listen:HealthPort.
	InheritListeners bool   `json:"inherit_listeners,omitempty"`
	Listen           string `json:"listen,omitempty"`
	FrontPort        int    `json:"front_port,omitempty"`
	HealthPort       int    `json:"health_port,omitempty"`

	// PasswordHash is the argon2id hash the front door checks.
	PasswordHash string `json:"password_hash"`
	// PortalKey is the team portal's Ed25519 public key, base64 (standard
	// encoding), set when `spinbook portal` starts the server: the front
	// door then takes the portal's one-time open tokens (gateway
	// Options.PortalKey). Empty: no portal.
	PortalKey string `json:"portal_key,omitempty"`
	// PortalOnly (access.portal_only) turns the password login off: only
	// the portal's Open gets in. Requires PortalKey.
	PortalOnly bool `json:"portal_only,omitempty"`
	// Allow and TrustedProxies are CIDRs, as in access.allow and
	// access.trusted_proxies; empty Allow means loopback only.
	Allow          []string `json:"allow,omitempty"`
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// Hosts are the names the front door answers to (gateway.Options.Hosts):
	// access.hosts, to which each backend adds the host of the URL it
	// gives the server (local: the listen address or this machine's name;
	// docker: the publish host; kubernetes: the ingress host or node
	// address; aws: the load balancer's name, passed by the template as
	// `--host`, since it is known only once the stack made it). Any other
	// Host gets 421 (DNS rebinding); "localhost" and IP addresses always
	// pass.
	Hosts []string `json:"hosts,omitempty"`
	// JupyterCommand is the command that starts Jupyter; empty = detect.
	JupyterCommand []string `json:"jupyter_command,omitempty"`
	// JupyterVenv is the virtualenv Jupyter runs from (jupyter.venv);
	// empty = none, or the one JupyterCommand lies in.
	JupyterVenv string `json:"jupyter_venv,omitempty"`

	// TLS on the front door (access.tls). TLSCert and TLSKey are PEM, the
	// certificate chain and its private key, read by the command line; or
	// TLSSelfSigned: the agent makes a certificate once and keeps it in
	// StateDir (package tlscert). Neither: plain HTTP.
	TLSCert       string `json:"tls_cert,omitempty"`
	TLSKey        string `json:"tls_key,omitempty"`
	TLSSelfSigned bool   `json:"tls_self_signed,omitempty"`
	// BehindTLS: TLS ends at a load balancer in front of the agent (aws
	// with a certificate), so the front door serves plain HTTP but its
	// cookies are Secure and websocket Origins https.
	BehindTLS bool `json:"behind_tls,omitempty"`

	// Warehouse is the data warehouse kernels connect to; nil for none.
	Warehouse *Warehouse `json:"warehouse,omitempty"`
	// Models is the model store kernels and `spinbook models` use; nil
	// for none.
	Models *Models `json:"models,omitempty"`
	// Secrets are the values of every secret the command line resolved
	// (warehouse password, git token, S3 keys), so that the agent redacts
	// them from its log and keeps them out of the environment of Jupyter
	// and kernels. A backend passes them on only in this spec: the local
	// backend scrubs the agent's environment of them (secret.Scrub).
	Secrets []string `json:"secrets,omitempty"`

	// Repo is the team's git repository; nil for an empty workspace.
	Repo *Repo `json:"repo,omitempty"`
	// BundleDir is where a save that cannot reach the remote writes git
	// bundles; chosen by the backend, on storage that outlives the server.
	BundleDir string `json:"bundle_dir,omitempty"`
	// ControlToken is the bearer token of the agent's control API
	// (/spinbook/api/: save, status). The command line makes it at up; the
	// backend keeps it where only the command line reads it back
	// (Server.ControlToken).
	ControlToken string `json:"control_token,omitempty"`

	// Idle is when the agent stops the server by itself, and its price;
	// nil: it never does.
	Idle *Idle `json:"idle,omitempty"`

	// StopGrace is how long the backend waits, after it sends the agent
	// SIGTERM, before it kills the server: docker.stop_grace, the pod's
	// terminationGracePeriodSeconds, the ECS task's stopTimeout, the local
	// backend's wait. The agent's save on SIGTERM takes this less the time
	// it keeps for stopping the kernels. Zero: unknown (20s of saving).
	StopGrace time.Duration `json:"stop_grace,omitempty"`

	// Spot: the server runs on EC2 spot capacity (aws, sizes.NAME.spot),
	// and the agent watches the instance metadata service for a notice
	// that AWS takes the instance back, and for a rebalance
	// recommendation. Nil: it does not watch.
	Spot *SpotWatch `json:"spot,omitempty"`
}

// WriteAgentSpec writes s to path with mode 0600, replacing any old file.
func WriteAgentSpec(path string, s AgentSpec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode agent spec: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("write agent spec: %w", err)
	}
	return nil
}

// ReadAgentSpec reads the spec at path and removes the file, so that what it
// holds lives on only in the agent's memory.
func ReadAgentSpec(path string) (AgentSpec, error) {
	var s AgentSpec
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read agent spec: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return s, fmt.Errorf("remove agent spec: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("decode agent spec %s: %w", path, err)
	}
	if s.User == "" || s.Workspace == "" {
		return s, fmt.Errorf("agent spec %s: user and workspace are required", path)
	}
	return s, nil
}

// ExitRecord is what the agent writes to StateDir/exit.json as it exits.
type ExitRecord struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	At     string `json:"at"`
}

// ProcessRecord is what the agent writes to StateDir/jupyter.json once
// Jupyter runs, so a backend can clean up after an agent that was killed.
type ProcessRecord struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // process start time in clock ticks since boot
}

// AgentName is the agent binary's file name beside the spinbook command
// (cmd/spinbook-agent). Inside a container or pod it is called spinbook,
// and answers the command lines `spinbook agent ...` always had.
const AgentName = "spinbook-agent"

// AgentBinary returns path, or when it is "" the agent binary beside the
// running spinbook (symlinks followed): the binary a backend starts or
// injects as the agent. It is not opened here: commands that start no
// server work without it; MissingAgent explains the error of one that does.
func AgentBinary(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the spinbook binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), AgentName), nil
}

// MissingAgent makes the error of opening the agent binary at path say
// what to do when it is not there.
func MissingAgent(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent binary %s: %w: spinbook-agent belongs beside spinbook (a release archive holds both; from source: scripts/build, or CGO_ENABLED=0 go build -o %s ./cmd/spinbook-agent)", path, err, path)
	}
	return fmt.Errorf("agent binary: %w", err)
}
