// Package db keeps the durable copy of the store inventory in jaego's SQL database
// (internal/sqldb; PostgreSQL in production, the SQLite of jaego dev): current stock per
// store × SKU with its version, a ledger of every change, and the feed position the copy
// holds (design §8). The projector (inventory.Projector) writes it from the change feed;
// the breaker reads it while Redis is down; `jaego restore` rebuilds Redis from it.
//
// Exactly-once: a batch's rows, its ledger entries and the feed cursor after it commit in
// one transaction, guarded by the projector's fencing token, so a projector killed at any
// point resumes from the cursor of its last commit, and a projector whose lock lease ran
// out cannot write over its successor. Records apply only when their version is higher.
package db

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sqldb"
)

// Copy is the durable stock copy on an open, migrated database.
type Copy struct {
	db       *sqldb.DB
	mu       sync.Mutex
	partDays map[string]bool // ledger partitions known to exist (PostgreSQL)
	lookups  *lookupBatcher
}

// New returns the copy in d.
func New(d *sqldb.DB) *Copy {
	c := &Copy{db: d, partDays: map[string]bool{}}
	c.lookups = &lookupBatcher{read: c.GetMany, max: max(1, sqldb.PostgresConns/8)}
	return c
}

var _ inventory.CopyStore = (*Copy)(nil)

// ErrStaleToken is a write of a projector whose fencing token is below the copy's: a newer
// projector took over.
var ErrStaleToken = errors.New("stock copy: a projector with a newer fencing token took over")

func unavailable(err error) error { return jaego.Unavailable("stock copy", err) }

// Get implements inventory.StockReader from the copy: Source is "fallback". Lookups that
// arrive together are read together (lookupBatcher): one indexed read of many keys.
func (c *Copy) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	l, err := c.lookups.get(ctx, inventory.Key{Store: store, SKU: sku})
	if err != nil {
		return inventory.Stock{}, err
	}
	if !l.Found {
		return inventory.Stock{}, jaego.Errorf(jaego.CodeNotFound, "no stock record for store %s, sku %s", store, sku)
	}
	return l.Stock, nil
}

// GetMany implements inventory.StockReader: one statement for up to 500 keys at a time.
func (c *Copy) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	out := make([]inventory.Lookup, len(keys))
	at := make(map[inventory.Key][]int, len(keys))
	for i, k := range keys {
		at[k] = append(at[k], i)
		out[i].Stock.Source = inventory.SourceFallback // a miss too: the answer says who did not find it
	}
	mark := "?" // sqldb.MultiRowValues says why not $n on SQLite
	if c.db.Postgres() {
		mark = "$"
	}
	for start := 0; start < len(keys); start += 500 {
		part := keys[start:min(start+500, len(keys))]
		var q strings.Builder
		args := make([]any, 0, 2*len(part))
		q.WriteString(`SELECT store, sku, on_hand, reserved, safety, version, updated_at_ms FROM stock_copy WHERE (store, sku) IN (`)
		for i, k := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "(%s%d, %s%d)", mark, len(args)+1, mark, len(args)+2)
			args = append(args, k.Store, k.SKU)
		}
		q.WriteString(")")
		rows, err := c.db.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, unavailable(err)
		}
		err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
			st, err := scanStock(r)
			for _, i := range at[inventory.Key{Store: st.Store, SKU: st.SKU}] {
				out[i] = inventory.Lookup{Stock: st, Found: true}
			}
			return err
		})
		if err != nil {
			return nil, unavailable(err)
		}
	}
	return out, nil
}

// ChangesSince implements inventory.RestoreSource: the ledger's changes applied at or after
// since, whole, in change-id order (so each stream can be rebuilt in order), in pages of n.
func (c *Copy) ChangesSince(ctx context.Context, since time.Time, n int, emit func([]inventory.Change) error) error {
	var after ledgerKey
	return pages(func() ([]inventory.Change, error) {
		page, err := c.ledgerPage(ctx, since, time.UnixMilli(math.MaxInt64/2), after, n)
		if len(page) > 0 {
			after = keyOf(page[len(page)-1])
		}
		return page, err
	}, emit)
}

