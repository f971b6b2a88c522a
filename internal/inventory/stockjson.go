package inventory

import (
	"encoding/json"
	"strconv"
	"time"
)

// AppendJSON appends s as encoding/json marshals it, byte for byte (FuzzStockJSON holds it
// to that). A 1,000-SKU store lookup spent half its CPU in encoding/json's reflection;
// this writes the same answer without it.
func (s Stock) AppendJSON(b []byte) []byte {
	b = append(b, `{"store":`...)
	b = AppendJSONString(b, s.Store)
	b = append(b, `,"sku":`...)
	b = AppendJSONString(b, s.SKU)
	b = append(b, `,"on_hand":`...)
	b = strconv.AppendInt(b, s.OnHand, 10)
	b = append(b, `,"reserved":`...)
	b = strconv.AppendInt(b, s.Reserved, 10)
	b = append(b, `,"safety":`...)
	b = strconv.AppendInt(b, s.Safety, 10)
	b = append(b, `,"available":`...)
	b = strconv.AppendInt(b, s.Available, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, s.Version, 10)
	b = append(b, `,"updated_at":`...)
	b = AppendJSONTime(b, s.UpdatedAt)
	if s.Source != "" {
		b = append(b, `,"source":`...)
		b = AppendJSONString(b, s.Source)
	}
	return append(b, '}')
}

// AppendJSON appends c as encoding/json marshals it, byte for byte (FuzzChangeJSON holds
// it to that): the change feed's NDJSON stream and the webhook bodies write thousands of
// changes a second, which encoding/json's reflection made a tenth of their cost.
func (c Change) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, c.ID)
	b = append(b, `,"store":`...)
	b = AppendJSONString(b, c.Store)
	b = append(b, `,"sku":`...)
	b = AppendJSONString(b, c.SKU)
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, string(c.Type))
	b = append(b, `,"delta":`...)
	b = strconv.AppendInt(b, c.Delta, 10)
	b = append(b, `,"on_hand":`...)
	b = strconv.AppendInt(b, c.OnHand, 10)
	b = append(b, `,"reserved":`...)
	b = strconv.AppendInt(b, c.Reserved, 10)
	b = append(b, `,"safety":`...)
	b = strconv.AppendInt(b, c.Safety, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"event_id":`...)
	b = AppendJSONString(b, c.EventID)
	b = append(b, `,"at":`...)
	b = AppendJSONTime(b, c.At)
	return append(b, '}')
}

// AppendChangesJSON appends cs as a JSON array of AppendJSON's objects.
func AppendChangesJSON(b []byte, cs []Change) []byte {
	b = append(b, '[')
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = c.AppendJSON(b)
	}
	return append(b, ']')
}

// AppendJSONTime appends t as encoding/json writes a time.Time (RFC 3339 with nanoseconds).
func AppendJSONTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		q, _ := json.Marshal(t) // encoding/json refuses such a time; say what it says
		return append(b, q...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendJSONString appends v as a JSON string, as encoding/json writes it: identifiers
// (the common case, letters, digits and "_.-") as they are, anything else through
// encoding/json, which escapes it.
func AppendJSONString(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(v)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}
