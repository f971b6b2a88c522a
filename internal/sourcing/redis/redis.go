// Package redis keeps the store directory of design §15 in Redis — a geo index of the
// stores' positions and a hash of their records, in one slot beside group 0's epoch mark —
// and the records of sourcing holds.
package redis

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
)

var (
	//go:embed put.lua
	putLua string
	//go:embed saga.lua
	sagaLua string
)

// Directory is the Redis store directory, and the sourcing holds' records.
type Directory struct {
	client       rueidis.Client
	keys         keys
	requireEpoch string // "1": a Redis without group 0's epoch mark lost its data
	keep         time.Duration
	put, saga    *rueidis.Lua
	// records are the stores' records as of a version of the directory: a sourcing query
	// reads up to 100 stores, and their records (which change a few times a day) cost Redis
	// more than the search did. Near reads the version with the search and reloads the
	// records only when it moved.
	records atomic.Pointer[records]
	reload  sync.Mutex
}

type records struct {
	version string
	stores  map[string]sourcing.Store
}

var (
	_ sourcing.Directory = (*Directory)(nil)
	_ sourcing.Sagas     = (*Directory)(nil)
)

// Keyspace names the directory's keys: the stock store's (inventory/redis's Keyspace), so
// that they carry its prefix and the directory sits in group 0's slot beside its epoch mark.
type Keyspace interface {
	StoreDirectory() (geo, records, version string)
	Epoch(g int) string
	SourcingSaga(id string) string
}

// keys are the names New reads from a Keyspace.
type keys struct {
	Geo, Records, Version string
	Epoch                 string // group 0's epoch mark
	saga                  func(id string) string
}

// New returns the directory in ks.
// A sourcing hold's record is kept as long as its parts' reservations are (the
// idempotency TTL).
func New(client rueidis.Client, ks Keyspace, requireEpoch bool, keep time.Duration) *Directory {
	names := keys{Epoch: ks.Epoch(0), saga: ks.SourcingSaga}
	names.Geo, names.Records, names.Version = ks.StoreDirectory()
	d := &Directory{client: client, keys: names, requireEpoch: "0", keep: keep,
		put: rueidis.NewLuaScript(putLua), saga: rueidis.NewLuaScript(sagaLua)}
	if requireEpoch {
		d.requireEpoch = "1"
	}
	return d
}

func (d *Directory) dirKeys() []string {
	return []string{d.keys.Geo, d.keys.Records, d.keys.Epoch, d.keys.Version}
}

// fail is what a failed call means: Redis lost its data, or is unavailable.
func fail(op string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "REDISLOST") { // put.lua's refusal
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
		execs[i] = rueidis.LuaExec{Keys: d.dirKeys(), Args: []string{d.requireEpoch, s.ID,
			strconv.FormatFloat(s.Lon, 'f', -1, 64), strconv.FormatFloat(s.Lat, 'f', -1, 64), packStore(s), token()}}
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
	cmds := rueidis.Commands{d.client.B().Hget().Key(d.keys.Records).Field(id).Build()}
	if d.requireEpoch == "1" {
		cmds = append(cmds, d.client.B().Exists().Key(d.keys.Epoch).Build())
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
	s, err := unpackStore(id, v)
	if err != nil {
		return sourcing.Store{}, fmt.Errorf("store directory: %w", err)
	}
	return s, nil
}

// Near implements sourcing.Directory: one round trip (GEOSEARCH, the records' version and
// group 0's epoch mark), and the records from the process's copy, reloaded (HGETALL) when
// the version moved.
func (d *Directory) Near(ctx context.Context, lat, lon, radiusKm float64, limit int) ([]sourcing.Near, error) {
	cmds := rueidis.Commands{
		d.client.B().Geosearch().Key(d.keys.Geo).Fromlonlat(lon, lat).Byradius(radiusKm).Km().Asc().Count(int64(limit)).Withdist().Build(),
		d.client.B().Get().Key(d.keys.Version).Build(),
	}
	if d.requireEpoch == "1" {
		cmds = append(cmds, d.client.B().Exists().Key(d.keys.Epoch).Build())
	}
	res := d.client.DoMulti(ctx, cmds...)
	if len(res) == 3 {
		if marked, err := res[2].AsInt64(); err == nil && marked == 0 {
			return nil, inventory.ErrLost
		}
	}
	found, err := res[0].ToArray()
	if err != nil {
		return nil, fail("store directory near", err)
	}
	ver, err := res[1].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fail("store directory near", err)
	}
	recs, err := d.recordsAt(ctx, ver)
	if err != nil {
		return nil, err
	}
	out := make([]sourcing.Near, 0, len(found))
	for _, f := range found {
		pair, err := f.ToArray()
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("store directory: GEOSEARCH answered %v", f)
		}
		id, _ := pair[0].ToString()
		dist, err := pair[1].AsFloat64()
		if err != nil {
			return nil, fmt.Errorf("store directory: distance of %s: %w", id, err)
		}
		if s, ok := recs.stores[id]; ok { // a store put after the records were read: the next query has it
			out = append(out, sourcing.Near{Store: s, DistanceKm: dist})
		}
	}
	sourcing.SortNear(out)
	return out, nil
}

