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