// LedgerChanges implements webhook.LedgerReader: the changes applied in [from, until), in
// change-id order, after the change with id after ("" from the start).
func (c *Copy) LedgerChanges(ctx context.Context, from, until time.Time, after string, limit int) ([]inventory.Change, error) {
	k := ledgerKey{ms: -1, seq: -1}
	if after != "" {
		k = keyOf(inventory.Change{ID: after})
	}
	page, err := c.ledgerPage(ctx, from, until, k, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	return page, nil
}

// ChangeAt implements webhook.PriorReader: the change that made version of store × SKU.
func (c *Copy) ChangeAt(ctx context.Context, store, sku string, version int64) (inventory.Change, bool, error) {
	ch := inventory.Change{Store: store, SKU: sku}
	var typ string
	var at int64
	err := c.db.QueryRowContext(ctx, `SELECT change_id, type, delta, on_hand, reserved, safety, version, event_id, at_ms
		FROM stock_ledger WHERE store = $1 AND sku = $2 AND version = $3 ORDER BY at_ms DESC LIMIT 1`, store, sku, version).
		Scan(&ch.ID, &typ, &ch.Delta, &ch.OnHand, &ch.Reserved, &ch.Safety, &ch.Version, &ch.EventID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return ch, false, nil
	}
	if err != nil {
		return ch, false, unavailable(err)
	}
	ch.Type, ch.At = inventory.EventType(typ), time.UnixMilli(at).UTC()
	return ch, true, nil
}

// ledgerKey is a place in the ledger's change-id order: (id ms, id seq, change id), the id
// string breaking ties (change ids repeat across shard groups).
type ledgerKey struct {
	ms, seq int64
	id      string
}

// keyOf is the ledger key of a change ("<ms>-<seq>/<group>/<day>").
func keyOf(ch inventory.Change) ledgerKey {
	id, _, _ := strings.Cut(ch.ID, "/")
	ms, seq, _ := strings.Cut(id, "-")
	k := ledgerKey{id: ch.ID}
	k.ms, _ = strconv.ParseInt(ms, 10, 64)
	k.seq, _ = strconv.ParseInt(seq, 10, 64)
	return k
}

// ledgerPage is up to n whole changes of the ledger applied in [from, until), after key
// after, in change-id order.
func (c *Copy) ledgerPage(ctx context.Context, from, until time.Time, after ledgerKey, n int) ([]inventory.Change, error) {
	if after.ms == 0 && after.seq == 0 && after.id == "" {
		after = ledgerKey{ms: -1, seq: -1}
	}
	rows, err := c.db.QueryContext(ctx, `SELECT change_id, store, sku, type, delta, on_hand, reserved, safety, version, event_id,
		at_ms, kafka_partition, kafka_offset, note FROM stock_ledger
		WHERE at_ms >= $1 AND at_ms < $2 AND (id_ms, id_seq, change_id) > ($3, $4, $5) ORDER BY id_ms, id_seq, change_id LIMIT $6`,
		from.UnixMilli(), until.UnixMilli(), after.ms, after.seq, after.id, n)
	if err != nil {
		return nil, err
	}
	var page []inventory.Change
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var ch inventory.Change
		var typ string
		var at int64
		var kp, ko sql.NullInt64
		var note string
		if err := r.Scan(&ch.ID, &ch.Store, &ch.SKU, &typ, &ch.Delta, &ch.OnHand, &ch.Reserved, &ch.Safety, &ch.Version, &ch.EventID,
			&at, &kp, &ko, &note); err != nil {
			return err
		}
		var err error
		if ch.Note, err = inventory.ParseNote(note); err != nil {
			return err
		}
		ch.Type, ch.At = inventory.EventType(typ), time.UnixMilli(at).UTC()
		if kp.Valid && ko.Valid {
			ch.Origin = &inventory.Origin{Partition: int32(kp.Int64), Offset: ko.Int64}
		}
		page = append(page, ch)
		return nil
	})
	return page, err
}

