// Package db keeps the store directory of design §15 in jaego's SQL database (PostgreSQL,
// or SQLite in jaego dev): the durable side of the directory, which Redis's geo index is
// filled from, and which answers while Redis does not.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
	"github.com/jaego/jaego/internal/sqldb"
)

// Directory is the SQL store directory.
type Directory struct{ db *sqldb.DB }

var _ sourcing.Directory = (*Directory)(nil)

// New returns the directory in db (migrated: `jaego migrate`).
func New(db *sqldb.DB) *Directory { return &Directory{db: db} }

// Put implements sourcing.Directory.
func (d *Directory) Put(ctx context.Context, s sourcing.Store) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO stores (id, name, lat, lon, capabilities, status, updated_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, lat = excluded.lat, lon = excluded.lon,
			capabilities = excluded.capabilities, status = excluded.status, updated_ms = excluded.updated_ms`,
		s.ID, s.Name, s.Lat, s.Lon, strings.Join(s.Capabilities, ","), string(s.Status), time.Now().UnixMilli())
	if err != nil {
		return jaego.Unavailable("store directory put", err)
	}
	return nil
}

const columns = `id, name, lat, lon, capabilities, status`

func scan(rows interface{ Scan(...any) error }) (sourcing.Store, error) {
	var s sourcing.Store
	var caps, status string
	if err := rows.Scan(&s.ID, &s.Name, &s.Lat, &s.Lon, &caps, &status); err != nil {
		return s, err
	}
	s.Status, s.Capabilities = sourcing.Status(status), []string{}
	if caps != "" {
		s.Capabilities = strings.Split(caps, ",")
	}
	return s, nil
}

// Get implements sourcing.Directory.
func (d *Directory) Get(ctx context.Context, id string) (sourcing.Store, error) {
	s, err := scan(d.db.QueryRowContext(ctx, `SELECT `+columns+` FROM stores WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, &jaego.Error{Code: jaego.CodeNotFound, Detail: fmt.Sprintf("no store %s in the directory", id)}
	}
	if err != nil {
		return s, jaego.Unavailable("store directory get", err)
	}
	return s, nil
}

// All is every store of the directory, by id: what Redis's geo index is filled from.
func (d *Directory) All(ctx context.Context) ([]sourcing.Store, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+columns+` FROM stores ORDER BY id`)
	if err != nil {
		return nil, jaego.Unavailable("store directory read", err)
	}
	var out []sourcing.Store
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		s, err := scan(r)
		out = append(out, s)
		return err
	})
	if err != nil {
		return nil, jaego.Unavailable("store directory read", err)
	}
	return out, nil
}

// Near implements sourcing.Directory: the fallback's answer, while Redis does not give
// one. It reads the whole directory (a retailer's few thousand stores) and measures each.
func (d *Directory) Near(ctx context.Context, lat, lon, radiusKm float64, limit int) ([]sourcing.Near, error) {
	all, err := d.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []sourcing.Near
	for _, s := range all {
		if dist := sourcing.DistanceKm(lat, lon, s.Lat, s.Lon); dist <= radiusKm {
			out = append(out, sourcing.Near{Store: s, DistanceKm: dist})
		}
	}
	sourcing.SortNear(out)
	return out[:min(len(out), limit)], nil
}
