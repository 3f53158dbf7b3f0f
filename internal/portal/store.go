package portal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
)

// migrations are the database's schema, one step per version: the
// database's user_version says how many have run. Append only; never edit
// a step that has shipped.
var migrations = []string{
	// 1: sessions, API tokens, the audit log, settings.
	`CREATE TABLE sessions (
		key      TEXT PRIMARY KEY,  -- hex SHA-256 of the cookie's id
		user     TEXT NOT NULL,
		admin    INTEGER NOT NULL,
		csrf     TEXT NOT NULL,
		expires  INTEGER NOT NULL   -- unix seconds; slides on use
	);
	CREATE TABLE tokens (
		id       INTEGER PRIMARY KEY,
		user     TEXT NOT NULL,
		name     TEXT NOT NULL,
		hash     TEXT NOT NULL UNIQUE, -- hex SHA-256 of the token
		created  INTEGER NOT NULL,
		used     INTEGER NOT NULL DEFAULT 0,
		revoked  INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE audit (
		id       INTEGER PRIMARY KEY,
		at       INTEGER NOT NULL,
		user     TEXT NOT NULL,   -- who acted
		action   TEXT NOT NULL,
		target   TEXT NOT NULL,   -- whose server, or what
		result   TEXT NOT NULL,   -- "ok" or what failed
		client   TEXT NOT NULL
	);
	CREATE TABLE settings (
		user     TEXT NOT NULL,   -- "" for the portal's own
		key      TEXT NOT NULL,
		value    TEXT NOT NULL,
		PRIMARY KEY (user, key)
	);`,
	// 2: runs, for cost today and this month: one row per server start the
	// portal saw, closed when it saw the server stop.
	`CREATE TABLE runs (
		id       INTEGER PRIMARY KEY,
		user     TEXT NOT NULL,
		size     TEXT NOT NULL,
		price    REAL,            -- USD per hour; NULL: no price
		started  INTEGER NOT NULL,
		stopped  INTEGER          -- NULL while it runs
	);
	CREATE INDEX runs_user ON runs (user, stopped);`,
}

// A store is the portal's state in SQLite: what the portal alone knows.
// What runs is the backend's to say.
type store struct {
	db *sql.DB
}

// openStore opens (creating, 0600) the database at path and migrates it.
func openStore(ctx context.Context, path string) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("portal state dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("portal database: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("portal database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("portal database: %w", err)
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	s := &store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *store) Close() error { return s.db.Close() }

// migrate runs the migrations the database has not seen, each in one
// transaction with its version bump.
func (s *store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("portal database version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("portal database is version %d, newer than this spinbook knows (%d): run the newer spinbook, or move the database away", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate portal database: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate portal database to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate portal database to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate portal database to version %d: %w", v+1, err)
		}
	}
	return nil
}

