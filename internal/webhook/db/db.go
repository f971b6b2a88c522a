// Package db keeps webhook subscriptions (design §14) in jaego's SQL database (PostgreSQL,
// or SQLite in jaego dev): their settings, sealed secrets, delivery state and delivery log.
package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/webhook"
)

// Store is the SQL webhook store.
type Store struct {
	db  *sqldb.DB
	now func() time.Time
}

var _ webhook.Store = (*Store)(nil)

// New returns the store in db (migrated: `jaego migrate`).
func New(db *sqldb.DB) *Store { return &Store{db: db, now: time.Now} }

func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	var je *jaego.Error
	if errors.As(err, &je) || errors.Is(err, webhook.ErrFenced) || errors.Is(err, webhook.ErrStale) || errors.Is(err, context.Canceled) {
		return err
	}
	return jaego.Unavailable("webhooks "+op, err)
}

func list(xs []string) string { return strings.Join(xs, ",") }

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// Create implements webhook.Store.
func (s *Store) Create(ctx context.Context, w webhook.Subscription, secret webhook.Sealed, start webhook.Position) error {
	now := w.CreatedAt.UnixMilli()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, url, events, stores, skus, low_stock, batch, status, generation,
			created_ms, updated_ms, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, $10)`,
			w.ID, w.URL, list(w.Events), list(w.Stores), list(w.SKUs), w.LowStock, w.Batch, string(w.Status), now, string(start)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_secrets (webhook_id, created_ms, sealed, expires_ms) VALUES ($1, $2, $3, 0)`,
			w.ID, now, string(secret))
		return err
	})
	return unavailable("create", err)
}

const columns = `id, url, events, stores, skus, low_stock, batch, status, generation, created_ms, updated_ms,
	position, as_of_ms, seq, last_success_ms, last_error, token,
	(SELECT COUNT(*) FROM webhook_pending p WHERE p.webhook_id = webhooks.id),
	COALESCE((SELECT MIN(first_ms) FROM webhook_pending p WHERE p.webhook_id = webhooks.id), 0)`

type row struct {
	info         webhook.Info
	asOf         int64
	oldestChange int64 // of the pending messages (0: none)
	seq          int64
	token        int64
}

func scan(r interface{ Scan(...any) error }) (row, error) {
	var x row
	var events, stores, skus, status string
	var created, updated, success int64
	w := &x.info
	err := r.Scan(&w.ID, &w.URL, &events, &stores, &skus, &w.LowStock, &w.Batch, &status, &w.Generation, &created, &updated,
		&w.Position, &x.asOf, &x.seq, &success, &w.LastError, &x.token, &w.Pending, &x.oldestChange)
	if err != nil {
		return x, err
	}
	w.Events, w.Stores, w.SKUs, w.Status = split(events), split(stores), split(skus), webhook.Status(status)
	w.CreatedAt, w.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	if success > 0 {
		t := time.UnixMilli(success).UTC()
		w.LastSuccess = &t
	}
	if strings.HasPrefix(w.Position, "l:") {
		w.Position = "" // inside the ledger: no feed cursor yet
	}
	return x, nil
}

// lag is how far behind a subscription is: the age of its oldest pending change, or, when
// it is not delivering, of the last change it passed.
func (x *row) lag(now time.Time) {
	switch {
	case x.oldestChange > 0:
		x.info.LagSeconds = max(0, now.Sub(time.UnixMilli(x.oldestChange)).Seconds())
	case x.info.Status != webhook.Active && x.asOf > 0:
		x.info.LagSeconds = max(0, now.Sub(time.UnixMilli(x.asOf)).Seconds())
	}
}

// List implements webhook.Store.
func (s *Store) List(ctx context.Context) ([]webhook.Info, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, unavailable("list", err)
	}
	out := []webhook.Info{}
	now := s.now()
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		x, err := scan(r)
		x.lag(now)
		out = append(out, x.info)
		return err
	})
	return out, unavailable("list", err)
}

