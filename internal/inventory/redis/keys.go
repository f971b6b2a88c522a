package redis

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// Keyspace is the one place that names jaego's inventory keys (the layout in the package
// doc): the apply script's writer, the readers, the feed and the tools all build keys here.
type Keyspace struct {
	prefix string
	groups int
	// The idempotency marks: how long an event id is remembered, and how many bucket hashes
	// a shard group's marks of one window are spread over.
	markTTL     time.Duration
	markBuckets int
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

// Stock is the hash of a store's stock: one field per SKU, its value the packed record
// (see packStock).
func (k Keyspace) Stock(store string) string {
	return k.tagged("stk", k.Group(store)) + ":" + store
}

// The idempotency marks. An applied event leaves a 12-byte digest of (store, event id) —
// an id is scoped to its store, design §11 — as a field of one of MarkBuckets small hashes
// of its shard group and time window. Small hashes stay in Redis's compact listpack
// encoding (up to hash-max-listpack-entries, 128 by default), where a mark costs about 16
// bytes, where a key per mark cost about 70. A window is half the idempotency TTL; a
// window's hashes expire two windows after it ends, so a mark lives between one and one
// and a half TTLs, and a check looks in the windows from two before to one after the
// current one (the one after covers a server whose clock runs behind the one that wrote).
//
// The digest has 96 bits: with the ~50M marks a retailer of 5M events a day keeps alive,
// the chance that any two ids collide (and one is taken for a duplicate) is about
// 50M² / 2⁹⁷ ≈ 2·10⁻¹⁴.
const markDigestLen = 12

// markWindow is the length of a mark window.
func (k Keyspace) markWindow() time.Duration { return k.markTTL / 2 }

// markWindows is how many windows before the current one may hold a live mark.
const markWindowsBack = 2

// MarkDigest is the field of the mark of (store, event id).
func MarkDigest(store, eventID string) string {
	sum := sha256.Sum256([]byte(store + "\n" + eventID))
	return string(sum[:markDigestLen])
}

// Mark is the bucket hash of window w that holds the mark with digest d.
func (k Keyspace) Mark(g int, w int64, d string) string {
	b := binary.BigEndian.Uint32([]byte(d[markDigestLen-4:])) % uint32(k.markBuckets)
	return k.tagged("idem", g) + ":" + strconv.FormatInt(w, 10) + ":" + strconv.FormatUint(uint64(b), 10)
}

// MarkWindow is the window of time t.
func (k Keyspace) MarkWindow(t time.Time) int64 { return t.UnixMilli() / k.markWindow().Milliseconds() }

// MarkExpiry is when the hashes of window w expire: two windows after its end.
func (k Keyspace) MarkExpiry(w int64) time.Time {
	return time.UnixMilli((w + 1 + markWindowsBack) * k.markWindow().Milliseconds())
}

// Marks returns the keys where the mark of (store, event id) may be at time now, the one
// to write first, and the digest.
func (k Keyspace) Marks(store, eventID string, now time.Time) (keys []string, digest string) {
	d := MarkDigest(store, eventID)
	g, w := k.Group(store), k.MarkWindow(now)
	keys = []string{k.Mark(g, w, d)}
	for i := int64(1); i <= markWindowsBack; i++ {
		keys = append(keys, k.Mark(g, w-i, d))
	}
	return append(keys, k.Mark(g, w+1, d)), d
}

// marksPerEvent is len(keys) of Marks.
const marksPerEvent = markWindowsBack + 2

// Load is the mark of a stock snapshot load in group g: the last line it applied there.
func (k Keyspace) Load(g int, loadID string) string { return k.tagged("load", g) + ":" + loadID }

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

// Epoch is group g's epoch mark: it exists while Redis holds the data the durable copy
// follows (set at a deployment's start and by a restore; gone when Redis lost its data).
func (k Keyspace) Epoch(g int) string { return k.tagged("epoch", g) }

// packStock is a record as the value of its SKU's field in the store hash:
// "on_hand:reserved:safety:version:updated_at" in decimal, updated_at in unix ms. The apply
// script writes the same (TestPackedRecord holds the two to one format).
func packStock(s inventory.Stock) string {
	i := strconv.FormatInt
	return i(s.OnHand, 10) + ":" + i(s.Reserved, 10) + ":" + i(s.Safety, 10) + ":" +
		i(s.Version, 10) + ":" + i(s.UpdatedAt.UnixMilli(), 10)
}

// unpackStock reads a packed record of store × sku.
func unpackStock(store, sku, v string) (inventory.Stock, error) {
	var n [5]int64
	rest := v
	for i := range n {
		part, tail, ok := strings.Cut(rest, ":")
		if ok != (i < len(n)-1) {
			return inventory.Stock{}, fmt.Errorf("stock %s/%s: malformed record %q", store, sku, v)
		}
		x, err := strconv.ParseInt(part, 10, 64)
		if err != nil {
			return inventory.Stock{}, fmt.Errorf("stock %s/%s: malformed record %q", store, sku, v)
		}
		n[i], rest = x, tail
	}
	return inventory.Stock{
		Store: store, SKU: sku, OnHand: n[0], Reserved: n[1], Safety: n[2], Version: n[3],
		UpdatedAt: time.UnixMilli(n[4]).UTC(), Source: inventory.SourcePrimary,
	}.WithAvailable(), nil
}

// Prefix is the prefix of every key.
func (k Keyspace) Prefix() string { return k.prefix }

// StoreDirectory names the store directory (design §15): a geo index of the stores'
// positions, a hash of their records and the records' version (a random token each put
// sets), all in group 0's slot beside its epoch mark, so that one round trip reads them and
// knows whether Redis lost its data.
func (k Keyspace) StoreDirectory() (geo, records, version string) {
	return k.tagged("dirgeo", 0), k.tagged("dir", 0), k.tagged("dirver", 0)
}

// SourcingSaga names the record of a sourcing hold (design §15) under a reservation id.
func (k Keyspace) SourcingSaga(id string) string {
	return k.tagged("srcg", int(crc32.ChecksumIEEE([]byte(id))%uint32(k.groups))) + ":" + id
}
