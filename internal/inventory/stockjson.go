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
	if y := s.UpdatedAt.Year(); y < 0 || y > 9999 {
		t, _ := json.Marshal(s.UpdatedAt) // encoding/json refuses such a time; say what it says
		b = append(b, t...)
	} else {
		b = append(b, '"')
		b = s.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if s.Source != "" {
		b = append(b, `,"source":`...)
		b = AppendJSONString(b, s.Source)
	}
	return append(b, '}')
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
