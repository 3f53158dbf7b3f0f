package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spinbook/spinbook/internal/secret"
)

// Backends this build has, and those that come later.
var (
	backends       = []string{"local", "docker", "kubernetes", "aws"}
	futureBackends = []string{}
)

// Validate fills in defaults for the keys left empty, expands ~ in
// local.state_dir, fills the parsed fields (Access.AllowPrefixes,
// Access.TrustedPrefixes, Local.PortLo, Local.PortHi), and checks
// everything. It reports every problem at once, as an *Error whose problems
// carry the line each key had in c.Path, when c came from a file.
func (c *Config) Validate() error {
	v := &validation{c: c}

	if c.Backend == "" {
		c.Backend = defaultBackend
	}
	v.backend()
	v.access()
	for i, arg := range c.Jupyter.Command {
		if arg == "" {
			v.problemf(fmt.Sprintf("jupyter.command[%d]", i), "empty argument")
		}
	}
	if c.Jupyter.Venv != "" && !strings.HasPrefix(c.Jupyter.Venv, "/") {
		v.problemf("jupyter.venv", "%q is not an absolute path; write the venv's full path, such as /opt/jupyter-venv", c.Jupyter.Venv)
	}
	v.local()
	v.docker()
	v.sizes()
	v.aws()
	v.kubernetes()
	v.warehouse()
	v.models()
	v.repo()
	v.idle()
	v.portal()
	v.secretRefs()

	if len(v.problems) == 0 {
		return nil
	}
	return newError(c.Path, v.problems)
}

type validation struct {
	c        *Config
	problems []Problem
}

// problemf records a problem with path, at the line the file gave it or,
// for a list entry the file did not have line by line, the list's line.
func (v *validation) problemf(path, format string, args ...any) {
	line := 0
	for p := path; p != ""; {
		if l, ok := v.c.lines[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexByte(p, '[')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	v.problems = append(v.problems, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validation) backend() {
	b := v.c.Backend
	switch {
	case slices.Contains(backends, b):
	case slices.Contains(futureBackends, b):
		v.problemf("backend", "%q is not available in this build yet (available: %s)", b, strings.Join(backends, ", "))
	default:
		msg := fmt.Sprintf("unknown backend %q;", b)
		if near := nearestBackend(b); near != "" {
			msg += fmt.Sprintf(" did you mean %q?", near)
		}
		msg += " valid: " + strings.Join(backends, ", ")
		if len(futureBackends) > 0 {
			msg += "; " + strings.Join(futureBackends, ", ") + " come later"
		}
		v.problemf("backend", "%s", msg)
	}
}

// backendAliases are names people use for a backend.
var backendAliases = map[string]string{"k8s": "kubernetes", "kube": "kubernetes", "ecs": "aws", "ec2": "aws"}

// nearestBackend is the backend name b was most likely meant to be: the
// same name in other case or spacing, an alias, or the closest name at an
// edit distance of at most 2 (a third of the name for short ones); "" when
// none is close.
func nearestBackend(b string) string {
	l := strings.ToLower(strings.TrimSpace(b))
	if slices.Contains(backends, l) {
		return l
	}
	if a, ok := backendAliases[l]; ok {
		return a
	}
	best, bestDist := "", 0
	for _, name := range backends {
		d := distance(l, name)
		if limit := min(2, len(name)/3); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = name, d
		}
	}
	return best
}

func (v *validation) access() {
	a := &v.c.Access
	if len(a.Allow) == 0 {
		a.Allow = defaultAllow()
	}
	a.AllowPrefixes = v.prefixes("access.allow", a.Allow)
	a.TrustedPrefixes = v.prefixes("access.trusted_proxies", a.TrustedProxies)
	for i, h := range a.Hosts {
		n, msg := parseHostName(h)
		if msg != "" {
			v.problemf(fmt.Sprintf("access.hosts[%d]", i), "%s", msg)
			continue
		}
		a.Hosts[i] = n
	}
	v.tls()

	if h := a.PasswordHash; h != "" {
		if !strings.HasPrefix(h, "$") {
			// Never quote it: it may be a password pasted in by mistake.
			v.problemf("access.password_hash", "this is not a password hash (one starts with $argon2id$); run `spinbook password` to make one from a password")
		} else if _, err := secret.ParsePasswordHash(h); err != nil {
			v.problemf("access.password_hash", "%s: %v; run `spinbook password` to make a new one", quoteStart(h), err)
		}
	}
}

// prefixes parses list, the entries at path, as CIDRs or IP addresses.
func (v *validation) prefixes(path string, list []string) []netip.Prefix {
	var ps []netip.Prefix
	for i, s := range list {
		p, msg := parsePrefix(s)
		if msg != "" {
			v.problemf(fmt.Sprintf("%s[%d]", path, i), "%s", msg)
			continue
		}
		ps = append(ps, p)
	}
	return ps
}

// parsePrefix parses a CIDR or a bare IP address (one address: /32 or /128),
// or says what is wrong.
func parsePrefix(s string) (netip.Prefix, string) {
	const example = " (example: 203.0.113.0/24)"
	if s == "" {
		return netip.Prefix{}, "empty entry; write an IP address or CIDR" + example
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR%s", s, example)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Sprintf("%q has host bits set: did you mean %s (the network) or %s (one address)?",
				s, m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR%s", s, example)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q has a zone (%%%s); leave it out", s, a.Zone())
	}
	return netip.PrefixFrom(a, a.BitLen()), ""
}

func (v *validation) local() {
	l := &v.c.Local

	if l.Listen == "" {
		l.Listen = defaultListen
	}
	if _, err := netip.ParseAddr(l.Listen); err != nil {
		switch {
		case isAddrPort(l.Listen):
			v.problemf("local.listen", "%q has a port; give the address only (ports come from local.ports)", l.Listen)
		case l.Listen == "localhost":
			v.problemf("local.listen", "%q is not an IP address; use 127.0.0.1 (or ::1)", l.Listen)
		default:
			v.problemf("local.listen", "%q is not an IP address (examples: 127.0.0.1, or 0.0.0.0 for every interface)", l.Listen)
		}
	}

	if l.Ports == "" {
		l.Ports = defaultPorts
	}
	l.PortLo, l.PortHi = 0, 0
	if lo, hi, msg := parsePorts(l.Ports); msg != "" {
		v.problemf("local.ports", "%q: %s", l.Ports, msg)
	} else {
		l.PortLo, l.PortHi = lo, hi
	}

	if l.StateDir == "" {
		dir, err := defaultStateDir()
		if err != nil {
			v.problemf("local.state_dir", "not set, and no default: %v; set it", err)
		}
		l.StateDir = dir
	} else if dir, msg := expandDir(l.StateDir); msg != "" {
		v.problemf("local.state_dir", "%q: %s", l.StateDir, msg)
	} else {
		l.StateDir = dir
	}

	for i, name := range l.Env {
		path := fmt.Sprintf("local.env[%d]", i)
		switch {
		case !validEnvName(name):
			v.problemf(path, "%q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
		case ownEnvName(name):
			v.problemf(path, "%s is set by spinbook itself; leave it out", name)
		case slices.Contains(l.Env[:i], name):
			v.problemf(path, "%s is listed twice", name)
		}
	}
}

// validEnvName: a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}

// ownEnvName: variables spinbook sets for a server itself, which local.env
// cannot bring in from the operator's environment.
func ownEnvName(s string) bool {
	switch s {
	case "HOME", "USER", "LOGNAME", "SHELL", "JUPYTER_TOKEN", "JUPYTER_RUNTIME_DIR":
		return true
	}
	return strings.HasPrefix(s, "SPINBOOK_")
}

func isAddrPort(s string) bool {
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

// parsePorts parses "LO-HI", or says what is wrong.
func parsePorts(s string) (lo, hi int, msg string) {
	const form = "want a range LO-HI of at least 2 ports, such as 8800-8899"
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, form
	}
	lo, ok1 := port(strings.TrimSpace(a))
	hi, ok2 := port(strings.TrimSpace(b))
	switch {
	case !ok1 || !ok2:
		return 0, 0, form
	case lo < 1 || lo > 65535 || hi < 1 || hi > 65535:
		return 0, 0, "ports must be between 1 and 65535"
	case lo > hi:
		return 0, 0, "the first port must not exceed the last"
	case lo == hi:
		return 0, 0, fmt.Sprintf("a single port; the front door and the health check need at least 2, such as %d-%d", lo, min(lo+99, 65535))
	}
	return lo, hi, ""
}

// port parses a decimal port number of at most 5 digits; range is checked
// by the caller.
func port(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// defaultStateDir is $XDG_STATE_HOME/spinbook, else ~/.local/state/spinbook.
func defaultStateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "spinbook"), nil
	}
	home, err := os.UserHomeDir()
	if geteuid() == 0 {
		// Root serves several people, whose accounts must pass through
		// every directory above the state dir: not /root (0700). A state
		// dir an older spinbook made there is kept, and `up` says how to
		// move it.
		if err == nil {
			old := filepath.Join(home, ".local", "state", "spinbook")
			if _, serr := os.Stat(old); serr == nil {
				return old, nil
			}
		}
		return rootStateDir, nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "spinbook"), nil
}

