package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/jaego/jaego/internal/sqldb"
)

// PostgresAdminURL is the server the tests create their databases on:
// $JAEGO_TEST_POSTGRES_URL (scripts/test.sh sets it when it had to start a private
// server), else the machine's PostgreSQL on 127.0.0.1:5432 with trust auth.
func PostgresAdminURL() string {
	if u := os.Getenv("JAEGO_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Postgres creates a private, empty database for the test on the server of
// PostgresAdminURL, drops it when the test ends, and returns its URL. Tests never use the
// server's own databases.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testenv: no PostgreSQL at %s (%v): run the tests with ./scripts/test.sh, which starts one, or set JAEGO_TEST_POSTGRES_URL", admin, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "jaego_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLDatabases runs fn as two parallel subtests, "postgres" and "sqlite", each given a
// function that opens a fresh migrated database of its kind (a private PostgreSQL database,
// or a SQLite file: jaego dev's), so that a SQL store is held to both.
func SQLDatabases(t *testing.T, fn func(t *testing.T, open func(t *testing.T) *sqldb.DB)) {
	for name, url := range map[string]func(t *testing.T) string{
		"postgres": func(t *testing.T) string { return Postgres(t) },
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "test.db") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, func(t *testing.T) *sqldb.DB {
				d, err := sqldb.Open(context.Background(), url(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				if _, err := d.Migrate(context.Background(), nil); err != nil {
					t.Fatal(err)
				}
				return d
			})
		})
	}
}
