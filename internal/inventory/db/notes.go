package db

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/sqldb"
)

// Reservations and load marks in the copy (design §8). The projector keeps them from the
// notes of the changes it commits (inventory.Note), in the same transaction: a hold's
// changes make the reservation and its items, an end's change its status, a load row's
// change raises the load's mark in the change's shard group.

type loadKey struct {
	group int
	load  string
}

// keepNotes writes what the notes of a batch's changes say, in tx.
func keepNotes(ctx context.Context, tx execer, changes []inventory.Change) error {
	var holds, items [][]any
	held := map[string]bool{}
	type end struct {
		status inventory.ReservationStatus
		at     int64
	}
	ends := map[string]end{}
	var endOrder []string
	marks := map[loadKey][2]int64{} // line, at
	for _, ch := range changes {
		n := ch.Note
		switch {
		case n == nil:
		case n.Load != "":
			k := loadKey{changeGroup(ch.ID), n.Load}
			if m, ok := marks[k]; !ok || n.Line > m[0] {
				marks[k] = [2]int64{n.Line, ch.At.UnixMilli()}
			}
		case n.Status == inventory.Held:
			at := ch.At.UnixMilli()
			if !held[n.Reservation] {
				held[n.Reservation] = true
				holds = append(holds, []any{n.Reservation, ch.Store, string(inventory.Held), n.ExpiresAt.UnixMilli(), at, at})
			}
			items = append(items, []any{n.Reservation, at, ch.SKU, n.Qty})
		default:
			if _, ok := ends[n.Reservation]; !ok {
				endOrder = append(endOrder, n.Reservation)
			}
			ends[n.Reservation] = end{n.Status, ch.At.UnixMilli()}
		}
	}
	// A hold's changes all come before its end's in the feed; an id held again after its
	// keep replaces the old basket (a later created_ms).
	if err := insert(ctx, tx, `INSERT INTO stock_reservations (id, store, status, expires_ms, created_ms, updated_ms) VALUES `, holds,
		` ON CONFLICT (id) DO UPDATE SET store = excluded.store, status = excluded.status, expires_ms = excluded.expires_ms,
		created_ms = excluded.created_ms, updated_ms = excluded.updated_ms WHERE stock_reservations.created_ms < excluded.created_ms`); err != nil {
		return err
	}
	if err := insert(ctx, tx, `INSERT INTO stock_reservation_items (id, created_ms, sku, qty) VALUES `, items, ` ON CONFLICT DO NOTHING`); err != nil {
		return err
	}
	for _, id := range endOrder {
		e := ends[id]
		if _, err := tx.exec(ctx, `UPDATE stock_reservations SET status = $1, updated_ms = $2 WHERE id = $3 AND status = 'held'`,
			string(e.status), e.at, id); err != nil {
			return err
		}
	}
	for k, m := range marks {
		if _, err := tx.exec(ctx, `INSERT INTO stock_load_marks (grp, load_id, line, at_ms) VALUES ($1, $2, $3, $4)
			ON CONFLICT (grp, load_id) DO UPDATE SET line = excluded.line, at_ms = excluded.at_ms
			WHERE stock_load_marks.line < excluded.line`, k.group, k.load, m[0], m[1]); err != nil {
			return err
		}
	}
	return nil
}

// changeGroup is the shard group of a change id ("ms-seq/group/day").
func changeGroup(id string) int {
	parts := strings.Split(id, "/")
	if len(parts) < 2 {
		return 0
	}
	g, _ := strconv.Atoi(parts[1])
	return g
}

// Reservations implements inventory.RestoreSource: the reservations held, or ended at or
// after since, with their items, in pages of n (by id).
func (c *Copy) Reservations(ctx context.Context, since time.Time, n int, emit func([]inventory.Reservation) error) error {
	last := ""
	return pages(func() ([]inventory.Reservation, error) {
		rows, err := c.db.QueryContext(ctx, `SELECT r.id, r.store, r.status, r.expires_ms, r.created_ms, r.updated_ms, i.sku, i.qty
			FROM (SELECT * FROM stock_reservations WHERE id > $1 AND (status = 'held' OR updated_ms >= $2) ORDER BY id LIMIT $3) r
			JOIN stock_reservation_items i ON i.id = r.id AND i.created_ms = r.created_ms ORDER BY r.id, i.sku`,
			last, since.UnixMilli(), n)
		if err != nil {
			return nil, err
		}
		var page []inventory.Reservation
		err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
			var rv inventory.Reservation
			var exp, created, updated int64
			var it inventory.Item
			if err := r.Scan(&rv.ID, &rv.Store, &rv.Status, &exp, &created, &updated, &it.SKU, &it.Qty); err != nil {
				return err
			}
			if len(page) == 0 || page[len(page)-1].ID != rv.ID {
				rv.ExpiresAt, rv.CreatedAt, rv.UpdatedAt = time.UnixMilli(exp).UTC(), time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
				page = append(page, rv)
			}
			page[len(page)-1].Items = append(page[len(page)-1].Items, it)
			last = rv.ID
			return nil
		})
		return page, err
	}, emit)
}

// LoadMarks implements inventory.RestoreSource.
func (c *Copy) LoadMarks(ctx context.Context) ([]inventory.LoadMark, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT grp, load_id, line, at_ms FROM stock_load_marks ORDER BY grp, load_id`)
	if err != nil {
		return nil, unavailable(err)
	}
	var out []inventory.LoadMark
	return out, sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var m inventory.LoadMark
		var at int64
		err := r.Scan(&m.Group, &m.Load, &m.Line, &at)
		m.At = time.UnixMilli(at).UTC()
		out = append(out, m)
		return err
	})
}

// pruneReservations drops the reservations that ended before before, with their items.
func (c *Copy) pruneReservations(ctx context.Context, before time.Time) error {
	return c.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM stock_reservation_items WHERE EXISTS (SELECT 1 FROM stock_reservations r
			WHERE r.id = stock_reservation_items.id AND r.status <> 'held' AND r.updated_ms < $1)
			OR NOT EXISTS (SELECT 1 FROM stock_reservations r WHERE r.id = stock_reservation_items.id AND r.created_ms = stock_reservation_items.created_ms)`,
			before.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM stock_reservations WHERE status <> 'held' AND updated_ms < $1`, before.UnixMilli())
		return err
	})
}