// rootStateDir is the state dir of spinbook run as root.
const rootStateDir = "/var/lib/spinbook"

// geteuid is os.Geteuid; tests replace it to make defaults independent of
// who runs them.
var geteuid = os.Geteuid

// expandDir expands a leading ~/ and requires an absolute path.
func expandDir(dir string) (string, string) {
	if dir == "~" || strings.HasPrefix(dir, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Sprintf("cannot expand ~: %v", err)
		}
		return filepath.Join(home, dir[1:]), ""
	}
	if !filepath.IsAbs(dir) {
		return "", "want an absolute path or one starting with ~/"
	}
	return filepath.Clean(dir), ""
}

// quoteStart quotes the first few characters of s, so that an error can
// point at a value without carrying all of it.
func quoteStart(s string) string {
	const max = 12
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "..."
}

// parseHostName checks an access.hosts entry, a DNS name or IP address, and
// returns it as the front door compares it (lower case, no trailing dot),
// or says what is wrong.
func parseHostName(s string) (string, string) {
	const example = " (example: notebooks.example.com)"
	if s == "" {
		return "", "empty entry; write a host name" + example
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@") {
		return "", fmt.Sprintf("%q: write the name alone, without scheme, path or user%s", s, example)
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && a.Zone() == "" {
		return a.String(), ""
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return "", fmt.Sprintf("%q: write the name without a port (any port is answered)%s", s, example)
	}
	if strings.Contains(s, "*") {
		return "", fmt.Sprintf("%q: wildcards are not supported; list each name%s", s, example)
	}
	n := strings.ToLower(strings.TrimSuffix(s, "."))
	if !dnsName(n) {
		return "", fmt.Sprintf("%q is not a host name%s", s, example)
	}
	return n, ""
}

// dnsName reports whether name is dot-separated labels of letters, digits,
// '-' and '_', each 1 to 63 long and not starting or ending with '-', 253
// in all.
func dnsName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