func (s *Store) get(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (row, error) {
	return s.read(ctx, q, id, "")
}

// locked reads subscription id in tx and locks its row for tx: what is read, changed and
// written back is not written over meanwhile.
func (s *Store) locked(ctx context.Context, tx *sql.Tx, id string) (row, error) {
	return s.read(ctx, tx, id, s.forUpdate())
}

// forUpdate is the clause that locks the rows a SELECT reads for its transaction: on
// PostgreSQL; SQLite has one writer at a time.
func (s *Store) forUpdate() string {
	if s.db.Postgres() {
		return " FOR UPDATE"
	}
	return ""
}

func (s *Store) read(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id, lock string) (row, error) {
	x, err := scan(q.QueryRowContext(ctx, `SELECT `+columns+` FROM webhooks WHERE id = $1`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return x, webhook.ErrNotFound
	}
	return x, err
}

// Get implements webhook.Store.
func (s *Store) Get(ctx context.Context, id string) (webhook.Info, error) {
	x, err := s.get(ctx, s.db, id)
	x.lag(s.now())
	return x.info, unavailable("get", err)
}

// Update implements webhook.Store.
func (s *Store) Update(ctx context.Context, id string, fn func(*webhook.Subscription) error) (webhook.Info, error) {
	var x row
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if x, err = s.locked(ctx, tx, id); err != nil { // two operators' changes at once: both kept
			return err
		}
		w := x.info.Subscription
		if err := fn(&w); err != nil {
			return err
		}
		w.UpdatedAt = s.now().UTC()
		w.Generation++
		_, err = tx.ExecContext(ctx, `UPDATE webhooks SET url = $2, events = $3, stores = $4, skus = $5, low_stock = $6, batch = $7,
			status = $8, generation = generation + 1, updated_ms = $9 WHERE id = $1`,
			id, w.URL, list(w.Events), list(w.Stores), list(w.SKUs), w.LowStock, w.Batch, string(w.Status), w.UpdatedAt.UnixMilli())
		x.info.Subscription = w
		return err
	})
	x.lag(s.now())
	return x.info, unavailable("update", err)
}

// Delete implements webhook.Store. The subscription's pending messages and delivery log go
// in the same transaction (they have no foreign key on PostgreSQL: migration 00008), after
// its row, whose lock makes a deliverer's write wait and then find it gone.
func (s *Store) Delete(ctx context.Context, id string) error {
	return unavailable("delete", s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return webhook.ErrNotFound
		}
		for _, q := range []string{`DELETE FROM webhook_pending WHERE webhook_id = $1`, `DELETE FROM webhook_deliveries WHERE webhook_id = $1`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Secrets implements webhook.Store.
func (s *Store) Secrets(ctx context.Context, id string, now time.Time) ([]webhook.Sealed, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sealed FROM webhook_secrets WHERE webhook_id = $1 AND (expires_ms = 0 OR expires_ms > $2)
		ORDER BY created_ms DESC`, id, now.UnixMilli())
	if err != nil {
		return nil, unavailable("secrets", err)
	}
	var out []webhook.Sealed
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var v string
		err := r.Scan(&v)
		out = append(out, webhook.Sealed(v))
		return err
	})
	return out, unavailable("secrets", err)
}

// Rotate implements webhook.Store.
func (s *Store) Rotate(ctx context.Context, id string, secret webhook.Sealed, oldUntil time.Time) error {
	now := s.now().UnixMilli()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET generation = generation + 1, updated_ms = $2 WHERE id = $1`, id, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return webhook.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_secrets SET expires_ms = $2 WHERE webhook_id = $1 AND (expires_ms = 0 OR expires_ms > $2)`,
			id, oldUntil.UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_secrets WHERE webhook_id = $1 AND expires_ms <> 0 AND expires_ms <= $2`, id, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_secrets (webhook_id, created_ms, sealed, expires_ms) VALUES ($1, $2, $3, 0)`,
			id, now, string(secret))
		return err
	})
	return unavailable("rotate", err)
}

// Replay implements webhook.Store.
func (s *Store) Replay(ctx context.Context, id string, start webhook.Position) error {
	return unavailable("replay", s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET position = $2, as_of_ms = 0, generation = generation + 1,
			updated_ms = $3 WHERE id = $1`, id, string(start), s.now().UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return webhook.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_pending WHERE webhook_id = $1`, id)
		return err
	}))
}

// Generations implements webhook.Store.
func (s *Store) Generations(ctx context.Context) (map[string]webhook.Generation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, generation, status FROM webhooks`)
	if err != nil {
		return nil, unavailable("generations", err)
	}
	out := map[string]webhook.Generation{}
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var id, status string
		var g int64
		err := r.Scan(&id, &g, &status)
		out[id] = webhook.Generation{Generation: g, Status: webhook.Status(status)}
		return err
	})
	return out, unavailable("generations", err)
}