// pages calls next until it returns an empty page, handing each page to emit: the loop of
// every keyset-paged read (next remembers where the last page ended).
func pages[T any](next func() ([]T, error), emit func([]T) error) error {
	for {
		page, err := next()
		if err != nil {
			return unavailable(err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := emit(page); err != nil {
			return err
		}
	}
}

func scanStock(r *sql.Rows) (inventory.Stock, error) {
	var st inventory.Stock
	var updated int64
	err := r.Scan(&st.Store, &st.SKU, &st.OnHand, &st.Reserved, &st.Safety, &st.Version, &updated)
	st.UpdatedAt = time.UnixMilli(updated).UTC()
	st.Source = inventory.SourceFallback
	return st.WithAvailable(), err
}

// Position implements inventory.CopyStore: what the copy holds now.
func (c *Copy) Position(ctx context.Context) (inventory.CopyPosition, error) {
	var p inventory.CopyPosition
	var asOf int64
	err := c.db.QueryRowContext(ctx, `SELECT cursor, token, as_of_ms, changes FROM stock_projection WHERE id = 1`).
		Scan(&p.Cursor, &p.Token, &asOf, &p.Changes)
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.CopyPosition{}, nil
	}
	if err != nil {
		return p, unavailable(err)
	}
	if asOf > 0 {
		p.AsOf = time.UnixMilli(asOf).UTC()
	}
	return p, nil
}

// Claim implements inventory.CopyStore: it raises the copy's token to token, or answers
// ErrStaleToken when a newer projector holds it, and returns the position to resume from.
func (c *Copy) Claim(ctx context.Context, token int64) (inventory.CopyPosition, error) {
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO stock_projection (id, cursor, token, as_of_ms, changes)
			VALUES (1, '', 0, 0, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
			return err
		}
		return claim(ctx, sqlTx{tx}, token)
	})
	if err != nil {
		return inventory.CopyPosition{}, err
	}
	return c.Position(ctx)
}

// Fence implements inventory.RestoreSource: the copy's token goes above above (and past its
// own), so that a projector still holding a lower one commits nothing more (claim refuses
// it). It waits for a commit in flight, which holds the row.
func (c *Copy) Fence(ctx context.Context, above int64) (int64, error) {
	var token int64
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO stock_projection (id, cursor, token, as_of_ms, changes)
			VALUES (1, '', 0, 0, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE stock_projection SET token = CASE WHEN token > CAST($1 AS BIGINT) THEN token + 1
			ELSE CAST($1 AS BIGINT) + 1 END WHERE id = 1`, above); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT token FROM stock_projection WHERE id = 1`).Scan(&token)
	})
	if err != nil {
		return 0, unavailable(err)
	}
	return token, nil
}

// claim raises the token in the position row, first thing in a transaction: the row lock
// serialises projectors, and a stale one changes nothing.
func claim(ctx context.Context, tx execer, token int64) error {
	n, err := tx.exec(ctx, `UPDATE stock_projection SET token = $1 WHERE id = 1 AND token <= $1`, token)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("token %d: %w", token, ErrStaleToken)
	}
	return nil
}

// execer is a transaction of either driver: database/sql's (SQLite) or pgx's (PostgreSQL,
// where the ledger goes in with COPY).
type execer interface {
	exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
	postgres() bool
}

type sqlTx struct{ *sql.Tx } // SQLite's: PostgreSQL commits go through pgx

func (sqlTx) postgres() bool { return false }

