// Package sqldb is jaego's SQL database: PostgreSQL in production (pgx v5 through
// database/sql), the pure-Go SQLite of `jaego dev` otherwise, with one set of goose
// migrations embedded in the binary for both. The gift promotions (internal/promo/db) and
// the durable stock copy (internal/inventory/db) live in it.
package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/jaego/jaego/internal/jaego"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open database and its dialect.
type DB struct {
	*sql.DB
	dialect goose.Dialect
}

// PostgresConns is how many connections one jaego process keeps to PostgreSQL at most (the
// durable copy's projector and fallback reads, the promotions). PostgreSQL's default
// max_connections is 100: size it, or put a pooler in front, for 16 per instance you run.
const PostgresConns = 16

// Open opens url: postgres://… or postgresql://… is PostgreSQL; sqlite:PATH (or
// sqlite::memory:) is the embedded SQLite. It checks the connection.
func Open(ctx context.Context, url string) (*DB, error) {
	var d *DB
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		db, err := sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		// A pool that keeps its connections: database/sql keeps 2 idle by default, so under
		// 32 concurrent fallback reads many queries opened (and closed) a PostgreSQL
		// connection of their own, a backend process each (jaegobench copy: fallback p99
		// 20 ms before, 13 ms after; the rate, bound by PostgreSQL on the same two cores,
		// stayed at 0.23-0.24 of Redis's).
		db.SetMaxOpenConns(PostgresConns)
		db.SetMaxIdleConns(PostgresConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		d = &DB{DB: db, dialect: goose.DialectPostgres}
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		// One connection: SQLite has one writer anyway, and the busy timeout covers other
		// processes; foreign keys are off by default in SQLite and must be asked for.
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		db.SetMaxOpenConns(1)
		d = &DB{DB: db, dialect: goose.DialectSQLite3}
	default:
		return nil, fmt.Errorf("database url %q: want postgres://… or sqlite:PATH", jaego.RedactURL(url))
	}
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("connecting to %s: %w", jaego.RedactURL(url), err)
	}
	return d, nil
}

func (d *DB) provider(log *slog.Logger) (*goose.Provider, error) {
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(stockCopyMigration(d.dialect == goose.DialectPostgres), webhookRowsMigration(d.dialect == goose.DialectPostgres))}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	if d.dialect == goose.DialectPostgres {
		// Two `jaego migrate` at once (say, two deploys) wait for each other on an
		// advisory lock instead of racing.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(d.dialect, d.DB, sub, opts...)
}

// Migrate applies every pending migration and returns the schema version reached.
func (d *DB) Migrate(ctx context.Context, log *slog.Logger) (int64, error) {
	p, err := d.provider(log)
	if err != nil {
		return 0, err
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrating: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// ErrSchemaBehind means the database lacks migrations this binary needs.
var ErrSchemaBehind = errors.New("the database schema is behind this binary: run `jaego migrate`")

// CheckSchema answers ErrSchemaBehind when migrations are pending.
func (d *DB) CheckSchema(ctx context.Context) error {
	p, err := d.provider(nil)
	if err != nil {
		return err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if current < target {
		return fmt.Errorf("%w (database at %d, binary needs %d)", ErrSchemaBehind, current, target)
	}
	return nil
}

// Postgres reports whether the database is PostgreSQL (else the SQLite of jaego dev).
func (d *DB) Postgres() bool { return d.dialect == goose.DialectPostgres }

// InTx runs fn in a transaction and commits it, or rolls it back when fn fails.
func (d *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// InSnapshot runs fn in a read-only transaction whose statements all see one committed
// state: REPEATABLE READ on PostgreSQL; on SQLite (WAL) every transaction reads one snapshot.
func (d *DB) InSnapshot(ctx context.Context, fn func(*sql.Tx) error) error {
	var opts *sql.TxOptions
	if d.Postgres() {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := d.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// ScanAll calls fn for every row of rows, closes them, and returns the first error.
func ScanAll(rows *sql.Rows, fn func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Statement is one SQL statement and its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// MultiRowValues splits rows into statements head (…), (…) tail of at most 4,000
// parameters each (PostgreSQL takes 65,535, SQLite 32,766): a batch of 10,000 rows is a
// handful of round trips, not 10,000. Parameters are $n on PostgreSQL and ?n on SQLite,
// whose parser looks every $name up in a list of those before it: the 4,000 of one
// statement took it seconds under the race detector (a projector's commit of 500 changes
// took 0.1 s; with ?n, a few milliseconds).
func MultiRowValues(postgres bool, head string, rows [][]any, tail string) []Statement {
	if len(rows) == 0 {
		return nil
	}
	mark := "?"
	if postgres {
		mark = "$"
	}
	per := max(1, 4000/max(1, len(rows[0])))
	var out []Statement
	for len(rows) > 0 {
		n := min(per, len(rows))
		var q strings.Builder
		q.WriteString(head)
		args := make([]any, 0, n*len(rows[0]))
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteByte('(')
			for j, v := range r {
				if j > 0 {
					q.WriteString(", ")
				}
				args = append(args, v)
				q.WriteString(mark + strconv.Itoa(len(args)))
			}
			q.WriteByte(')')
		}
		q.WriteString(tail)
		out = append(out, Statement{SQL: q.String(), Args: args})
		rows = rows[n:]
	}
	return out
}