// Claim implements webhook.Store.
func (s *Store) Claim(ctx context.Context, id string, token int64) (webhook.State, error) {
	var st webhook.State
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The token only ever rises: the update is its own check, under the row's lock (a
		// read, then an update, let two claims at once both pass the read, and the lower
		// one land last: two deliverers both holding the subscription).
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET token = $2 WHERE id = $1 AND token <= $2`, id, token)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if _, err := s.get(ctx, tx, id); err != nil {
				return err // not found
			}
			return webhook.ErrFenced
		}
		x, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		st = webhook.State{Grant: webhook.Grant{Token: token, Generation: x.info.Generation}, Sub: x.info.Subscription, Seq: x.seq}
		if x.asOf > 0 {
			st.AsOf = time.UnixMilli(x.asOf)
		}
		if err := tx.QueryRowContext(ctx, `SELECT position FROM webhooks WHERE id = $1`, id).Scan(&st.Position); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, message_id, type, body, packed, after_position, first_ms, changes, attempts, first_attempt_ms
			FROM webhook_pending WHERE webhook_id = $1 ORDER BY seq`, id)
		if err != nil {
			return err
		}
		return sqldb.ScanAll(rows, func(r *sql.Rows) error {
			var m webhook.Message
			var body, after string
			var packed []byte
			var first, firstAttempt int64
			if err := r.Scan(&m.Seq, &m.ID, &m.Type, &body, &packed, &after, &first, &m.Changes, &m.Attempts, &firstAttempt); err != nil {
				return err
			}
			m.Body, m.After, m.First = []byte(body), webhook.Position(after), time.UnixMilli(first)
			if packed != nil { // else pended before the body was packed (migration 00007)
				var err error
				if m.Body, err = unpack(packed); err != nil {
					return err
				}
			}
			if firstAttempt > 0 {
				m.FirstAttempt = time.UnixMilli(firstAttempt)
			}
			st.Pending = append(st.Pending, m)
			return nil
		})
	})
	return st, unavailable("claim", err)
}

// guarded runs fn in a transaction after checking g against the subscription's row (locked
// for the transaction on PostgreSQL).
func (s *Store) guarded(ctx context.Context, id string, g webhook.Grant, fn func(tx *sql.Tx) error) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var token, gen int64
		err := tx.QueryRowContext(ctx, `SELECT token, generation FROM webhooks WHERE id = $1`+s.forUpdate(), id).Scan(&token, &gen)
		if err := checkGrant(err, token, gen, g); err != nil {
			return err
		}
		return fn(tx)
	})
}

// checkGrant says whether g still holds, from the subscription row's token and generation
// (read with err).
func checkGrant(err error, token, gen int64, g webhook.Grant) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return webhook.ErrStale // deleted
	case err != nil:
		return err
	case token > g.Token:
		return webhook.ErrFenced
	case gen != g.Generation:
		return webhook.ErrStale
	}
	return nil
}

