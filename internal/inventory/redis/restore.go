package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
)

var _ inventory.RestoreTarget = (*Store)(nil)

// PutRecords implements inventory.RestoreTarget: each record into its store's hash, and
// the store into its group's store set, pipelined.
func (s *Store) PutRecords(ctx context.Context, records []inventory.Stock) error {
	cmds := make(rueidis.Commands, 0, 2*len(records))
	for _, r := range records {
		cmds = append(cmds,
			s.client.B().Hset().Key(s.keys.Stock(r.Store)).FieldValue().FieldValue(r.SKU, packStock(r)).Build(),
			s.client.B().Sadd().Key(s.keys.Stores(s.keys.Group(r.Store))).Member(r.Store).Build())
	}
	return s.doAll(ctx, "restore records", cmds)
}

// MarkApplied implements inventory.RestoreTarget: the idempotency mark of each change's
// event, in the window of the change's time, for the changes whose at + window is still
// ahead.
func (s *Store) MarkApplied(ctx context.Context, changes []inventory.Change, window time.Duration) error {
	cmds := make(rueidis.Commands, 0, len(changes))
	expiry := map[string]time.Time{}
	for _, c := range changes {
		if time.Until(c.At.Add(window)) < time.Second {
			continue
		}
		d := MarkDigest(c.Store, c.EventID)
		w := s.keys.MarkWindow(c.At)
		key := s.keys.Mark(s.keys.Group(c.Store), w, d)
		cmds = append(cmds, s.client.B().Hset().Key(key).FieldValue().FieldValue(d, "").Build())
		expiry[key] = s.keys.MarkExpiry(w)
	}
	for key, at := range expiry {
		cmds = append(cmds, s.client.B().Pexpireat().Key(key).MillisecondsTimestamp(at.UnixMilli()).Build())
	}
	return s.doAll(ctx, "restore marks", cmds)
}

// RaiseChangeIDs implements inventory.RestoreTarget: each group's last change id (which
// the apply script continues from) is set to the highest of ids for that group.
func (s *Store) RaiseChangeIDs(ctx context.Context, ids []string) error {
	cmds := make(rueidis.Commands, 0, len(ids))
	for _, v := range ids {
		id, group, ok := strings.Cut(v, "/")
		g, err := strconv.Atoi(group)
		if !ok || err != nil || g < 0 || g >= s.keys.Groups() {
			return fmt.Errorf("restore change id %q: not id/group of this layout (%d groups)", v, s.keys.Groups())
		}
		cmds = append(cmds, s.client.B().Set().Key(s.keys.LastChange(g)).Value(id).Build())
	}
	return s.doAll(ctx, "restore change ids", cmds)
}

func (s *Store) doAll(ctx context.Context, op string, cmds rueidis.Commands) error {
	if len(cmds) == 0 {
		return nil
	}
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return s.unavailable(op, err)
		}
	}
	return nil
}

// MarkEpoch implements inventory.RestoreTarget: every shard group's epoch mark, which a
// Store with RequireEpoch writes only where it exists. onlyNew leaves existing marks alone
// (a deployment's start); a restore writes them all.
func (s *Store) MarkEpoch(ctx context.Context, onlyNew bool) error {
	stamp := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cmds := make(rueidis.Commands, s.keys.Groups())
	for g := range cmds {
		set := s.client.B().Set().Key(s.keys.Epoch(g)).Value(stamp)
		if onlyNew {
			cmds[g] = set.Nx().Build()
		} else {
			cmds[g] = set.Build()
		}
	}
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return s.unavailable("epoch", err)
		}
	}
	return nil
}

// Lost reports whether a shard group's epoch mark is gone: Redis lost (some of) its data.
func (s *Store) Lost(ctx context.Context) (bool, error) {
	marked, err := s.epochs(ctx)
	return marked < s.keys.Groups(), err
}

// Marked reports whether any shard group has its epoch mark: this Redis belongs to a
// deployment with a durable copy.
func (s *Store) Marked(ctx context.Context) (bool, error) {
	marked, err := s.epochs(ctx)
	return marked > 0, err
}

// epochs counts the shard groups that have their epoch mark.
func (s *Store) epochs(ctx context.Context) (int, error) {
	cmds := make(rueidis.Commands, s.keys.Groups())
	for g := range cmds {
		cmds[g] = s.client.B().Exists().Key(s.keys.Epoch(g)).Build()
	}
	marked := 0
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return 0, s.unavailable("epoch", err)
		}
		marked += int(n)
	}
	return marked, nil
}

