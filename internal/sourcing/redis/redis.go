// Package redis keeps the store directory of design §15 in Redis — a geo index of the
// stores' positions and a hash of their records, in one slot beside group 0's epoch mark —
// and the records of sourcing holds.
package redis

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
)

var (
	//go:embed near.lua
	nearLua string
	//go:embed put.lua
	putLua string
	//go:embed saga.lua
	sagaLua string
)

// Directory is the Redis store directory, and the sourcing holds' records.
type Directory struct {
	client       rueidis.Client
	keys         invredis.Keyspace
	requireEpoch string // "1": a Redis without group 0's epoch mark lost its data
	keep         time.Duration
	near, put    *rueidis.Lua
	saga         *rueidis.Lua
}

var (
	_ sourcing.Directory = (*Directory)(nil)
	_ sourcing.Sagas     = (*Directory)(nil)
)

// New returns the directory in the keyspace of store (its prefix, groups and epoch marks).
// A sourcing hold's record is kept as long as its parts' reservations are (the
// idempotency TTL).
func New(client rueidis.Client, store *invredis.Store, requireEpoch bool, keep time.Duration) *Directory {
	d := &Directory{client: client, keys: store.Keys(), requireEpoch: "0", keep: keep,
		near: rueidis.NewLuaScript(nearLua), put: rueidis.NewLuaScript(putLua), saga: rueidis.NewLuaScript(sagaLua)}
	if requireEpoch {
		d.requireEpoch = "1"
	}
	return d
}

func (d *Directory) dirKeys() []string {
	geo, records := d.keys.StoreDirectory()
	return []string{geo, records, d.keys.Epoch(0)}
}

// fail is what a failed call means: Redis lost its data, or is unavailable.
func fail(op string, err error) error {
	if invredis.IsLost(err) {
		return inventory.ErrLost
	}
	return jaego.Unavailable("redis "+op, err)
}

// Put implements sourcing.Directory.
func (d *Directory) Put(ctx context.Context, s sourcing.Store) error {
	return d.PutMany(ctx, []sourcing.Store{s})
}

// PutMany puts stores, pipelined: the load of a directory file, and a restore.
func (d *Directory) PutMany(ctx context.Context, stores []sourcing.Store) error {
	execs := make([]rueidis.LuaExec, len(stores))
	for i, s := range stores {
		rec, err := json.Marshal(s)
		if err != nil {
			return err
		}
		execs[i] = rueidis.LuaExec{Keys: d.dirKeys(), Args: []string{d.requireEpoch, s.ID,
			strconv.FormatFloat(s.Lon, 'f', -1, 64), strconv.FormatFloat(s.Lat, 'f', -1, 64), string(rec)}}
	}
	for _, res := range d.put.ExecMulti(ctx, d.client, execs...) {
		if err := res.Error(); err != nil {
			return fail("store directory put", err)
		}
	}
	return nil
}

// Get implements sourcing.Directory: one HGET, with group 0's epoch mark in the same round
// trip (a Redis that lost its data answers ErrLost, never not_found).
func (d *Directory) Get(ctx context.Context, id string) (sourcing.Store, error) {
	_, records := d.keys.StoreDirectory()
	cmds := rueidis.Commands{d.client.B().Hget().Key(records).Field(id).Build()}
	if d.requireEpoch == "1" {
		cmds = append(cmds, d.client.B().Exists().Key(d.keys.Epoch(0)).Build())
	}
	res := d.client.DoMulti(ctx, cmds...)
	if len(res) == 2 {
		if marked, err := res[1].AsInt64(); err == nil && marked == 0 {
			return sourcing.Store{}, inventory.ErrLost
		}
	}
	v, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return sourcing.Store{}, &jaego.Error{Code: jaego.CodeNotFound, Detail: fmt.Sprintf("no store %s in the directory", id)}
	}
	if err != nil {
		return sourcing.Store{}, fail("store directory get", err)
	}
	var s sourcing.Store
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return sourcing.Store{}, fmt.Errorf("store %s: record %q: %w", id, v, err)
	}
	return s, nil
}

// Near implements sourcing.Directory: one script call (GEOSEARCH and the records found).
func (d *Directory) Near(ctx context.Context, lat, lon, radiusKm float64, limit int) ([]sourcing.Near, error) {
	out, err := d.near.Exec(ctx, d.client, d.dirKeys(), []string{d.requireEpoch, strconv.FormatFloat(lon, 'f', -1, 64),
		strconv.FormatFloat(lat, 'f', -1, 64), strconv.FormatFloat(radiusKm, 'f', -1, 64), strconv.Itoa(limit)}).ToArray()
	if err != nil {
		return nil, fail("store directory near", err)
	}
	found := make([]sourcing.Near, 0, len(out)/2)
	for i := 0; i+1 < len(out); i += 2 {
		dist, _ := out[i].ToString()
		rec, _ := out[i+1].ToString()
		var n sourcing.Near
		if err := json.Unmarshal([]byte(rec), &n.Store); err != nil {
			return nil, fmt.Errorf("store directory: record %q: %w", rec, err)
		}
		if n.DistanceKm, err = strconv.ParseFloat(dist, 64); err != nil {
			return nil, fmt.Errorf("store directory: distance %q: %w", dist, err)
		}
		found = append(found, n)
	}
	sourcing.SortNear(found)
	return found, nil
}

// Begin implements sourcing.Sagas.
func (d *Directory) Begin(ctx context.Context, id string, until time.Time, block int) (sourcing.Begun, error) {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	out, err := d.saga.Exec(ctx, d.client, []string{d.keys.SourcingSaga(id)}, []string{"begin",
		strconv.FormatInt(time.Now().UnixMilli(), 10), strconv.FormatInt(until.UnixMilli(), 10), token,
		strconv.Itoa(block), strconv.FormatInt(d.keep.Milliseconds(), 10)}).ToArray()
	if err == nil && len(out) != 3 {
		err = fmt.Errorf("answered %d values", len(out))
	}
	if err != nil {
		return sourcing.Begun{}, fail("sourcing begin", err)
	}
	state, _ := out[0].ToString()
	num, _ := out[1].ToString()
	plan, _ := out[2].ToString()
	n, _ := strconv.ParseInt(num, 10, 64)
	b := sourcing.Begun{State: state, Plan: []byte(plan)}
	switch state {
	case sourcing.SagaBegun:
		b.First, b.Token = int(n), token
	case sourcing.SagaBusy:
		b.Until = time.UnixMilli(n)
	}
	return b, nil
}

// Finish implements sourcing.Sagas.
func (d *Directory) Finish(ctx context.Context, id, token string, held bool, plan []byte) (bool, error) {
	state := "released"
	if held {
		state = sourcing.SagaHeld
	}
	n, err := d.saga.Exec(ctx, d.client, []string{d.keys.SourcingSaga(id)}, []string{"finish", token, state, string(plan),
		strconv.FormatInt(d.keep.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return false, fail("sourcing finish", err)
	}
	return n == 1, nil
}