// recordsAt answers the records as of version, reading them all when the copy is older.
func (d *Directory) recordsAt(ctx context.Context, version string) (*records, error) {
	if r := d.records.Load(); r != nil && r.version == version {
		return r, nil
	}
	d.reload.Lock()
	defer d.reload.Unlock()
	if r := d.records.Load(); r != nil && r.version == version {
		return r, nil
	}
	res := d.client.DoMulti(ctx, d.client.B().Hgetall().Key(d.keys.Records).Build(), d.client.B().Get().Key(d.keys.Version).Build())
	all, err := res[0].AsStrMap()
	if err != nil {
		return nil, fail("store directory records", err)
	}
	ver, err := res[1].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fail("store directory records", err)
	}
	r := &records{version: ver, stores: make(map[string]sourcing.Store, len(all))}
	for id, v := range all {
		if r.stores[id], err = unpackStore(id, v); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
	}
	d.records.Store(r)
	return r, nil
}

func token() string {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// A store's record in the hash is "<id>|<status>|<capabilities, comma-separated>|<lat>|<lon>|<name>":
// all of them are read at once when the directory changed, and JSON took a quarter of a
// sourcing query's CPU when each query read its stores' records. The name is
// last: it may hold any character but a control one (sourcing.Store.Validate).
func packStore(s sourcing.Store) string {
	return s.ID + "|" + string(s.Status) + "|" + strings.Join(s.Capabilities, ",") + "|" +
		strconv.FormatFloat(s.Lat, 'f', -1, 64) + "|" + strconv.FormatFloat(s.Lon, 'f', -1, 64) + "|" + s.Name
}

func unpackStore(id, v string) (sourcing.Store, error) {
	f := strings.SplitN(v, "|", 6)
	if len(f) != 6 || (id != "" && f[0] != id) {
		return sourcing.Store{}, fmt.Errorf("record %q of store %s is not <id>|<status>|<capabilities>|<lat>|<lon>|<name>", v, id)
	}
	s := sourcing.Store{ID: f[0], Status: sourcing.Status(f[1]), Capabilities: []string{}, Name: f[5]}
	if f[2] != "" {
		s.Capabilities = strings.Split(f[2], ",")
	}
	var err1, err2 error
	s.Lat, err1 = strconv.ParseFloat(f[3], 64)
	s.Lon, err2 = strconv.ParseFloat(f[4], 64)
	if err1 != nil || err2 != nil {
		return sourcing.Store{}, fmt.Errorf("record %q: lat or lon is not a number", v)
	}
	return s, nil
}

// Begin implements sourcing.Sagas.
func (d *Directory) Begin(ctx context.Context, id string, until time.Time, block int) (sourcing.Begun, error) {
	token := token()
	out, err := d.saga.Exec(ctx, d.client, []string{d.keys.saga(id)}, []string{"begin",
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
	n, err := d.saga.Exec(ctx, d.client, []string{d.keys.saga(id)}, []string{"finish", token, state, string(plan),
		strconv.FormatInt(d.keep.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return false, fail("sourcing finish", err)
	}
	return n == 1, nil
}
