package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/internal/backend"
)

// prepareWarehouse readies libpq for the configured warehouse: it writes
// CredentialsDir/.pgpass and returns the environment that points psql,
// psycopg2 and SQLAlchemy at it. Inherited PG* variables are dropped first,
// so that no PGPASSWORD or stray PGHOST overrides the configured server.
func (a *Agent) prepareWarehouse() ([]string, error) {
	w := a.spec.Warehouse
	if w == nil {
		return nil, nil
	}
	a.redact.Add(w.Password) // the backend lists it in Secrets too; never rely on one place
	var dropped []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "PG") {
			os.Unsetenv(name)
			dropped = append(dropped, name)
		}
	}
	if len(dropped) > 0 {
		a.log.Info("dropped inherited libpq variables in favour of the warehouse config", "names", dropped)
	}
	env := pgEnv(w)
	if w.Password != "" {
		if a.spec.CredentialsDir == "" {
			return nil, errors.New("warehouse: the backend gave no credentials directory for .pgpass")
		}
		path, err := writePgpass(a.spec.CredentialsDir, w)
		if err != nil {
			return nil, err
		}
		env = append(env, "PGPASSFILE="+path)
	}
	a.log.Info("warehouse ready", "host", w.Host, "port", w.Port, "database", w.Database, "user", w.User,
		"sslmode", w.SSLMode, "password", w.Password != "")
	return env, nil
}

// pgEnv is the libpq environment for w, without any password.
func pgEnv(w *backend.Warehouse) []string {
	return []string{
		"PGHOST=" + w.Host,
		"PGPORT=" + strconv.Itoa(w.Port),
		"PGDATABASE=" + w.Database,
		"PGUSER=" + w.User,
		"PGSSLMODE=" + w.SSLMode,
	}
}

// writePgpass writes dir/.pgpass for w with mode 0600, replacing any old
// one, and returns its path. The file belongs to whoever owns dir: the user
// Jupyter runs as (containers pass that user's home; when the agent runs as
// root there, it hands the file over).
func writePgpass(dir string, w *backend.Warehouse) (string, error) {
	if strings.ContainsAny(w.Password, "\r\n\x00") {
		return "", errors.New("write .pgpass: the warehouse password holds a line break or NUL, which a .pgpass file cannot hold")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("write .pgpass: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("write .pgpass: %w", err)
	}
	f, err := os.CreateTemp(dir, ".pgpass-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("write .pgpass: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing left to remove
	_, err = f.WriteString(pgpass(w))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && err == nil && int(st.Uid) != os.Geteuid() && os.Geteuid() == 0 {
		err = f.Chown(int(st.Uid), int(st.Gid))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	path := filepath.Join(dir, ".pgpass")
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		// os errors name the file and the cause, never what was written.
		return "", fmt.Errorf("write .pgpass: %w", err)
	}
	return path, nil
}

// pgpass is the .pgpass content for w: host:port:database:user:password,
// with any database on the server, and ':' and '\' escaped as libpq
// requires. A Unix socket directory other than libpq's default is matched
// by its path, the default one by "localhost", so both lines are written.
func pgpass(w *backend.Warehouse) string {
	line := func(host string) string {
		return strings.Join([]string{pgpassField(host), strconv.Itoa(w.Port), "*", pgpassField(w.User), pgpassField(w.Password)}, ":") + "\n"
	}
	if strings.HasPrefix(w.Host, "/") {
		return line(w.Host) + line("localhost")
	}
	return line(w.Host)
}

var pgpassEscaper = strings.NewReplacer(`\`, `\\`, `:`, `\:`)

func pgpassField(s string) string { return pgpassEscaper.Replace(s) }