func (t sqlTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

type pgxTx struct{ pgx.Tx }

func (pgxTx) postgres() bool { return true }

func (t pgxTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

// ledgerColumns are the stock_ledger columns a commit writes, in the order of its rows.
var ledgerColumns = []string{"at_ms", "change_id", "store", "sku", "type", "delta", "on_hand", "reserved", "safety", "version", "event_id", "kafka_partition", "kafka_offset", "id_ms", "id_seq", "note"}

// changeIDNumbers is the "ms-seq" part of a change id ("ms-seq/group/day") as numbers.
func changeIDNumbers(id string) (ms, seq int64) {
	head, _, _ := strings.Cut(id, "/")
	a, b, _ := strings.Cut(head, "-")
	ms, _ = strconv.ParseInt(a, 10, 64)
	seq, _ = strconv.ParseInt(b, 10, 64)
	return ms, seq
}

// Commit implements inventory.CopyStore: the batch's records (only where their version is
// higher), its ledger entries, the Kafka offsets and the position, in one transaction.
func (c *Copy) Commit(ctx context.Context, token int64, b inventory.Projection) error {
	if !c.db.Postgres() {
		return c.db.InTx(ctx, func(tx *sql.Tx) error {
			return commit(ctx, sqlTx{tx}, token, b, func(rows [][]any) error {
				return insert(ctx, sqlTx{tx}, `INSERT INTO stock_ledger (`+strings.Join(ledgerColumns, ", ")+`) VALUES `, rows, ` ON CONFLICT DO NOTHING`)
			})
		})
	}
	// PostgreSQL: the same transaction on pgx itself, for COPY. A change is committed once
	// (its cursor is in the same transaction), so the ledger needs no ON CONFLICT.
	if err := c.ensurePartitions(ctx, b.Changes); err != nil {
		return unavailable(err)
	}
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return unavailable(err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		return pgx.BeginFunc(ctx, pc, func(tx pgx.Tx) error {
			return commit(ctx, pgxTx{tx}, token, b, func(rows [][]any) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{"stock_ledger"}, ledgerColumns, pgx.CopyFromRows(rows))
				return err
			})
		})
	})
}

