package redis

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// Cursor is a position in the feed: for every (shard group, day) stream, the id of the last
// change returned, inside a fixed range. It travels as an opaque string: the base64 of its
// JSON.
type Cursor struct {
	From int64             `json:"f"`           // unix ms, inclusive
	To   int64             `json:"t"`           // unix ms, exclusive
	Pos  map[string]string `json:"p,omitempty"` // "<g>/<YYYYMMDD>" → last id returned
	// Done lists the streams read to the end of a complete range: later pages skip them.
	Done []string `json:"d,omitempty"`
}

// A webhook deliverer moves a cursor for every message it forms and the hub for every batch
// it streams: through encoding/json a 48-stream cursor cost 31 µs to parse and 16 µs to
// write, a microsecond a delivered change at batch 100 (docs/benchmarks.md). So a cursor
// is written and read by hand, byte for byte as encoding/json writes it (sorted keys, the
// same field order); whatever is not written that way (a string that would need escaping,
// another field order, spaces) goes through encoding/json, so that both accept and refuse
// the same cursors (FuzzCursor).

// String encodes the cursor.
func (c *Cursor) String() string { return c.string(c.sortedKeys()) }

// sortedKeys are the streams of c.Pos in the order they are written.
func (c *Cursor) sortedKeys() []string {
	keys := make([]string, 0, len(c.Pos))
	for k := range c.Pos {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// string encodes the cursor whose c.Pos's keys are keys, sorted.
func (c *Cursor) string(keys []string) string {
	b, ok := c.appendJSON(make([]byte, 0, 32+len(c.Pos)*40+len(c.Done)*16), keys)
	if !ok {
		b, _ = json.Marshal(c)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// appendJSON appends what json.Marshal writes for c, whose c.Pos's keys are keys, sorted;
// false when a string of c would need escaping (json.Marshal writes that one).
func (c *Cursor) appendJSON(b []byte, keys []string) ([]byte, bool) {
	b = append(b, `{"f":`...)
	b = strconv.AppendInt(b, c.From, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, c.To, 10)
	if len(c.Pos) > 0 {
		b = append(b, `,"p":{`...)
		for i, k := range keys {
			v := c.Pos[k]
			if !plain(k) || !plain(v) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":"`...)
			b = append(b, v...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	if len(c.Done) > 0 {
		b = append(b, `,"d":[`...)
		for i, k := range c.Done {
			if !plain(k) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// plain reports whether encoding/json writes s as it is between quotes: printable ASCII
// without quote, backslash and the HTML characters it escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// ParseCursor decodes a cursor made by String.
func ParseCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, inventory.ErrBadCursor
	}
	c, ok := parseCursorJSON(b)
	if !ok {
		c = &Cursor{}
		if err := json.Unmarshal(b, c); err != nil {
			return nil, inventory.ErrBadCursor
		}
	}
	if c.To <= c.From {
		return nil, inventory.ErrBadCursor
	}
	for k, id := range c.Pos {
		if _, _, err := parseID(id); err != nil || !strings.Contains(k, "/") {
			return nil, inventory.ErrBadCursor
		}
	}
	for _, k := range c.Done {
		if !strings.Contains(k, "/") {
			return nil, inventory.ErrBadCursor
		}
	}
	return c, nil
}

// parseCursorJSON reads b when it is written as appendJSON writes (else false, and b is
// for encoding/json to read), into what json.Unmarshal would make of it.
func parseCursorJSON(b []byte) (*Cursor, bool) {
	r := cursorReader{b: b}
	c := &Cursor{}
	if !r.lit(`{"f":`) || !r.int(&c.From) || !r.lit(`,"t":`) || !r.int(&c.To) {
		return nil, false
	}
	if r.lit(`,"p":{`) {
		c.Pos = map[string]string{}
		for first := true; !r.lit("}"); first = false {
			var k, v string
			if !first && !r.lit(",") || !r.str(&k) || !r.lit(":") || !r.str(&v) {
				return nil, false
			}
			c.Pos[k] = v
		}
	}
	if r.lit(`,"d":[`) {
		c.Done = []string{}
		for first := true; !r.lit("]"); first = false {
			var k string
			if !first && !r.lit(",") || !r.str(&k) {
				return nil, false
			}
			c.Done = append(c.Done, k)
		}
	}
	return c, r.lit("}") && len(r.b) == 0
}

type cursorReader struct{ b []byte }

func (r *cursorReader) lit(s string) bool {
	if len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// int reads a JSON integer as encoding/json reads it into an int64 (no leading zeros, no
// fraction or exponent, in range).
func (r *cursorReader) int(v *int64) bool {
	i := 0
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9' {
		i++
	}
	if i == start || r.b[start] == '0' && i > start+1 {
		return false
	}
	n, err := strconv.ParseInt(string(r.b[:i]), 10, 64)
	if err != nil {
		return false
	}
	*v, r.b = n, r.b[i:]
	return true
}

// str reads a JSON string that holds only what plain allows.
func (r *cursorReader) str(v *string) bool {
	if len(r.b) == 0 || r.b[0] != '"' {
		return false
	}
	for i := 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			*v, r.b = string(r.b[1:i]), r.b[i+1:]
			return true
		case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return false
}

// NewCursor is the start of the range [from, to).
func NewCursor(from, to time.Time) *Cursor {
	return &Cursor{From: from.UnixMilli(), To: to.UnixMilli(), Pos: map[string]string{}}
}

func (c *Cursor) clone() *Cursor {
	n := &Cursor{From: c.From, To: c.To, Pos: make(map[string]string, len(c.Pos)), Done: slices.Clone(c.Done)}
	for k, v := range c.Pos {
		n.Pos[k] = v
	}
	return n
}
