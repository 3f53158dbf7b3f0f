package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Warehouse is the data warehouse, PostgreSQL or Amazon Redshift, that
// kernels and terminals connect to with no password in any notebook: the
// server gets a 0600 .pgpass and PGHOST, PGPORT, PGDATABASE, PGUSER and
// PGSSLMODE, so psql, psycopg2.connect("") and SQLAlchemy postgresql://
// URLs without a password just work. Leave it out for no warehouse.
type Warehouse struct {
	// Host is the server's DNS name or IP address (or the directory of its
	// Unix socket). Required when any other warehouse key is set.
	Host string `yaml:"host"`

	// Port is the server's TCP port. Default: 5439 for Amazon Redshift
	// hosts (ending in .redshift.amazonaws.com or
	// .redshift-serverless.amazonaws.com), else 5432.
	Port int `yaml:"port"`

	// Database is the database to connect to; others on the same server
	// work with the same password. Required.
	Database string `yaml:"database"`

	// User is the role kernels connect as. Required.
	User string `yaml:"user"`

	// Password is the role's password, best as a reference resolved when
	// the server starts: ${env:NAME} or ${file:PATH} (${aws-sm:ARN} and
	// ${aws-ssm:NAME} come with the aws backend). A literal works too, but
	// then this file is itself a secret. Empty: no .pgpass, for servers
	// that need no password.
	Password string `yaml:"password"`

	// SSLMode is libpq's sslmode: disable, allow, prefer, require,
	// verify-ca or verify-full. Default: require for Redshift hosts, else
	// prefer.
	SSLMode string `yaml:"sslmode"`
}

// Enabled reports whether a warehouse is configured.
func (w *Warehouse) Enabled() bool { return w.Host != "" }

// sslModes are libpq's values of sslmode.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// redshiftSuffixes end the host names of Amazon Redshift endpoints.
var redshiftSuffixes = []string{
	".redshift.amazonaws.com", ".redshift-serverless.amazonaws.com",
	".redshift.amazonaws.com.cn", ".redshift-serverless.amazonaws.com.cn",
}

// IsRedshift reports whether host is an Amazon Redshift endpoint.
func IsRedshift(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range redshiftSuffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

func (v *validation) warehouse() {
	w := &v.c.Warehouse
	if *w == (Warehouse{}) {
		return
	}
	if w.Host == "" {
		v.missing("warehouse.host", "required when a warehouse is configured: the server's host name or IP address")
	} else if msg := checkHost(w.Host); msg != "" {
		v.problemf("warehouse.host", "%s", msg)
	}

	redshift := IsRedshift(w.Host)
	switch {
	case w.Port == 0 && redshift:
		w.Port = 5439
	case w.Port == 0:
		w.Port = 5432
	case w.Port < 1 || w.Port > 65535:
		v.problemf("warehouse.port", "%d is not a port (1-65535); leave it out for %d", w.Port, defaultPort(redshift))
	}

	for _, f := range []struct{ key, value, what string }{
		{"database", w.Database, "the database to connect to (Redshift's first one is dev)"},
		{"user", w.User, "the role kernels connect as"},
	} {
		switch {
		case f.value == "":
			v.missing("warehouse."+f.key, "required: "+f.what)
		case strings.ContainsFunc(f.value, isControl):
			v.problemf("warehouse."+f.key, "%q holds a control character such as a line break", f.value)
		}
	}

	// The password itself is never quoted: it may be a literal.
	if strings.ContainsAny(w.Password, "\r\n\x00") {
		v.problemf("warehouse.password", "holds a line break or NUL, which a .pgpass file cannot hold")
	}

	switch {
	case w.SSLMode == "" && redshift:
		w.SSLMode = "require"
	case w.SSLMode == "":
		w.SSLMode = "prefer"
	case !slices.Contains(sslModes, w.SSLMode):
		hint := ""
		if l := strings.ToLower(strings.TrimSpace(w.SSLMode)); slices.Contains(sslModes, l) {
			hint = fmt.Sprintf("; did you mean %q?", l)
		}
		v.problemf("warehouse.sslmode", "%q is not a libpq sslmode (valid: %s)%s", w.SSLMode, strings.Join(sslModes, ", "), hint)
	}
}

// missing records a problem with a key the file left out, at the line of
// the section that lacks it.
func (v *validation) missing(path, msg string) {
	line, ok := v.c.lines[path]
	if !ok {
		line = v.c.lines[path[:strings.LastIndexByte(path, '.')]]
	}
	v.problems = append(v.problems, Problem{Line: line, Path: path, Message: msg})
}

func defaultPort(redshift bool) int {
	if redshift {
		return 5439
	}
	return 5432
}

// checkHost says what is wrong with a warehouse host, or "".
func checkHost(h string) string {
	switch {
	case strings.Contains(h, "://") || strings.Contains(h, "@"):
		// Never quoted: a URL may carry a password.
		return "looks like a URL; give the host name only (port, database, user and password have keys of their own)"
	case strings.HasPrefix(h, "/"):
		if strings.ContainsFunc(h, isControl) {
			return fmt.Sprintf("%q holds a control character", h)
		}
		return "" // the directory of a Unix socket
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("%q has a zone (%%%s); leave it out", h, a.Zone())
		}
		return ""
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		return fmt.Sprintf("%q has a port; give the host %q here and the port %s in warehouse.port", h, host, port)
	}
	if !isHostName(h) {
		return fmt.Sprintf("%q is not a host name or IP address (example: dw.example.com)", h)
	}
	return ""
}

// isHostName reports whether s is a DNS name: dot-separated labels of
// letters, digits, '-' and '_', none empty or longer than 63 bytes.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
