// Package config loads and validates spinbook.yaml.
//
// Values come, lowest first, from defaults, the file, the environment and
// flags; this package handles the first two and finding the file. Load and
// Parse reject unknown keys, and every error they return lists all the
// problems found, each with its line and YAML path (see Error).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"go.yaml.in/yaml/v3"
)

// Config is a spinbook.yaml. The comments on its fields are the reference
// for users: keep them accurate.
type Config struct {
	// Backend is where notebook servers run: "local" (processes on this
	// machine), "docker" (containers on a Docker Engine), "aws" or
	// "kubernetes" (pods on a cluster). Default: local.
	Backend string `yaml:"backend"`

	// Access says who may reach a server.
	Access Access `yaml:"access"`

	// Jupyter says how Jupyter is started inside a server.
	Jupyter Jupyter `yaml:"jupyter"`

	// Warehouse is the data warehouse kernels query without a password in
	// any notebook. Default: none.
	Warehouse Warehouse `yaml:"warehouse"`

	// Models is the model store for `spinbook models` and kernels (boto3,
	// the aws CLI). Default: none.
	Models Models `yaml:"models"`

	// Repo is the team's git repository, cloned into the workspace and
	// saved back by `spinbook save` and `spinbook down`. Default: none; the
	// workspace starts empty.
	Repo Repo `yaml:"repo"`

	// Local configures backend local: servers run as processes on this
	// machine.
	Local Local `yaml:"local"`

	// Image is the Jupyter image servers run in (backend docker): any
	// image with a `jupyter` command, such as the Jupyter docker-stacks
	// images; spinbook's agent is copied in. Default:
	// quay.io/jupyter/scipy-notebook:latest.
	Image string `yaml:"image"`

	// Docker configures backend docker.
	Docker Docker `yaml:"docker"`

	// Sizes names sets of resources (cpus, memory, gpus, shm) a server can
	// be brought up with: `spinbook up --size NAME`. Default: none; a
	// server then has no limits.
	Sizes map[string]Size `yaml:"sizes"`

	// Kubernetes configures backend kubernetes (see docs/kubernetes.md).
	Kubernetes Kubernetes `yaml:"kubernetes"`

	// AWS configures backend aws: CloudFormation stacks, one per site and
	// one per user (see docs/aws.md).
	AWS AWS `yaml:"aws"`

	// Idle says when an idle server stops itself (after saving), and how
	// long before it warns. Default: stop_after 2h, max_age off,
	// warn_before 10m. Sizes may override it (sizes.NAME.idle).
	Idle Idle `yaml:"idle"`

	// Portal configures `spinbook portal`, the team's web portal.
	Portal Portal `yaml:"portal"`

	// Path is the file the configuration came from, as given to Load or
	// Parse; "" when it holds defaults only.
	Path string `yaml:"-"`

	// lines maps the YAML path of each key and list entry read from the
	// file ("access.allow[1]") to its line, for error messages.
	lines map[string]int
}

// Access says who may reach a server: clients must connect from an allowed
// network and then log in with the password.
type Access struct {
	// Allow lists the client networks that may connect, as CIDRs
	// (203.0.113.0/24) or bare IP addresses (one address: /32 or /128).
	// The client is the connecting peer, or, behind a trusted proxy, the
	// address the proxy reports. Default, also when empty: this machine
	// only (127.0.0.0/8 and ::1/128).
	Allow []string `yaml:"allow"`

	// TrustedProxies lists the peers, as CIDRs or IP addresses, whose
	// X-Forwarded-For header is believed, such as a load balancer in front
	// of the servers. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Hosts lists more names the front door answers to, besides the host
	// of the URL spinbook prints (and, on aws, the load balancer's name;
	// on kubernetes the ingress host): a DNS name of your own pointing at
	// the server, as in notebooks.example.com. A request whose Host is
	// none of them, nor "localhost" nor an IP address, gets 421
	// Misdirected Request, which stops DNS rebinding. Names only: no
	// scheme, port or path. Default: none.
	Hosts []string `yaml:"hosts"`

	// PasswordHash is the argon2id hash of the login password, as printed
	// by `spinbook password`. Empty: `spinbook up` generates a password,
	// prints it once and keeps only its hash.
	PasswordHash string `yaml:"password_hash"`

	// InsecureHTTP accepts plain HTTP where it would cross a network: a
	// load balancer without aws.certificate_arn, or a kubernetes ingress
	// without tls_secret. Without it those configs are refused, since the
	// password and the session cookie would travel in clear. For tests and
	// closed networks only. Default: false.
	InsecureHTTP bool `yaml:"insecure_http"`

	// PortalOnly turns the servers' own password login off: people get in
	// only through the team portal's Open (`spinbook portal`, which starts
	// servers with its key). `spinbook up` refuses it, since a server it
	// started could then not be opened at all. Default: false.
	PortalOnly bool `yaml:"portal_only"`

	// TLS makes the front door serve HTTPS: `self-signed` (a certificate
	// made once per server; `up` prints its fingerprint) or {cert, key}
	// (PEM files; key may be a secret reference). Plain HTTP is then
	// redirected to HTTPS. Default: plain HTTP.
	TLS TLS `yaml:"tls"`

	// AllowPrefixes is Allow parsed; filled by Validate.
	AllowPrefixes []netip.Prefix `yaml:"-"`

	// TrustedPrefixes is TrustedProxies parsed; filled by Validate.
	TrustedPrefixes []netip.Prefix `yaml:"-"`
}

