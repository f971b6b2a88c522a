// Package db keeps gift promotions in jaego's SQL database (internal/sqldb): one repository
// for PostgreSQL and the SQLite of jaego dev.
package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/sqldb"
)

// DB is the promotion repository on an open database.
type DB struct {
	*sqldb.DB
	// afterPromotionsRead, set only by this package's tests, runs between the promotions
	// query of a read and the queries of their children.
	afterPromotionsRead func()
}

// New returns the promotion repository of d.
func New(d *sqldb.DB) *DB { return &DB{DB: d} }

// ErrNotFound is a promotion id that does not exist.
var ErrNotFound = &jaego.Error{Code: jaego.CodeNotFound, Detail: "no such promotion"}

// Create stores a new active promotion from a validated spec.
func (d *DB) Create(ctx context.Context, s promo.Spec, now time.Time) (promo.Promotion, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return promo.Promotion{}, err
	}
	now = now.UTC().Truncate(time.Millisecond)
	by := jaego.Caller(ctx)
	p := promo.Promotion{ID: id.String(), Status: promo.Active, Spec: s, CreatedAt: now, UpdatedAt: now, CreatedBy: by, UpdatedBy: by}
	err = d.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO promotions (id, name, status, starts_at_ms, ends_at_ms,
			priority, min_qty, min_amount, max_per_order, created_at_ms, updated_at_ms, created_by, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)`,
			p.ID, s.Name, p.Status, s.StartsAt.UnixMilli(), s.EndsAt.UnixMilli(), s.Priority,
			s.Condition.MinQty, s.Condition.MinAmount, s.MaxPerOrder, now.UnixMilli(), now.UnixMilli(), by); err != nil {
			return err
		}
		if err := logChange(ctx, tx, p.ID, now, "create"); err != nil {
			return err
		}
		return insertChildren(ctx, tx, d.Postgres(), &p)
	})
	return p, err
}

// Update replaces the spec of promotion id with what change returns for the current one,
// atomically: concurrent updates of one promotion are serialised, none is lost.
func (d *DB) Update(ctx context.Context, id string, change func(*promo.Promotion) (promo.Spec, error), now time.Time) (promo.Promotion, error) {
	var out promo.Promotion
	err := d.InTx(ctx, func(tx *sql.Tx) error {
		// Writing the row first takes its lock (PostgreSQL) or the database's (SQLite), so
		// the read below is the latest committed state and stays so until commit.
		if err := touch(ctx, tx, id, now, "update"); err != nil {
			return err
		}
		cur, err := d.load(ctx, tx, "id = $1", id)
		if err != nil {
			return err
		}
		if len(cur) == 0 {
			return ErrNotFound
		}
		s, err := change(&cur[0])
		if err != nil {
			return err
		}
		out = cur[0]
		out.Spec = s
		if _, err := tx.ExecContext(ctx, `UPDATE promotions SET name = $2, starts_at_ms = $3, ends_at_ms = $4,
			priority = $5, min_qty = $6, min_amount = $7, max_per_order = $8 WHERE id = $1`,
			id, s.Name, s.StartsAt.UnixMilli(), s.EndsAt.UnixMilli(), s.Priority,
			s.Condition.MinQty, s.Condition.MinAmount, s.MaxPerOrder); err != nil {
			return err
		}
		for _, table := range childTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE promotion_id = $1`, id); err != nil {
				return err
			}
		}
		return insertChildren(ctx, tx, d.Postgres(), &out)
	})
	return out, err
}