// commit writes a projection in tx: the token check, the position, the records (only where
// their version is higher), the ledger (through writeLedger) and the Kafka offsets.
func commit(ctx context.Context, tx execer, token int64, b inventory.Projection, writeLedger func([][]any) error) error {
	if err := claim(ctx, tx, token); err != nil {
		return err
	}
	asOf := int64(0) // zero keeps the copy's as-of (a snapshot in progress)
	if !b.AsOf.IsZero() {
		asOf = b.AsOf.UnixMilli()
	}
	if _, err := tx.exec(ctx, `UPDATE stock_projection SET cursor = $1,
		as_of_ms = CASE WHEN CAST($2 AS BIGINT) > 0 THEN CAST($2 AS BIGINT) ELSE as_of_ms END, changes = changes + $3 WHERE id = 1`,
		b.Cursor, asOf, len(b.Changes)); err != nil {
		return err
	}
	latest := map[inventory.Key]inventory.Stock{}
	for _, st := range b.Records {
		if cur, ok := latest[inventory.Key{Store: st.Store, SKU: st.SKU}]; !ok || st.Version > cur.Version {
			latest[inventory.Key{Store: st.Store, SKU: st.SKU}] = st
		}
	}
	offsets := map[int32][2]int64{} // partition → lowest, highest offset of the batch
	ledger := make([][]any, 0, len(b.Changes))
	for _, ch := range b.Changes {
		k := inventory.Key{Store: ch.Store, SKU: ch.SKU}
		if cur, ok := latest[k]; !ok || ch.Version > cur.Version {
			latest[k] = inventory.Stock{Store: ch.Store, SKU: ch.SKU, OnHand: ch.OnHand, Reserved: ch.Reserved,
				Safety: ch.Safety, Version: ch.Version, UpdatedAt: ch.At}
		}
		var kp, ko any
		if o := ch.Origin; o != nil {
			kp, ko = o.Partition, o.Offset
			cur, ok := offsets[o.Partition]
			if !ok {
				cur = [2]int64{o.Offset, o.Offset}
			}
			offsets[o.Partition] = [2]int64{min(cur[0], o.Offset), max(cur[1], o.Offset)}
		}
		idMS, idSeq := changeIDNumbers(ch.ID)
		ledger = append(ledger, []any{ch.At.UnixMilli(), ch.ID, ch.Store, ch.SKU, string(ch.Type), ch.Delta, ch.OnHand,
			ch.Reserved, ch.Safety, ch.Version, ch.EventID, kp, ko, idMS, idSeq, ch.Note.String()})
	}
	records := make([][]any, 0, len(latest))
	for _, st := range latest {
		records = append(records, []any{st.Store, st.SKU, st.OnHand, st.Reserved, st.Safety, st.Version, st.UpdatedAt.UnixMilli()})
	}
	if err := insert(ctx, tx, `INSERT INTO stock_copy (store, sku, on_hand, reserved, safety, version, updated_at_ms) VALUES `, records,
		` ON CONFLICT (store, sku) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved,
		safety = excluded.safety, version = excluded.version, updated_at_ms = excluded.updated_at_ms
		WHERE stock_copy.version < excluded.version`); err != nil {
		return fmt.Errorf("stock rows: %w", err)
	}
	if len(ledger) > 0 {
		if err := writeLedger(ledger); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	}
	for p, o := range offsets {
		if _, err := tx.exec(ctx, `INSERT INTO stock_kafka_offsets (kafka_partition, first_offset, kafka_offset) VALUES ($1, $2, $3)
			ON CONFLICT (kafka_partition) DO UPDATE SET kafka_offset = excluded.kafka_offset
			WHERE stock_kafka_offsets.kafka_offset < excluded.kafka_offset`, p, o[0], o[1]); err != nil {
			return fmt.Errorf("kafka offsets: %w", err)
		}
	}
	if err := keepNotes(ctx, tx, b.Changes); err != nil {
		return fmt.Errorf("reservations and load marks: %w", err)
	}
	return nil
}

// insert runs head VALUES (…), (…) tail for rows, in statements of at most 4,000 values.
func insert(ctx context.Context, tx execer, head string, rows [][]any, tail string) error {
	for _, st := range sqldb.MultiRowValues(tx.postgres(), head, rows, tail) {
		if _, err := tx.exec(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartitions creates the PostgreSQL ledger partitions of the UTC days of changes.
func (c *Copy) ensurePartitions(ctx context.Context, changes []inventory.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		day := ch.At.UTC().Truncate(24 * time.Hour)
		name := day.Format("20060102")
		if c.partDays[name] {
			continue
		}
		if _, err := c.db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS stock_ledger_%s PARTITION OF stock_ledger
			FOR VALUES FROM (%d) TO (%d)`, name, day.UnixMilli(), day.Add(24*time.Hour).UnixMilli())); err != nil {
			return err
		}
		c.partDays[name] = true
	}
	return nil
}

// Prune drops the ledger before the UTC day of before: whole day partitions on PostgreSQL,
// rows on SQLite; and the reservations that ended before it. It returns how many days (PostgreSQL) or rows (SQLite) went.
func (c *Copy) Prune(ctx context.Context, before time.Time) (int64, error) {
	cutoff := before.UTC().Truncate(24 * time.Hour)
	if err := c.pruneReservations(ctx, cutoff); err != nil {
		return 0, unavailable(err)
	}
	if !c.db.Postgres() {
		res, err := c.db.ExecContext(ctx, `DELETE FROM stock_ledger WHERE at_ms < $1`, cutoff.UnixMilli())
		if err != nil {
			return 0, unavailable(err)
		}
		return res.RowsAffected()
	}
	rows, err := c.db.QueryContext(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'stock_ledger'`)
	if err != nil {
		return 0, unavailable(err)
	}
	var old []string
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var name string
		if err := r.Scan(&name); err != nil {
			return err
		}
		if day, err := time.Parse("20060102", strings.TrimPrefix(name, "stock_ledger_")); err == nil && day.Before(cutoff) {
			old = append(old, name)
		}
		return nil
	})
	if err != nil {
		return 0, unavailable(err)
	}
	for _, name := range old {
		if _, err := c.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
			return 0, unavailable(err)
		}
		c.mu.Lock()
		delete(c.partDays, strings.TrimPrefix(name, "stock_ledger_"))
		c.mu.Unlock()
	}
	return int64(len(old)), nil
}