// hashHex is the hex SHA-256 of a secret (a session id, an API token): the
// database keeps only that.
func hashHex(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// A session is a signed-in browser.
type session struct {
	Key   string // hashHex of the cookie's id
	User  string
	Admin bool
	CSRF  string
}

func (s *store) createSession(ctx context.Context, id string, sess session, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO sessions (key, user, admin, csrf, expires) VALUES (?, ?, ?, ?, ?)",
		hashHex(id), sess.User, sess.Admin, sess.CSRF, expires.Unix())
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// touchSession returns the live session with cookie id and moves its
// expiry to newExpiry; ok is false when there is none (or it expired).
func (s *store) touchSession(ctx context.Context, id string, now, newExpiry time.Time) (session, bool, error) {
	sess := session{Key: hashHex(id)}
	err := s.db.QueryRowContext(ctx, "UPDATE sessions SET expires = ? WHERE key = ? AND expires > ? RETURNING user, admin, csrf",
		newExpiry.Unix(), sess.Key, now.Unix()).Scan(&sess.User, &sess.Admin, &sess.CSRF)
	if errors.Is(err, sql.ErrNoRows) {
		return sess, false, nil
	}
	if err != nil {
		return sess, false, fmt.Errorf("look up session: %w", err)
	}
	return sess, true, nil
}

func (s *store) deleteSession(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM sessions WHERE key = ?", key); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

func (s *store) pruneSessions(ctx context.Context, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM sessions WHERE expires <= ?", now.Unix()); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	return nil
}

// A token is a personal API token, as its owner's Tokens page lists it.
type token struct {
	ID      int64
	User    string
	Name    string
	Created time.Time
	Used    time.Time // zero: never
	Revoked bool
}

func (s *store) createToken(ctx context.Context, user, name, secret string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO tokens (user, name, hash, created) VALUES (?, ?, ?, ?)",
		user, name, hashHex(secret), now.Unix())
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// tokenUser returns the owner of the live token secret and notes its use;
// ok is false for an unknown or revoked token.
func (s *store) tokenUser(ctx context.Context, secret string, now time.Time) (string, bool, error) {
	var user string
	err := s.db.QueryRowContext(ctx, "UPDATE tokens SET used = ? WHERE hash = ? AND revoked = 0 RETURNING user",
		now.Unix(), hashHex(secret)).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up token: %w", err)
	}
	return user, true, nil
}

func (s *store) tokens(ctx context.Context, user string) ([]token, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, user, name, created, used, revoked FROM tokens WHERE user = ? ORDER BY id DESC", user)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []token
	for rows.Next() {
		var t token
		var created, used int64
		if err := rows.Scan(&t.ID, &t.User, &t.Name, &created, &used, &t.Revoked); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Created = time.Unix(created, 0)
		if used != 0 {
			t.Used = time.Unix(used, 0)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// revokeToken revokes user's token id; ok is false when user has no such
// token.
func (s *store) revokeToken(ctx context.Context, user string, id int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE tokens SET revoked = 1 WHERE id = ? AND user = ?", id, user)
	if err != nil {
		return false, fmt.Errorf("revoke token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// An auditEntry is one line of the audit log.
type auditEntry struct {
	At                                   time.Time
	User, Action, Target, Result, Client string
}

func (s *store) audit(ctx context.Context, e auditEntry) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO audit (at, user, action, target, result, client) VALUES (?, ?, ?, ?, ?, ?)",
		e.At.Unix(), e.User, e.Action, e.Target, e.Result, e.Client)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// auditLog returns the newest limit entries; user "" for everyone's, else
// those by user or about user's server.
func (s *store) auditLog(ctx context.Context, user string, limit int) ([]auditEntry, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT at, user, action, target, result, client FROM audit WHERE ? = '' OR user = ? OR target = ? ORDER BY id DESC LIMIT ?",
		user, user, user, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []auditEntry
	for rows.Next() {
		var e auditEntry
		var at int64
		if err := rows.Scan(&at, &e.User, &e.Action, &e.Target, &e.Result, &e.Client); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = time.Unix(at, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *store) setting(ctx context.Context, user, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE user = ? AND key = ?", user, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, true, nil
}

func (s *store) setSetting(ctx context.Context, user, key, value string) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO settings (user, key, value) VALUES (?, ?, ?) ON CONFLICT (user, key) DO UPDATE SET value = excluded.value",
		user, key, value)
	if err != nil {
		return fmt.Errorf("write setting %s: %w", key, err)
	}
	return nil
}

// runStarted records that user's server runs since at, at price (nil: no
// price), unless a run is open already.
func (s *store) runStarted(ctx context.Context, user, size string, price *float64, at time.Time) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO runs (user, size, price, started) SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM runs WHERE user = ? AND stopped IS NULL)",
		user, size, price, at.Unix(), user)
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	return nil
}

// runStopped closes user's open run at at.
func (s *store) runStopped(ctx context.Context, user string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE runs SET stopped = ? WHERE user = ? AND stopped IS NULL", at.Unix(), user); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	return nil
}

// costSince is what user's runs cost from since until now, in USD, and
// whether any of them had a price.
func (s *store) costSince(ctx context.Context, user string, since, now time.Time) (float64, bool, error) {
	var total sql.NullFloat64
	err := s.db.QueryRowContext(ctx, `SELECT SUM(price * (MIN(COALESCE(stopped, ?), ?) - MAX(started, ?)) / 3600.0)
		FROM runs WHERE user = ? AND price IS NOT NULL AND COALESCE(stopped, ?) > ?`,
		now.Unix(), now.Unix(), since.Unix(), user, now.Unix(), since.Unix()).Scan(&total)
	if err != nil {
		return 0, false, fmt.Errorf("sum cost: %w", err)
	}
	return total.Float64, total.Valid, nil
}