// Stop stops promotion id (stopping a stopped one is a no-op) and returns it.
func (d *DB) Stop(ctx context.Context, id string, now time.Time) (promo.Promotion, error) {
	var out promo.Promotion
	err := d.InTx(ctx, func(tx *sql.Tx) error {
		if err := touch(ctx, tx, id, now, "stop"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE promotions SET status = $2 WHERE id = $1`, id, promo.Stopped); err != nil {
			return err
		}
		ps, err := d.load(ctx, tx, "id = $1", id)
		if err == nil {
			out = ps[0]
		}
		return err
	})
	return out, err
}

// Get returns promotion id.
func (d *DB) Get(ctx context.Context, id string) (promo.Promotion, error) {
	ps, err := d.read(ctx, "id = $1", id)
	if err != nil {
		return promo.Promotion{}, err
	}
	if len(ps) == 0 {
		return promo.Promotion{}, ErrNotFound
	}
	return ps[0], nil
}

// List returns up to limit promotions with an id after after ("" from the first), in id
// (creation) order, of status when it is not empty.
func (d *DB) List(ctx context.Context, status promo.Status, after string, limit int) ([]promo.Promotion, error) {
	cond, args := "id > $1", []any{after}
	if status != "" {
		cond, args = cond+" AND status = $2", append(args, string(status))
	}
	args = append(args, limit)
	return d.read(ctx, fmt.Sprintf("id IN (SELECT id FROM promotions WHERE %s ORDER BY id LIMIT $%d)", cond, len(args)), args...)
}

// Count is the number of promotions stored, whatever their status.
func (d *DB) Count(ctx context.Context) (int64, error) {
	var n int64
	err := d.QueryRowContext(ctx, `SELECT COUNT(*) FROM promotions`).Scan(&n)
	return n, err
}

// Candidates returns the active promotions whose period overlaps [from, to): a cache
// version's content.
func (d *DB) Candidates(ctx context.Context, from, to time.Time) ([]promo.Promotion, error) {
	return d.read(ctx, "status = 'active' AND ends_at_ms > $1 AND starts_at_ms < $2", from.UnixMilli(), to.UnixMilli())
}

// read runs load in one read-only snapshot: its five statements see one committed state, so a
// promotion created or changed between two of them can neither lose nor graft children.
func (d *DB) read(ctx context.Context, where string, args ...any) ([]promo.Promotion, error) {
	var ps []promo.Promotion
	err := d.InSnapshot(ctx, func(tx *sql.Tx) error {
		var err error
		ps, err = d.load(ctx, tx, where, args...)
		return err
	})
	return ps, err
}

// touch marks promotion id changed now by the caller (and takes its row's lock), and logs
// the change.
func touch(ctx context.Context, tx *sql.Tx, id string, now time.Time, action string) error {
	res, err := tx.ExecContext(ctx, `UPDATE promotions SET updated_at_ms = $2, updated_by = $3 WHERE id = $1`, id, now.UnixMilli(), jaego.Caller(ctx))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return err
	}
	return logChange(ctx, tx, id, now, action)
}

// logChange keeps who changed promotion id, when, and how.
func logChange(ctx context.Context, tx *sql.Tx, id string, now time.Time, action string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO promotion_changes (promotion_id, at_ms, by_key, action) VALUES ($1, $2, $3, $4)`,
		id, now.UnixMilli(), jaego.Caller(ctx), action)
	return err
}

// Changes lists the changes of promotion id, oldest first.
func (d *DB) Changes(ctx context.Context, id string) ([]promo.Change, error) {
	if _, err := d.Get(ctx, id); err != nil {
		return nil, err
	}
	rows, err := d.QueryContext(ctx, `SELECT at_ms, by_key, action FROM promotion_changes WHERE promotion_id = $1 ORDER BY at_ms, CASE action WHEN 'create' THEN 0 WHEN 'update' THEN 1 ELSE 2 END`, id)
	if err != nil {
		return nil, err
	}
	out := []promo.Change{}
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var c promo.Change
		var at int64
		if err := r.Scan(&at, &c.By, &c.Action); err != nil {
			return err
		}
		c.At = time.UnixMilli(at).UTC()
		out = append(out, c)
		return nil
	})
	return out, err
}

var childTables = []string{"promotion_channels", "promotion_stores", "promotion_targets", "promotion_gifts"}

func insertChildren(ctx context.Context, tx *sql.Tx, postgres bool, p *promo.Promotion) error {
	rows := func(vals []string) [][]any {
		out := make([][]any, len(vals))
		for i, v := range vals {
			out[i] = []any{p.ID, v}
		}
		return out
	}
	gifts := make([][]any, len(p.Gifts))
	for i, g := range p.Gifts {
		gifts[i] = []any{p.ID, i, g.SKU, g.Qty}
	}
	for _, ins := range []struct {
		table, cols string
		rows        [][]any
	}{
		{"promotion_channels", "promotion_id, channel", rows(p.Channels)},
		{"promotion_stores", "promotion_id, store", rows(p.Stores)},
		{"promotion_targets", "promotion_id, sku", rows(p.Targets)},
		{"promotion_gifts", "promotion_id, position, sku, qty", gifts},
	} {
		if err := insertRows(ctx, tx, postgres, ins.table, ins.cols, ins.rows); err != nil {
			return fmt.Errorf("inserting %s: %w", ins.table, err)
		}
	}
	return nil
}

