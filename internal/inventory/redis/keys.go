package redis

import (
	"hash/crc32"
	"strconv"
	"time"
)

// Keyspace is the one place that names jaego's inventory keys (the layout in the package
// doc): the apply script's writer, the readers, the feed and the tools all build keys here.
type Keyspace struct {
	prefix string
	groups int
}

// Group returns the shard group of a store: crc32(store) mod G.
func (k Keyspace) Group(store string) int {
	return int(crc32.ChecksumIEEE([]byte(store)) % uint32(k.groups))
}

// Groups returns the number of shard groups G.
func (k Keyspace) Groups() int { return k.groups }

func (k Keyspace) tagged(kind string, g int) string {
	return k.prefix + ":" + kind + ":{" + strconv.Itoa(g) + "}"
}

// Stock is the hash of store × sku.
func (k Keyspace) Stock(store, sku string) string {
	return k.tagged("stk", k.Group(store)) + ":" + store + ":" + sku
}

// Idempotency is the mark of an applied event id of a store (design §11: an event id is
// scoped to its store; the same id on another store is another event).
func (k Keyspace) Idempotency(store, eventID string) string {
	return k.tagged("idem", k.Group(store)) + ":" + store + ":" + eventID
}

// Stream is the change stream of group g on a UTC day (YYYYMMDD).
func (k Keyspace) Stream(g int, day string) string { return k.tagged("chg", g) + ":" + day }

// StreamOn is the change stream of group g on the UTC day of t.
func (k Keyspace) StreamOn(g int, t time.Time) string { return k.Stream(g, StreamDay(t)) }

// StreamDay is the UTC day of t as the stream keys spell it.
func StreamDay(t time.Time) string { return t.UTC().Format("20060102") }

// LastChange holds the last change id of group g: ids rise across its days.
func (k Keyspace) LastChange(g int) string { return k.tagged("chgid", g) }

// Stores is the set of group g's stores (for snapshots).
func (k Keyspace) Stores(g int) string { return k.tagged("stores", g) }

// SKUs is the set of a store's SKUs (for snapshots).
func (k Keyspace) SKUs(store string) string { return k.tagged("skus", k.Group(store)) + ":" + store }

// Epoch is group g's epoch mark: it exists while Redis holds the data the durable copy
// follows (set at a deployment's start and by a restore; gone when Redis lost its data).
func (k Keyspace) Epoch(g int) string { return k.tagged("epoch", g) }
