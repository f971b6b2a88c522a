package redis

import (
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// The stream entry codec: one change is one entry whose fields are, in this order,
// store, sku, type, delta, on_hand, reserved, safety, version, event_id, kp and ko (the
// Kafka partition and offset of the event, both empty when it did not come from Kafka) and
// note (inventory.Note's text, empty for most changes).
// The change's time is its id's: ids are the apply time (raised to stay rising, see
// apply.lua), so an at field would repeat it. Every entry has the same fields, so Redis
// stores them once per stream node and each entry holds only its values (docs/architecture.md
// §5 has the bytes). apply.lua writes them (it cannot call Go; TestStreamCodec holds it to
// this list), EncodeChange writes them for tools, decodeEntry reads them.

// typeCodes are the numbers the type field holds: a change's type in one byte (apply.lua
// has the same table; TestStreamCodec holds the two together). New types get new numbers.
var typeCodes = []inventory.EventType{1: inventory.Sale, 2: inventory.SaleCancel, 3: inventory.Receipt,
	4: inventory.Return, 5: inventory.Disposal, 6: inventory.Adjust, 7: inventory.Set, 8: inventory.SetSafety,
	9: inventory.Reserve, 10: inventory.Release, 11: inventory.Fulfill}

func typeCode(t inventory.EventType) int64 {
	for i, x := range typeCodes {
		if x == t && i > 0 {
			return int64(i)
		}
	}
	return 0
}

// EncodeChange is c as the field, value pairs of its stream entry (the id is the caller's).
func EncodeChange(c inventory.Change) []string {
	i := strconv.FormatInt
	f := []string{"store", c.Store, "sku", c.SKU, "type", i(typeCode(c.Type), 10), "delta", i(c.Delta, 10),
		"on_hand", i(c.OnHand, 10), "reserved", i(c.Reserved, 10), "safety", i(c.Safety, 10),
		"version", i(c.Version, 10), "event_id", c.EventID, "kp", "", "ko", "", "note", c.Note.String()}
	if c.Origin != nil {
		f[19], f[21] = i(int64(c.Origin.Partition), 10), i(c.Origin.Offset, 10)
	}
	return f
}

// decodeReply decodes an XRANGE reply of the stream named sub.
func decodeReply(res rueidis.RedisResult, sub string) ([]streamEntry, error) {
	entries, err := res.ToArray()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, jaego.Unavailable("read changes", err)
	}
	out := make([]streamEntry, len(entries))
	for i, m := range entries {
		if out[i], err = decodeEntry(m, sub); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeEntry decodes one XRANGE entry, [id, [field, value, …]], into its change.
func decodeEntry(m rueidis.RedisMessage, sub string) (streamEntry, error) {
	kv, err := m.ToArray()
	if err != nil || len(kv) != 2 {
		return streamEntry{}, fmt.Errorf("read changes: malformed stream entry: %v", err)
	}
	id, err := kv[0].ToString()
	if err != nil {
		return streamEntry{}, fmt.Errorf("read changes: stream entry id: %w", err)
	}
	ms, seq, err := parseID(id)
	if err != nil {
		return streamEntry{}, err
	}
	fields, err := kv[1].ToArray()
	if err != nil {
		return streamEntry{}, fmt.Errorf("read changes: entry %s: %w", id, err)
	}
	e := streamEntry{ms: ms, seq: seq, id: id, sub: sub}
	c := &e.change
	c.ID = id + "/" + sub
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].ToString()
		v, _ := fields[i+1].ToString()
		n := func() int64 { x, _ := strconv.ParseInt(v, 10, 64); return x }
		switch name {
		case "store":
			c.Store = v
		case "sku":
			c.SKU = v
		case "type":
			if x := n(); x > 0 && x < int64(len(typeCodes)) {
				c.Type = typeCodes[x]
			} else {
				return streamEntry{}, fmt.Errorf("read changes: entry %s: unknown type %q", id, v)
			}
		case "event_id":
			c.EventID = v
		case "delta":
			c.Delta = n()
		case "on_hand":
			c.OnHand = n()
		case "reserved":
			c.Reserved = n()
		case "safety":
			c.Safety = n()
		case "version":
			c.Version = n()
		case "note":
			if c.Note, err = inventory.ParseNote(v); err != nil {
				return streamEntry{}, fmt.Errorf("read changes: entry %s: %w", id, err)
			}
		case "kp", "ko":
			if v == "" {
				continue
			}
			if c.Origin == nil {
				c.Origin = &inventory.Origin{}
			}
			if name == "kp" {
				c.Origin.Partition = int32(n())
			} else {
				c.Origin.Offset = n()
			}
		}
	}
	c.At = time.UnixMilli(int64(ms)).UTC()
	return e, nil
}