// AppendChanges implements inventory.RestoreTarget: each change back into the stream its id
// names ("ms-seq/group/day"), with that id and the codec's fields; the streams expire after
// the retention like the ones the apply script writes.
func (s *Store) AppendChanges(ctx context.Context, changes []inventory.Change) error {
	cmds := make(rueidis.Commands, 0, len(changes)+16)
	streams := map[string]bool{}
	for _, c := range changes {
		parts := strings.Split(c.ID, "/")
		g, err := strconv.Atoi(parts[min(1, len(parts)-1)])
		if len(parts) != 3 || err != nil || g < 0 || g >= s.keys.Groups() {
			return fmt.Errorf("restore change %q: not an id of this layout (%d groups)", c.ID, s.keys.Groups())
		}
		key := s.keys.Stream(g, parts[2])
		streams[key] = true
		fv := s.client.B().Xadd().Key(key).Id(parts[0]).FieldValue()
		fields := EncodeChange(c)
		for i := 0; i < len(fields); i += 2 {
			fv = fv.FieldValue(fields[i], fields[i+1])
		}
		cmds = append(cmds, fv.Build())
	}
	for key := range streams {
		cmds = append(cmds, s.client.B().Expire().Key(key).Seconds(int64(s.opts.Retention/time.Second)).Build())
	}
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		// A stream that already has the entry (a forced restore over a Redis that kept it)
		// refuses the id: the change is there.
		if err := res.Error(); err != nil && !idTaken(err) {
			return s.unavailable("restore changes", err)
		}
	}
	return nil
}

// PutReservations implements inventory.RestoreTarget: each reservation's hash as
// reservation.lua writes it, a held one in its group's expiry queue (the sweeper expires it
// once, when due), each in its store's list and under its id's sealed claim. An ended one,
// and the claim, expire as they would have.
func (s *Store) PutReservations(ctx context.Context, rs []inventory.Reservation, keep time.Duration) error {
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	cmds := make(rueidis.Commands, 0, 6*len(rs))
	for _, r := range rs {
		g := s.keys.Group(r.Store)
		key := s.keys.Reservation(g, r.ID)
		packed := make([]string, len(r.Items))
		for i, it := range r.Items {
			packed[i] = it.SKU + ":" + strconv.FormatInt(it.Qty, 10)
		}
		cmds = append(cmds, s.client.B().Hset().Key(key).FieldValue().FieldValue("store", r.Store).
			FieldValue("items", strings.Join(packed, ",")).FieldValue("status", string(r.Status)).
			FieldValue("expires", ms(r.ExpiresAt)).FieldValue("created", ms(r.CreatedAt)).FieldValue("updated", ms(r.UpdatedAt)).Build())
		if r.Status == inventory.Held {
			cmds = append(cmds, s.client.B().Persist().Key(key).Build(),
				s.client.B().Zadd().Key(s.keys.Expiries(g)).ScoreMember().ScoreMember(float64(r.ExpiresAt.UnixMilli()), r.Store+":"+r.ID).Build())
		} else {
			cmds = append(cmds, s.client.B().Pexpireat().Key(key).MillisecondsTimestamp(r.UpdatedAt.Add(keep).UnixMilli()).Build())
		}
		last := r.ExpiresAt // the claim outlives the hold and the keep after the end
		if r.UpdatedAt.After(last) {
			last = r.UpdatedAt
		}
		list := s.keys.StoreReservations(r.Store)
		cmds = append(cmds, s.client.B().Zadd().Key(list).ScoreMember().ScoreMember(float64(r.CreatedAt.UnixMilli()), r.ID).Build(),
			s.client.B().Pexpire().Key(list).Milliseconds((keep + 24*time.Hour).Milliseconds()).Build(),
			s.client.B().Set().Key(s.keys.ReservationClaim(r.ID)).Value(r.Store).
				Pxat(last.Add(keep+time.Hour)).Build())
	}
	return s.doAll(ctx, "restore reservations", cmds)
}

// SetHeldCounts implements inventory.RestoreTarget: every group's count hash is replaced.
func (s *Store) SetHeldCounts(ctx context.Context, held map[string]int64) error {
	cmds := make(rueidis.Commands, 0, s.keys.Groups()+len(held))
	for g := range s.keys.Groups() {
		cmds = append(cmds, s.client.B().Del().Key(s.keys.HeldCounts(g)).Build())
	}
	for store, n := range held {
		cmds = append(cmds, s.client.B().Hset().Key(s.keys.HeldCounts(s.keys.Group(store))).FieldValue().
			FieldValue(store, strconv.FormatInt(n, 10)).Build())
	}
	return s.doAll(ctx, "restore held counts", cmds)
}

// PutLoadMarks implements inventory.RestoreTarget: each mark as the apply script keeps it,
// raised only (a forced restore over a Redis that got further keeps its mark).
func (s *Store) PutLoadMarks(ctx context.Context, marks []inventory.LoadMark, window time.Duration) error {
	cmds := make(rueidis.Commands, 0, len(marks))
	for _, m := range marks {
		if m.Group < 0 || m.Group >= s.keys.Groups() {
			return fmt.Errorf("restore load mark of group %d: not a group of this layout (%d groups)", m.Group, s.keys.Groups())
		}
		cmds = append(cmds, s.client.B().Eval().Script(raiseMark).Numkeys(1).Key(s.keys.Load(m.Group, m.Load)).
			Arg(strconv.FormatInt(m.Line, 10), strconv.FormatInt(m.At.Add(window).UnixMilli(), 10)).Build())
	}
	return s.doAll(ctx, "restore load marks", cmds)
}

const raiseMark = `if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2]) end return 0`
