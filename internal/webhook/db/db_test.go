package db_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
	"github.com/jaego/jaego/internal/webhook"
	whdb "github.com/jaego/jaego/internal/webhook/db"
)

func stores(t *testing.T, fn func(t *testing.T, s *whdb.Store)) {
	testenv.SQLDatabases(t, func(t *testing.T, open func(*testing.T) *sqldb.DB) { fn(t, whdb.New(open(t))) })
}

func sub(id string) webhook.Subscription {
	s := webhook.Subscription{ID: id, URL: "https://example.com/hook", Events: []string{webhook.StockChanged}, Batch: 10,
		CreatedAt: time.UnixMilli(1_700_000_000_000).UTC()}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

// TestDeliveryState: a claim fences out older deliverers, a change by an operator makes the
// running deliverer's writes stale, and pending messages leave one by one as they are
// delivered, each moving the position and logging its attempt in the same transaction.
func TestDeliveryState(t *testing.T) {
	stores(t, func(t *testing.T, s *whdb.Store) {
		ctx := context.Background()
		if err := s.Create(ctx, sub("wh_a"), "v1:sealed", "start"); err != nil {
			t.Fatal(err)
		}
		old, err := s.Claim(ctx, "wh_a", 3)
		if err != nil || old.Position != "start" || old.Grant != (webhook.Grant{Token: 3, Generation: 1}) {
			t.Fatalf("claim: %+v, %v", old, err)
		}
		st, err := s.Claim(ctx, "wh_a", 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "wh_a", 4); !errors.Is(err, webhook.ErrFenced) {
			t.Fatalf("a claim under a lower token: %v, want ErrFenced", err)
		}
		m := func(n int) webhook.Message {
			return webhook.Message{ID: fmt.Sprintf("msg_%d", n), Seq: int64(n), Type: webhook.StockChanged, Body: []byte(`{}`),
				After: webhook.Position(fmt.Sprintf("after-%d", n)), First: time.UnixMilli(int64(n) * 1000), Changes: n}
		}
		if err := s.Progress(ctx, "wh_a", old.Grant, webhook.Progress{Pend: []webhook.Message{m(1)}, Seq: 1}); !errors.Is(err, webhook.ErrFenced) {
			t.Fatalf("pend under the old token: %v, want ErrFenced", err)
		}
		if err := s.Progress(ctx, "wh_a", st.Grant, webhook.Progress{Pend: []webhook.Message{m(1), m(2)}, Seq: 2}); err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(1_700_000_100_000).UTC()
		if err := s.Attempted(ctx, "wh_a", st.Grant, webhook.Attempt{Message: "msg_1", At: at, Attempt: 1, Status: 503, Error: "answered 503"}); err != nil {
			t.Fatal(err)
		}
		// msg_1 delivered, written with the pend of msg_3 and msg_4.
		if err := s.Progress(ctx, "wh_a", st.Grant, webhook.Progress{
			Delivered: []webhook.Attempt{{Message: "msg_1", At: at.Add(time.Second), Attempt: 2, Status: 204}}, Through: 1, After: "after-1", At: time.UnixMilli(1000),
			Pend: []webhook.Message{m(3), m(4)}, Seq: 4}); err != nil {
			t.Fatal(err)
		}
		again, err := s.Claim(ctx, "wh_a", 5)
		if err != nil {
			t.Fatal(err)
		}
		if again.Position != "after-1" || len(again.Pending) != 3 || again.Pending[0].ID != "msg_2" || again.Pending[0].Seq != 2 ||
			again.Pending[2].ID != "msg_4" || again.Seq != 4 {
			t.Fatalf("after one delivery: position %q, pending %+v, seq %d", again.Position, again.Pending, again.Seq)
		}
		// Two delivered in one write: both logged, both dropped.
		if err := s.Progress(ctx, "wh_a", st.Grant, webhook.Progress{Delivered: []webhook.Attempt{
			{Message: "msg_2", At: at.Add(2 * time.Second), Attempt: 1, Status: 200}, {Message: "msg_3", At: at.Add(3 * time.Second), Attempt: 1, Status: 200}},
			Through: 3, After: "after-3", At: time.UnixMilli(3000)}); err != nil {
			t.Fatal(err)
		}
		if again, err = s.Claim(ctx, "wh_a", 5); err != nil || again.Position != "after-3" || len(again.Pending) != 1 || again.Pending[0].ID != "msg_4" {
			t.Fatalf("after two deliveries in one write: %+v, %v", again, err)
		}
		// Advance does not move a position past pending messages.
		if err := s.Advance(ctx, "wh_a", st.Grant, "past", time.UnixMilli(3000)); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Claim(ctx, "wh_a", 5); c.Position != "after-3" {
			t.Fatalf("advance moved the position past a pending message: %q", c.Position)
		}
		// An operator's replay: the deliverer's next write is stale and changes nothing.
		if err := s.Replay(ctx, "wh_a", "replayed"); err != nil {
			t.Fatal(err)
		}
		if err := s.Progress(ctx, "wh_a", st.Grant, webhook.Progress{Delivered: []webhook.Attempt{{Message: "msg_4", At: at, Attempt: 1, Status: 200}},
			Through: 4, After: "after-4", At: at, Pend: []webhook.Message{m(5)}, Seq: 5}); !errors.Is(err, webhook.ErrStale) {
			t.Fatalf("delivered after a replay: %v, want ErrStale", err)
		}
		c, err := s.Claim(ctx, "wh_a", 5)
		if err != nil || c.Position != "replayed" || len(c.Pending) != 0 || c.Grant.Generation != 2 || c.Seq != 4 {
			t.Fatalf("after the replay: %+v, %v", c, err)
		}
		// The log, newest first, a page of one at a time.
		var next string
		for i, want := range []string{"msg_3 200", "msg_2 200", "msg_1 204", "msg_1 503 answered 503"} {
			page, err := s.Deliveries(ctx, "wh_a", "", 1, next)
			if err != nil || len(page.Deliveries) != 1 || (page.Next == "") != (i == 3) {
				t.Fatalf("page %d of the log: %+v, %v", i, page, err)
			}
			a := page.Deliveries[0]
			if got := strings.TrimSpace(fmt.Sprintf("%s %d %s", a.Message, a.Status, a.Error)); got != want {
				t.Fatalf("page %d of the log: %s, want %s", i, got, want)
			}
			next = page.Next
		}
		if failed, _ := s.Deliveries(ctx, "wh_a", "failed", 10, ""); len(failed.Deliveries) != 1 {
			t.Fatalf("status=failed: %+v", failed)
		}
		if _, err := s.Deliveries(ctx, "wh_a", "", 10, "garbage"); err == nil {
			t.Fatal("a malformed cursor was taken")
		}
		if err := s.GiveUp(ctx, "wh_a", c.Grant, "message msg_9 failed for 24h"); err != nil {
			t.Fatal(err)
		}
		info, err := s.Get(ctx, "wh_a")
		if err != nil || info.Status != webhook.Failing || info.LastError != "message msg_9 failed for 24h" || info.LastSuccess == nil {
			t.Fatalf("after giving up: %+v, %v", info, err)
		}
		if n, err := s.Prune(ctx, at.Add(500*time.Millisecond)); err != nil || n != 1 {
			t.Fatalf("prune: %d, %v", n, err)
		}
		if err := s.Delete(ctx, "wh_a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "wh_a"); !errors.Is(err, webhook.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := s.Delete(ctx, "wh_a"); !errors.Is(err, webhook.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
}

// TestRotation: after a rotation both secrets are valid until the overlap ends, the new one
// first; a second rotation drops secrets already expired.
func TestRotation(t *testing.T) {
	stores(t, func(t *testing.T, s *whdb.Store) {
		ctx := context.Background()
		if err := s.Create(ctx, sub("wh_r"), "v1:one", "p"); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := s.Rotate(ctx, "wh_r", "v1:two", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Secrets(ctx, "wh_r", now)
		if err != nil || len(got) != 2 || got[0] != "v1:two" || got[1] != "v1:one" {
			t.Fatalf("secrets during the overlap: %v, %v", got, err)
		}
		if got, _ := s.Secrets(ctx, "wh_r", now.Add(2*time.Hour)); len(got) != 1 || got[0] != "v1:two" {
			t.Fatalf("secrets after the overlap: %v", got)
		}
		if err := s.Rotate(ctx, "wh_r", "v1:x", now.Add(time.Hour)); !errors.Is(err, nil) {
			t.Fatal(err)
		}
		if err := s.Rotate(ctx, "wh_missing", "v1:x", now); !errors.Is(err, webhook.ErrNotFound) {
			t.Fatalf("rotate of an unknown subscription: %v", err)
		}
		if gens, err := s.Generations(ctx); err != nil || gens["wh_r"].Generation != 3 || gens["wh_r"].Status != webhook.Active {
			t.Fatalf("generations after two rotations: %v, %v", gens, err)
		}
	})
}

// TestPendingBodies: a pending message's body comes back byte for byte, kept packed (a
// large one, and one that does not compress) or, pended before migration 00007, as text.
func TestPendingBodies(t *testing.T) {
	testenv.SQLDatabases(t, func(t *testing.T, open func(*testing.T) *sqldb.DB) {
		ctx := context.Background()
		d := open(t)
		s := whdb.New(d)
		if err := s.Create(ctx, sub("wh_b"), "v1:sealed", "start"); err != nil {
			t.Fatal(err)
		}
		st, err := s.Claim(ctx, "wh_b", 1)
		if err != nil {
			t.Fatal(err)
		}
		large := []byte(`{"type":"stock.changed","data":{"changes":[` + strings.Repeat(`{"id":"1764720000000-0","store":"S001","sku":"8809461234567"},`, 2000) + `{}]}}`)
		noise := make([]byte, 4096)
		for i := range noise {
			noise[i] = byte(i*7919 ^ i>>3)
		}
		msgs := []webhook.Message{{ID: "msg_1", Seq: 1, Type: webhook.StockChanged, Body: large, After: "a1"},
			{ID: "msg_2", Seq: 2, Type: webhook.StockChanged, Body: noise, After: "a2"}}
		if err := s.Progress(ctx, "wh_b", st.Grant, webhook.Progress{Pend: msgs, Seq: 2}); err != nil {
			t.Fatal(err)
		}
		old := `{"type":"stock.out","data":{}}`
		if err := d.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO webhook_pending (webhook_id, seq, message_id, type, body, after_position, first_ms, changes)
				VALUES ('wh_b', 3, 'msg_3', 'stock.out', $1, 'a3', 0, 1)`, old)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		again, err := s.Claim(ctx, "wh_b", 1)
		if err != nil || len(again.Pending) != 3 {
			t.Fatalf("claim: %d pending, %v", len(again.Pending), err)
		}
		for i, want := range [][]byte{large, noise, []byte(old)} {
			if got := again.Pending[i].Body; string(got) != string(want) {
				t.Errorf("pending %d: %d bytes back, want %d", i, len(got), len(want))
			}
		}
	})
}

// TestDeleteTakesItsRows: deleting a subscription deletes its pending messages and its
// delivery log with it (on PostgreSQL they have no foreign key to cascade them), and no
// other subscription's; a deliverer's write after the delete is stale and leaves nothing.
func TestDeleteTakesItsRows(t *testing.T) {
	testenv.SQLDatabases(t, func(t *testing.T, open func(*testing.T) *sqldb.DB) {
		ctx := context.Background()
		db := open(t)
		s := whdb.New(db)
		grants := map[string]webhook.Grant{}
		for _, id := range []string{"wh_gone", "wh_kept"} {
			if err := s.Create(ctx, sub(id), "v1:sealed", "start"); err != nil {
				t.Fatal(err)
			}
			st, err := s.Claim(ctx, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			grants[id] = st.Grant
			msg := func(n int) webhook.Message {
				return webhook.Message{ID: fmt.Sprintf("msg_%s_%d", id, n), Seq: int64(n), Type: webhook.StockChanged, Body: []byte(`{}`),
					After: webhook.Position(fmt.Sprintf("after-%d", n)), First: time.UnixMilli(1000), Changes: 1}
			}
			if err := s.Progress(ctx, id, st.Grant, webhook.Progress{Pend: []webhook.Message{msg(1), msg(2), msg(3)}, Seq: 3}); err != nil {
				t.Fatal(err)
			}
			if err := s.Progress(ctx, id, st.Grant, webhook.Progress{Delivered: []webhook.Attempt{{Message: msg(1).ID, At: time.UnixMilli(2000), Attempt: 1, Status: 204}},
				Through: 1, After: "after-1", At: time.UnixMilli(1000)}); err != nil {
				t.Fatal(err)
			}
		}
		rows := func(id string) (pending, logged int) {
			t.Helper()
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_pending WHERE webhook_id = $1`, id).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1`, id).Scan(&logged); err != nil {
				t.Fatal(err)
			}
			return pending, logged
		}
		if p, l := rows("wh_gone"); p != 2 || l != 1 {
			t.Fatalf("before the delete: %d pending, %d logged; want 2, 1", p, l)
		}
		if err := s.Delete(ctx, "wh_gone"); err != nil {
			t.Fatal(err)
		}
		if p, l := rows("wh_gone"); p != 0 || l != 0 {
			t.Fatalf("after the delete: %d pending, %d logged; want none", p, l)
		}
		if p, l := rows("wh_kept"); p != 2 || l != 1 {
			t.Fatalf("the other subscription: %d pending, %d logged; want 2, 1", p, l)
		}
		late := webhook.Progress{Pend: []webhook.Message{{ID: "msg_late", Seq: 4, Type: webhook.StockChanged, Body: []byte(`{}`), After: "after-4", First: time.UnixMilli(1000), Changes: 1}}, Seq: 4,
			Delivered: []webhook.Attempt{{Message: "msg_wh_gone_2", At: time.UnixMilli(3000), Attempt: 1, Status: 204}}, Through: 2, After: "after-2", At: time.UnixMilli(1000)}
		if err := s.Progress(ctx, "wh_gone", grants["wh_gone"], late); !errors.Is(err, webhook.ErrStale) {
			t.Fatalf("a deliverer's write after the delete: %v, want ErrStale", err)
		}
		if err := s.Attempted(ctx, "wh_gone", grants["wh_gone"], webhook.Attempt{Message: "msg_wh_gone_2", At: time.UnixMilli(3000), Attempt: 1, Status: 503, Error: "answered 503"}); !errors.Is(err, webhook.ErrStale) {
			t.Fatalf("an attempt logged after the delete: %v, want ErrStale", err)
		}
		if p, l := rows("wh_gone"); p != 0 || l != 0 {
			t.Fatalf("after the stale writes: %d pending, %d logged; want none", p, l)
		}
	})
}

// claimed creates subscription id (from "start") and claims it under token 1.
func claimed(tb testing.TB, s *whdb.Store, id string) webhook.State {
	ctx := context.Background()
	if err := s.Create(ctx, sub(id), "v1:sealed", "start"); err != nil {
		tb.Fatal(err)
	}
	st, err := s.Claim(ctx, id, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// TestProgressMany: one write carries hundreds of deliveries and pends (a backlog's, written
// in one statement on PostgreSQL), each row whole; and a write under a grant that no longer
// holds carries none of them.
func TestProgressMany(t *testing.T) {
	stores(t, func(t *testing.T, s *whdb.Store) {
		ctx := context.Background()
		st := claimed(t, s, "wh_m")
		var err error
		msg := func(n int) webhook.Message {
			return webhook.Message{ID: fmt.Sprintf("msg_m_%d", n), Seq: int64(n), Type: webhook.StockChanged,
				Body: []byte(fmt.Sprintf(`{"n":%d,"quote":"it's \"%d\""}`, n, n)), After: webhook.Position(fmt.Sprintf("after-%d", n)),
				First: time.UnixMilli(int64(n)), Changes: n % 7}
		}
		var first []webhook.Message
		for n := 1; n <= 300; n++ {
			first = append(first, msg(n))
		}
		if err := s.Progress(ctx, "wh_m", st.Grant, webhook.Progress{Pend: first, Seq: 300}); err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(1_700_000_000_000)
		var done []webhook.Attempt
		for n := 1; n <= 280; n++ {
			done = append(done, webhook.Attempt{Message: msg(n).ID, Type: webhook.StockChanged, At: at.Add(time.Duration(n) * time.Millisecond),
				Attempt: 1 + n%3, Status: 200 + n%5, Latency: time.Duration(n) * time.Microsecond, Error: fmt.Sprintf("e'%d", n), Changes: n % 7})
		}
		var more []webhook.Message
		for n := 301; n <= 364; n++ {
			more = append(more, msg(n))
		}
		// Fenced (a higher token claimed it): nothing of it is written.
		if _, err := s.Claim(ctx, "wh_m", 2); err != nil {
			t.Fatal(err)
		}
		if err := s.Progress(ctx, "wh_m", st.Grant, webhook.Progress{Delivered: done, Through: 280, After: "after-280", At: at, Pend: more, Seq: 364}); !errors.Is(err, webhook.ErrFenced) {
			t.Fatalf("a write under the old token: %v, want ErrFenced", err)
		}
		st, err = s.Claim(ctx, "wh_m", 2)
		if err != nil || st.Position != "start" || len(st.Pending) != 300 || st.Seq != 300 {
			t.Fatalf("after the fenced write: position %q, %d pending, seq %d, %v", st.Position, len(st.Pending), st.Seq, err)
		}
		if page, _ := s.Deliveries(ctx, "wh_m", "", 1000, ""); len(page.Deliveries) != 0 {
			t.Fatalf("the fenced write logged %d attempts", len(page.Deliveries))
		}
		if err := s.Progress(ctx, "wh_m", st.Grant, webhook.Progress{Delivered: done, Through: 280, After: "after-280", At: at, Pend: more, Seq: 364}); err != nil {
			t.Fatal(err)
		}
		st, err = s.Claim(ctx, "wh_m", 2)
		if err != nil || st.Position != "after-280" || st.Seq != 364 || len(st.Pending) != 84 {
			t.Fatalf("after the write: position %q, %d pending, seq %d, %v", st.Position, len(st.Pending), st.Seq, err)
		}
		for i, m := range st.Pending {
			want := msg(281 + i)
			if m.ID != want.ID || m.Seq != want.Seq || string(m.Body) != string(want.Body) || m.After != want.After || !m.First.Equal(want.First) || m.Changes != want.Changes {
				t.Fatalf("pending %d: %+v, want %+v", i, m, want)
			}
		}
		page, err := s.Deliveries(ctx, "wh_m", "", 1000, "")
		if err != nil || len(page.Deliveries) != 280 {
			t.Fatalf("the log: %d attempts, %v", len(page.Deliveries), err)
		}
		for i, a := range page.Deliveries { // newest first
			want := done[279-i]
			if a.Message != want.Message || a.Attempt != want.Attempt || a.Status != want.Status || a.Error != want.Error ||
				!a.At.Equal(want.At) || a.Latency != want.Latency || a.Changes != want.Changes || a.Type != want.Type {
				t.Fatalf("log %d: %+v, want %+v", i, a, want)
			}
		}
	})
}

// BenchmarkProgress is a live subscription's write a message on PostgreSQL: one message of
// one change pended (its body carrying a 48-stream cursor, as in a run of jaego) with the
// delivery of the one before. It reports PostgreSQL's CPU a write beside the time (the
// backend's, from /proc, when the server runs on this machine), since PostgreSQL shares
// the cores with jaego: `go test -run - -bench Progress ./internal/webhook/db/`.
func BenchmarkProgress(b *testing.B) {
	ctx := context.Background()
	d, err := sqldb.Open(ctx, testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(ctx, nil); err != nil {
		b.Fatal(err)
	}
	d.SetMaxOpenConns(1) // one backend, whose CPU is read
	var pid int
	if err := d.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	s := whdb.New(d)
	st := claimed(b, s, "wh_bench")
	cursor := func(n int) webhook.Position {
		var c strings.Builder
		c.WriteString(`{"f":1764850000000,"t":4920000000000,"p":{`)
		for g := range 48 {
			if g > 0 {
				c.WriteByte(',')
			}
			fmt.Fprintf(&c, `"%02d/20261205":"%d-%d"`, g, 1764850001000+n*37+g, g%3)
		}
		c.WriteString("}}")
		return webhook.Position(base64.RawURLEncoding.EncodeToString([]byte(c.String())))
	}
	positions := [2]webhook.Position{cursor(1), cursor(2)}
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"stock.changed","timestamp":"2026-12-05T22:00:00Z","data":{"changes":[{"id":"%d-0/07/20261205","store":"A007",`+
			`"sku":"K3","type":"receipt","delta":1,"on_hand":%d,"reserved":0,"safety":0,"version":%d,"event_id":"steady-%d","at":"2026-12-05T22:00:00.123Z"}],"cursor":"%s"}}`,
			i, i, i, i, positions[i%2])
	}
	backend := func() time.Duration {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -1 // not on this machine
		}
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		user, _ := strconv.Atoi(f[11])
		system, _ := strconv.Atoi(f[12])
		return time.Duration(user+system) * 10 * time.Millisecond // USER_HZ 100
	}
	var prev []webhook.Attempt
	start := backend()
	i := 0
	for b.Loop() {
		i++
		p := webhook.Progress{Pend: []webhook.Message{{ID: "msg_bench_" + strconv.Itoa(i), Seq: int64(i), Type: webhook.StockChanged, Body: body(i),
			After: positions[i%2], First: time.UnixMilli(int64(i)), Changes: 1}}, Seq: int64(i)}
		if prev != nil {
			p.Delivered, p.Through, p.After, p.At = prev, int64(i-1), positions[(i-1)%2], time.UnixMilli(int64(i))
		}
		if err := s.Progress(ctx, "wh_bench", st.Grant, p); err != nil {
			b.Fatal(err)
		}
		prev = []webhook.Attempt{{Message: "msg_bench_" + strconv.Itoa(i), Type: webhook.StockChanged, At: time.UnixMilli(int64(i)), Attempt: 1, Status: 204, Changes: 1}}
	}
	if end := backend(); start >= 0 && end >= 0 {
		b.ReportMetric(float64((end-start).Microseconds())/float64(i), "pg-µs/op")
	}
}

// TestClaimsAndWritesRace: instances claim a subscription at once with their own fencing
// tokens while each one that got it writes pends: the token on the row only ever rises
// (the highest claim wins, whatever the order the claims land in), a write under a token
// that a higher claim passed fails, and every write that succeeded is kept, exactly.
func TestClaimsAndWritesRace(t *testing.T) {
	testenv.SQLDatabases(t, func(t *testing.T, open func(*testing.T) *sqldb.DB) {
		d := open(t)
		s := whdb.New(d)
		ctx := context.Background()
		claimed(t, s, "wh_r")
		const rounds, instances, writes = 12, 12, 10
		var kept []int64 // seqs of every write that succeeded
		var mu sync.Mutex
		for round := range rounds {
			base := int64(1000 * (round + 1))
			top := base + instances
			var topDone atomic.Bool
			var wg sync.WaitGroup
			for i := range instances {
				token := base + 1 + int64((i*7)%instances) // a permutation of base+1..top
				wg.Go(func() {
					st, err := s.Claim(ctx, "wh_r", token)
					fenced := errors.Is(err, webhook.ErrFenced)
					if err != nil && !fenced {
						t.Errorf("claim %d: %v", token, err)
						return
					}
					if token == top {
						if fenced {
							t.Errorf("the highest claim, %d, was fenced", token)
						}
						topDone.Store(true)
					}
					g := webhook.Grant{Token: token, Generation: 1}
					if err == nil {
						g = st.Grant
					}
					for w := range writes {
						seq := token*100 + int64(w)
						after := topDone.Load()
						err := s.Progress(ctx, "wh_r", g, webhook.Progress{Pend: []webhook.Message{{ID: fmt.Sprintf("msg_r_%d", seq), Seq: seq,
							Type: webhook.StockChanged, Body: []byte(`{}`), After: "a", First: time.UnixMilli(seq), Changes: 1}}, Seq: seq})
						switch {
						case err == nil && (fenced || after && token < top):
							t.Errorf("a write under token %d landed after a higher claim (fenced claim %v, the highest done %v)", token, fenced, after)
						case err == nil:
							mu.Lock()
							kept = append(kept, seq)
							mu.Unlock()
						case !errors.Is(err, webhook.ErrFenced):
							t.Errorf("write under %d: %v", token, err)
						}
						if err != nil {
							return
						}
					}
				})
			}
			wg.Wait()
			var token int64
			if err := d.QueryRowContext(ctx, `SELECT token FROM webhooks WHERE id = 'wh_r'`).Scan(&token); err != nil || token != top {
				t.Fatalf("round %d: the row's token %d (%v), want the highest claimed, %d", round, token, err, top)
			}
		}
		st, err := s.Claim(ctx, "wh_r", 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, m := range st.Pending {
			got = append(got, m.Seq)
		}
		slices.Sort(kept)
		if !slices.Equal(got, kept) {
			t.Fatalf("pending %d messages, %d writes succeeded: %v against %v", len(got), len(kept), got, kept)
		}
		t.Logf("%d writes kept of %d rounds of %d claims", len(kept), rounds, instances)
	})
}

// TestUpdatesAtOnce: operators' changes at once (each adds a store to the filter) are each
// kept: an update reads the subscription and writes it back under its row's lock, so none
// writes over another's; and each raises the generation once.
func TestUpdatesAtOnce(t *testing.T) {
	stores(t, func(t *testing.T, s *whdb.Store) {
		ctx := context.Background()
		claimed(t, s, "wh_u")
		const n = 16
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := s.Update(ctx, "wh_u", func(w *webhook.Subscription) error {
					w.Stores = append(w.Stores, fmt.Sprintf("S%02d", i))
					return nil
				}); err != nil {
					t.Errorf("update %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		info, err := s.Get(ctx, "wh_u")
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(slices.Values(info.Stores))
		if len(got) != n || info.Generation != 1+n {
			t.Fatalf("after %d updates at once: stores %v, generation %d", n, got, info.Generation)
		}
	})
}