// Progress implements webhook.Store. It is a live subscription's one write a message, so
// its row's update is also its guard: the UPDATE takes the row's lock and checks the token
// and generation (a grant that no longer holds changes nothing). On PostgreSQL it is one
// statement (progressOnce); on SQLite one transaction.
func (s *Store) Progress(ctx context.Context, id string, g webhook.Grant, p webhook.Progress) error {
	set, args := progressSet(id, p)
	if s.db.Postgres() {
		return unavailable("progress", s.progressOnce(ctx, id, g, p, set, args))
	}
	return unavailable("progress", s.db.InTx(ctx, func(tx *sql.Tx) error {
		n := len(p.Delivered)
		var token, gen int64
		err := tx.QueryRowContext(ctx, `UPDATE webhooks SET `+strings.Join(set, ", ")+` WHERE id = $1 RETURNING token, generation`, args...).Scan(&token, &gen)
		if err := checkGrant(err, token, gen, g); err != nil {
			return err
		}
		if n > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_pending WHERE webhook_id = $1 AND seq <= $2`, id, p.Through); err != nil {
				return err
			}
			if err := logAttempts(ctx, s.db.Postgres(), tx, id, p.Delivered); err != nil {
				return err
			}
		}
		if len(p.Pend) == 0 {
			return nil
		}
		rows := make([][]any, len(p.Pend))
		for i, m := range p.Pend {
			rows[i] = []any{id, m.Seq, m.ID, m.Type, "", pack(m.Body), string(m.After), m.First.UnixMilli(), m.Changes}
		}
		for _, st := range sqldb.MultiRowValues(s.db.Postgres(), `INSERT INTO webhook_pending (webhook_id, seq, message_id, type, body, packed, after_position, first_ms, changes) VALUES `, rows, "") {
			if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
				return err
			}
		}
		return nil
	}))
}

// progressSet is what Progress sets on the subscription's row, with its arguments ($1 the id).
func progressSet(id string, p webhook.Progress) ([]string, []any) {
	var set []string
	args := []any{id}
	if n := len(p.Delivered); n > 0 {
		set = append(set, "position = $2, as_of_ms = $3, last_success_ms = $4, last_error = ''")
		args = append(args, string(p.After), p.At.UnixMilli(), p.Delivered[n-1].At.UnixMilli())
	}
	if len(p.Pend) > 0 {
		args = append(args, p.Seq)
		set = append(set, "seq = $"+strconv.Itoa(len(args)))
	}
	if len(set) == 0 {
		set = append(set, "seq = seq") // nothing to move: the guard alone
	}
	return set, args
}

// progressOnce is Progress on PostgreSQL in one statement, so one round trip and one
// commit (a transaction of its five statements was six round trips a message, with the
// subscription's row locked across them). Data-modifying WITH queries: the UPDATE of the
// row is the guard, and the deletion, the log and the pending rows happen only with it;
// the rows go as arrays (unnest), so any number of them is one statement. A grant that no
// longer holds updates nothing, and the row read after says why.
func (s *Store) progressOnce(ctx context.Context, id string, g webhook.Grant, p webhook.Progress, set []string, args []any) error {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q := `WITH g AS (UPDATE webhooks SET ` + strings.Join(set, ", ") + ` WHERE id = $1 AND token <= ` + arg(g.Token) +
		` AND generation = ` + arg(g.Generation) + ` RETURNING 1)`
	if n := len(p.Delivered); n > 0 {
		at, message, attempt, typ, status, latency, msg, changes := make([]int64, n), make([]string, n), make([]int64, n), make([]string, n),
			make([]int64, n), make([]int64, n), make([]string, n), make([]int64, n)
		for i, a := range p.Delivered {
			at[i], message[i], attempt[i], typ[i], status[i], latency[i], msg[i], changes[i] = a.At.UnixMilli(), a.Message, int64(a.Attempt), a.Type,
				int64(a.Status), a.Latency.Microseconds(), a.Error, int64(a.Changes)
		}
		q += `, d AS (DELETE FROM webhook_pending WHERE webhook_id = $1 AND seq <= ` + arg(p.Through) + ` AND EXISTS (SELECT 1 FROM g))` +
			`, l AS (INSERT INTO webhook_deliveries (webhook_id, at_ms, message_id, attempt, type, http_status, latency_us, error, changes)
				SELECT $1, * FROM unnest(` + arg(at) + `::bigint[], ` + arg(message) + `::text[], ` + arg(attempt) + `::bigint[], ` + arg(typ) + `::text[], ` +
			arg(status) + `::bigint[], ` + arg(latency) + `::bigint[], ` + arg(msg) + `::text[], ` + arg(changes) + `::bigint[])
				WHERE EXISTS (SELECT 1 FROM g) ON CONFLICT DO NOTHING)`
	}
	if n := len(p.Pend); n > 0 {
		seq, mid, typ, packed, after, first, changes := make([]int64, n), make([]string, n), make([]string, n), make([][]byte, n),
			make([]string, n), make([]int64, n), make([]int64, n)
		for i, m := range p.Pend {
			seq[i], mid[i], typ[i], packed[i], after[i], first[i], changes[i] = m.Seq, m.ID, m.Type, pack(m.Body), string(m.After), m.First.UnixMilli(), int64(m.Changes)
		}
		q += `, p AS (INSERT INTO webhook_pending (webhook_id, seq, message_id, type, body, packed, after_position, first_ms, changes)
				SELECT $1, s, i, t, '', b, a, f, c FROM unnest(` + arg(seq) + `::bigint[], ` + arg(mid) + `::text[], ` + arg(typ) + `::text[], ` +
			arg(packed) + `::bytea[], ` + arg(after) + `::text[], ` + arg(first) + `::bigint[], ` + arg(changes) + `::bigint[]) AS v(s, i, t, b, a, f, c)
				WHERE EXISTS (SELECT 1 FROM g))`
	}
	var updated int
	if err := s.db.QueryRowContext(ctx, q+` SELECT count(*) FROM g`, args...).Scan(&updated); err != nil {
		return err
	}
	if updated == 1 {
		return nil
	}
	var token, gen int64
	err := s.db.QueryRowContext(ctx, `SELECT token, generation FROM webhooks WHERE id = $1`, id).Scan(&token, &gen)
	return cmp.Or(checkGrant(err, token, gen, g), webhook.ErrStale) // changed and changed back: stale all the same
}

// logAttempts adds attempts to the delivery log.
func logAttempts(ctx context.Context, postgres bool, tx *sql.Tx, id string, as []webhook.Attempt) error {
	rows := make([][]any, len(as))
	for i, a := range as {
		rows[i] = []any{id, a.At.UnixMilli(), a.Message, a.Attempt, a.Type, a.Status, a.Latency.Microseconds(), a.Error, a.Changes}
	}
	for _, st := range sqldb.MultiRowValues(postgres, `INSERT INTO webhook_deliveries (webhook_id, at_ms, message_id, attempt, type, http_status, latency_us, error, changes) VALUES `,
		rows, " ON CONFLICT DO NOTHING") {
		if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

// Attempted implements webhook.Store.
func (s *Store) Attempted(ctx context.Context, id string, g webhook.Grant, a webhook.Attempt) error {
	return unavailable("attempted", s.guarded(ctx, id, g, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_pending SET attempts = $3,
			first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN $4 ELSE first_attempt_ms END WHERE webhook_id = $1 AND message_id = $2`,
			id, a.Message, a.Attempt, a.At.UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhooks SET last_error = $2 WHERE id = $1`, id, truncate(a.Error)); err != nil {
			return err
		}
		return logAttempts(ctx, s.db.Postgres(), tx, id, []webhook.Attempt{a})
	}))
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}

// Advance implements webhook.Store.
func (s *Store) Advance(ctx context.Context, id string, g webhook.Grant, after webhook.Position, at time.Time) error {
	return unavailable("advance", s.guarded(ctx, id, g, func(tx *sql.Tx) error {
		// The position moves past the pending messages first.
		_, err := tx.ExecContext(ctx, `UPDATE webhooks SET position = $2, as_of_ms = $3 WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM webhook_pending WHERE webhook_id = $1)`, id, string(after), at.UnixMilli())
		return err
	}))
}

// GiveUp implements webhook.Store.
func (s *Store) GiveUp(ctx context.Context, id string, g webhook.Grant, reason string) error {
	return unavailable("give up", s.guarded(ctx, id, g, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE webhooks SET status = 'failing', generation = generation + 1, last_error = $2, updated_ms = $3
			WHERE id = $1`, id, truncate(reason), s.now().UnixMilli())
		return err
	}))
}

