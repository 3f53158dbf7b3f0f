package portal

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The database is made 0600, migrated to the last version, and a database
// newer than this binary is refused, not touched.
func TestStoreMigrations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "portal.db")
	s, err := openStore(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("version %d, %v; want %d", v, err, len(migrations))
	}
	s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// Reopening runs nothing twice.
	if s, err = openStore(t.Context(), path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := openStore(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer than this spinbook") {
		t.Errorf("a newer database: %v, want it refused", err)
	}
}

// Cost today and this month adds up the runs the portal saw, cut at the
// start of the period.
func TestCostSince(t *testing.T) {
	s, err := openStore(t.Context(), filepath.Join(t.TempDir(), "portal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	price := 2.0
	// Yesterday 22:00 to today 02:00, then today 10:00 until now (12:00).
	s.runStarted(ctx, "alice", "small", &price, day.Add(-2*time.Hour))
	s.runStopped(ctx, "alice", day.Add(2*time.Hour))
	s.runStarted(ctx, "alice", "small", &price, day.Add(10*time.Hour))
	s.runStarted(ctx, "alice", "small", &price, day.Add(11*time.Hour)) // open already: ignored
	now := day.Add(12 * time.Hour)
	if c, ok, err := s.costSince(ctx, "alice", day, now); err != nil || !ok || c != 8 {
		t.Errorf("today: %v %v %v, want $8 (4 hours)", c, ok, err)
	}
	if c, _, _ := s.costSince(ctx, "alice", day.AddDate(0, 0, -5), now); c != 12 {
		t.Errorf("this month: %v, want $12 (6 hours)", c)
	}
	if _, ok, _ := s.costSince(ctx, "bob", day, now); ok {
		t.Errorf("bob, who never ran, has a cost")
	}
}