// History implements inventory.HistoryReader: the ledger of one store × SKU in [from, to),
// oldest first, paged by version.
func (c *Copy) History(ctx context.Context, store, sku string, from, to time.Time, cursor string, limit int) (inventory.ChangePage, error) {
	after := int64(0)
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		v, perr := strconv.ParseInt(strings.TrimPrefix(string(b), "v"), 10, 64)
		if err != nil || perr != nil || !strings.HasPrefix(string(b), "v") || v < 0 {
			return inventory.ChangePage{}, inventory.ErrBadCursor
		}
		after = v
	}
	rows, err := c.db.QueryContext(ctx, `SELECT change_id, type, delta, on_hand, reserved, safety, version, event_id, at_ms
		FROM stock_ledger WHERE store = $1 AND sku = $2 AND at_ms >= $3 AND at_ms < $4 AND version > $5
		ORDER BY version LIMIT $6`, store, sku, from.UnixMilli(), to.UnixMilli(), after, limit+1)
	if err != nil {
		return inventory.ChangePage{}, unavailable(err)
	}
	var page inventory.ChangePage
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		ch := inventory.Change{Store: store, SKU: sku}
		var typ string
		var at int64
		if err := r.Scan(&ch.ID, &typ, &ch.Delta, &ch.OnHand, &ch.Reserved, &ch.Safety, &ch.Version, &ch.EventID, &at); err != nil {
			return err
		}
		ch.Type, ch.At = inventory.EventType(typ), time.UnixMilli(at).UTC()
		page.Changes = append(page.Changes, ch)
		return nil
	})
	if err != nil {
		return inventory.ChangePage{}, unavailable(err)
	}
	if len(page.Changes) > limit {
		page.Changes = page.Changes[:limit]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte("v" + strconv.FormatInt(page.Changes[limit-1].Version, 10)))
	}
	return page, nil
}

// KafkaOffsets implements inventory.RestoreSource.
func (c *Copy) KafkaOffsets(ctx context.Context) (map[int32]inventory.OffsetRange, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT kafka_partition, first_offset, kafka_offset FROM stock_kafka_offsets`)
	if err != nil {
		return nil, unavailable(err)
	}
	out := map[int32]inventory.OffsetRange{}
	return out, sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var p int32
		var o inventory.OffsetRange
		err := r.Scan(&p, &o.First, &o.Last)
		out[p] = o
		return err
	})
}

// Records hands every record of the copy to emit in pages of n, in (store, sku) order.
func (c *Copy) Records(ctx context.Context, n int, emit func([]inventory.Stock) error) error {
	last := inventory.Key{}
	return pages(func() ([]inventory.Stock, error) {
		rows, err := c.db.QueryContext(ctx, `SELECT store, sku, on_hand, reserved, safety, version, updated_at_ms FROM stock_copy
			WHERE (store, sku) > ($1, $2) ORDER BY store, sku LIMIT $3`, last.Store, last.SKU, n)
		if err != nil {
			return nil, err
		}
		var page []inventory.Stock
		err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
			st, err := scanStock(r)
			page = append(page, st)
			last = inventory.Key{Store: st.Store, SKU: st.SKU}
			return err
		})
		return page, err
	}, emit)
}