// insertRows inserts rows with multi-row VALUES: a promotion with 10,000 targets is a
// few round trips, not 10,000.
func insertRows(ctx context.Context, tx *sql.Tx, postgres bool, table, cols string, rows [][]any) error {
	for _, st := range sqldb.MultiRowValues(postgres, "INSERT INTO "+table+" ("+cols+") VALUES ", rows, "") {
		if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// load reads the promotions matching where (a condition on the promotions table, with
// args) with their children: one query per table, assembled in Go.
func (d *DB) load(ctx context.Context, q querier, where string, args ...any) ([]promo.Promotion, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, status, starts_at_ms, ends_at_ms, priority,
		min_qty, min_amount, max_per_order, created_at_ms, updated_at_ms, created_by, updated_by FROM promotions WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	var ps []promo.Promotion
	index := map[string]int{}
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var p promo.Promotion
		var starts, ends, created, updated int64
		if err := r.Scan(&p.ID, &p.Name, &p.Status, &starts, &ends, &p.Priority, &p.Condition.MinQty,
			&p.Condition.MinAmount, &p.MaxPerOrder, &created, &updated, &p.CreatedBy, &p.UpdatedBy); err != nil {
			return err
		}
		p.StartsAt, p.EndsAt = time.UnixMilli(starts).UTC(), time.UnixMilli(ends).UTC()
		p.CreatedAt, p.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		p.Channels, p.Stores, p.Targets, p.Gifts = []string{}, []string{}, []string{}, []promo.Gift{}
		index[p.ID] = len(ps)
		ps = append(ps, p)
		return nil
	})
	if err != nil || len(ps) == 0 {
		return ps, err
	}
	if d.afterPromotionsRead != nil {
		d.afterPromotionsRead()
	}
	// A child of a promotion the first query did not return means the statements saw
	// different states: refuse to assemble rather than graft it onto another promotion.
	at := func(id string) (*promo.Promotion, error) {
		i, ok := index[id]
		if !ok {
			return nil, fmt.Errorf("promotion %s appeared between two statements of one read", id)
		}
		return &ps[i], nil
	}
	sub := `promotion_id IN (SELECT id FROM promotions WHERE ` + where + `)`
	for _, c := range []struct {
		table, col string
		field      func(*promo.Promotion) *[]string
	}{
		{"promotion_channels", "channel", func(p *promo.Promotion) *[]string { return &p.Channels }},
		{"promotion_stores", "store", func(p *promo.Promotion) *[]string { return &p.Stores }},
		{"promotion_targets", "sku", func(p *promo.Promotion) *[]string { return &p.Targets }},
	} {
		rows, err := q.QueryContext(ctx, `SELECT promotion_id, `+c.col+` FROM `+c.table+` WHERE `+sub+` ORDER BY promotion_id, `+c.col, args...)
		if err != nil {
			return nil, err
		}
		if err := sqldb.ScanAll(rows, func(r *sql.Rows) error {
			var id, v string
			if err := r.Scan(&id, &v); err != nil {
				return err
			}
			p, err := at(id)
			if err != nil {
				return err
			}
			f := c.field(p)
			*f = append(*f, v)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	rows, err = q.QueryContext(ctx, `SELECT promotion_id, sku, qty FROM promotion_gifts WHERE `+sub+` ORDER BY promotion_id, position`, args...)
	if err != nil {
		return nil, err
	}
	return ps, sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var id string
		var g promo.Gift
		if err := r.Scan(&id, &g.SKU, &g.Qty); err != nil {
			return err
		}
		p, err := at(id)
		if err != nil {
			return err
		}
		p.Gifts = append(p.Gifts, g)
		return nil
	})
}