// Deliveries implements webhook.Store: newest first; status is "", "delivered" or "failed".
func (s *Store) Deliveries(ctx context.Context, id string, status string, limit int, cursor string) (webhook.DeliveryPage, error) {
	if _, err := s.get(ctx, s.db, id); err != nil {
		return webhook.DeliveryPage{}, unavailable("deliveries", err)
	}
	q := `SELECT at_ms, message_id, attempt, type, http_status, latency_us, error, changes FROM webhook_deliveries WHERE webhook_id = $1`
	args := []any{id}
	switch status {
	case "":
	case "delivered":
		q += ` AND http_status BETWEEN 200 AND 299`
	case "failed":
		q += ` AND NOT (http_status BETWEEN 200 AND 299)`
	default:
		return webhook.DeliveryPage{}, jaego.Invalidf("status", "status must be delivered or failed, got %q", status)
	}
	if cursor != "" {
		at, rest, ok1 := strings.Cut(cursor, ":")
		attempt, msg, ok2 := strings.Cut(rest, ":")
		atMS, err1 := strconv.ParseInt(at, 10, 64)
		n, err2 := strconv.Atoi(attempt)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			return webhook.DeliveryPage{}, &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor", Detail: "malformed cursor: pass next_cursor back unchanged"}
		}
		q += ` AND (at_ms < $2 OR (at_ms = $2 AND (message_id < $3 OR (message_id = $3 AND attempt < $4))))`
		args = append(args, atMS, msg, n)
	}
	q += fmt.Sprintf(` ORDER BY at_ms DESC, message_id DESC, attempt DESC LIMIT %d`, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return webhook.DeliveryPage{}, unavailable("deliveries", err)
	}
	page := webhook.DeliveryPage{Deliveries: []webhook.Attempt{}}
	err = sqldb.ScanAll(rows, func(r *sql.Rows) error {
		var a webhook.Attempt
		var at, us int64
		if err := r.Scan(&at, &a.Message, &a.Attempt, &a.Type, &a.Status, &us, &a.Error, &a.Changes); err != nil {
			return err
		}
		a.At, a.Latency = time.UnixMilli(at).UTC(), time.Duration(us)*time.Microsecond
		a.LatencyMS = float64(us) / 1000
		page.Deliveries = append(page.Deliveries, a)
		return nil
	})
	if len(page.Deliveries) > limit {
		page.Deliveries = page.Deliveries[:limit]
		last := page.Deliveries[limit-1]
		page.Next = fmt.Sprintf("%d:%d:%s", last.At.UnixMilli(), last.Attempt, last.Message)
	}
	return page, unavailable("deliveries", err)
}

// Prune implements webhook.Store.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE at_ms < $1`, before.UnixMilli())
	if err != nil {
		return 0, unavailable("prune", err)
	}
	return res.RowsAffected()
}