// Jupyter says how Jupyter is started inside a server.
type Jupyter struct {
	// Command starts Jupyter, as a list ([jupyter, lab]) or one string
	// split on spaces ("jupyter lab"; no quoting: use the list form for
	// arguments with spaces). spinbook adds the options that bind it and
	// set its token. A command in a virtualenv's bin/ runs with that venv
	// activated. Default: the first of `jupyter lab`, `jupyter notebook`
	// and `jupyter server` that is installed (on PATH, else in the venv
	// scripts/jupyter-venv makes).
	Command Command `yaml:"command"`

	// Venv is a Python virtualenv (an absolute path, on the machine or in
	// the image) that Jupyter runs from, activated for Jupyter, kernels
	// and terminals: its bin/ first on PATH, VIRTUAL_ENV set. Command, if
	// set, is looked up in its bin/; else the first of jupyter-lab,
	// jupyter-notebook and jupyter-server there.
	Venv string `yaml:"venv"`
}

// Local configures backend local, which runs servers as processes on this
// machine.
type Local struct {
	// Listen is the IP address the front door binds, such as 127.0.0.1,
	// or 0.0.0.0 (:: for IPv6) for every interface. Default: 127.0.0.1.
	Listen string `yaml:"listen"`

	// Ports is the range, LO-HI, the front-door and health ports of each
	// server are taken from; it needs at least 2 ports. Default: 8800-8899.
	Ports string `yaml:"ports"`

	// StateDir is where servers' state (workspaces, logs, password hashes)
	// is kept: an absolute path or one starting with ~/. Default:
	// $XDG_STATE_HOME/spinbook, else ~/.local/state/spinbook; run as root,
	// /var/lib/spinbook (unless ~/.local/state/spinbook exists), since
	// the servers' own accounts must pass through every directory above it.
	StateDir string `yaml:"state_dir"`

	// Env names the variables of the environment `spinbook up` runs in
	// that reach each server's agent, Jupyter and kernels, besides PATH,
	// LANG, LC_*, TZ and TERM (HOME, USER, LOGNAME and SHELL are those of
	// the account the server runs as). No other variable of the operator's
	// (cloud keys, SSH_AUTH_SOCK, tokens) reaches a kernel. Example:
	// [VIRTUAL_ENV, CONDA_PREFIX]. Default: none.
	Env []string `yaml:"env"`

	// PortLo and PortHi are Ports parsed; filled by Validate.
	PortLo, PortHi int `yaml:"-"`
}

// Defaults for keys the file leaves out or empty.
const (
	defaultBackend = "local"
	defaultListen  = "127.0.0.1"
	defaultPorts   = "8800-8899"
)

// defaultAllow is access.allow when the file leaves it out or empty: this
// machine only.
func defaultAllow() []string { return []string{"127.0.0.0/8", "::1/128"} }

// Default returns the configuration used when there is no file: backend
// local, loopback only, listening on 127.0.0.1, ports 8800-8899, the state
// directory under $XDG_STATE_HOME or ~/.local/state. Its derived fields are
// filled in. When no state directory can be worked out (no $HOME),
// Local.StateDir is "" and Validate says so.
func Default() *Config {
	c := new(Config)
	_ = c.Validate() // fills defaults; only the state directory can fail
	return c
}

// Load reads, decodes and validates the file at path. Unknown keys are
// errors. A missing file is an error wrapping fs.ErrNotExist. Problems with
// the contents are reported together as an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates data, a spinbook.yaml read from the file
// called name (used in errors and kept as Path). Empty data is a valid
// configuration: all defaults. Every problem found is reported at once, as
// an *Error.
func Parse(data []byte, name string) (*Config, error) {
	c := &Config{Path: name}
	d := &decoder{lines: make(map[string]int)}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // empty, or comments only
	case err != nil:
		return nil, &Error{File: name, Problems: []Problem{syntaxProblem(err, data)}}
	default:
		var extra yaml.Node
		switch err := dec.Decode(&extra); {
		case errors.Is(err, io.EOF):
		case err != nil:
			return nil, &Error{File: name, Problems: []Problem{syntaxProblem(err, data)}}
		default:
			d.problemf(extra.Line, "", "a second YAML document (after ---); the file holds one")
		}
		d.document(&doc, c)
	}
	c.lines = d.lines

	problems := d.problems
	var verr *Error
	if err := c.Validate(); errors.As(err, &verr) {
		problems = append(problems, verr.Problems...)
	}
	if len(problems) > 0 {
		return nil, newError(name, problems)
	}
	return c, nil
}
