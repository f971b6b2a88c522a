package redis

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// Cursor is a position in the feed: for every (shard group, day) stream, the id of the last
// change returned, inside a fixed range. It travels as an opaque string (see String).
type Cursor struct {
	From int64             `json:"f"`           // unix ms, inclusive
	To   int64             `json:"t"`           // unix ms, exclusive
	Pos  map[string]string `json:"p,omitempty"` // "<g>/<YYYYMMDD>" → last id returned
	// Done lists the streams read to the end of a complete range: later pages skip them.
	Done []string `json:"d,omitempty"`
}

// A cursor is the base64 (URL alphabet, unpadded) of a compact binary form: a 48-stream
// cursor is ~0.4 KB where its JSON was 2.6 KB, and it travels in every feed page, SSE event
// id, webhook body, pending webhook message and subscription position. The form, after
// the version byte 1 (a JSON cursor's first byte is '{'):
//
//	From (varint), To−From (uvarint, > 0),
//	the number of streams of Pos (uvarint), then per stream in key order:
//	  group (uvarint), day − the previous stream's day (varint; the first's from From's
//	  day), the id's ms − the previous stream's (varint; the first's from From), the id's
//	  seq (uvarint),
//	the number of streams of Done (uvarint), then per stream in Done's order:
//	  group (uvarint), day − the previous day (varint, continuing from Pos's last).
//
// A day is days since 1970-01-01 (UTC), written as YYYYMMDD in a stream's key. Every cursor
// has one binary form: a parse writes what it read back and refuses it if that differs
// (FuzzCursor). A cursor the form cannot hold (a key or id not written as the feed writes
// them) is written as the base64 of its JSON, the form of the cursors jaego gave out before
// 2026-12-06, which it still reads.
const cursorBinary = 1

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
	var buf [512]byte
	b, ok := c.appendBinary(buf[:0], keys)
	if !ok {
		b, _ = json.Marshal(c)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

const dayMs = 24 * 60 * 60 * 1000

// appendBinary appends c's binary form, whose c.Pos's keys are keys, sorted; false when c
// has a stream or id it cannot hold.
func (c *Cursor) appendBinary(b []byte, keys []string) ([]byte, bool) {
	if !rangeFits(c.From, c.To) {
		return nil, false
	}
	w := newBinWriter(b, c.From, c.To, len(keys))
	for _, k := range keys {
		g, day, ok := splitStream(k)
		ms, seq, okID := splitID(c.Pos[k])
		if !ok || !okID {
			return nil, false
		}
		w.stream(g, day, ms, seq)
	}
	w.doneCount(len(c.Done))
	for _, k := range c.Done {
		g, day, ok := splitStream(k)
		if !ok {
			return nil, false
		}
		w.done(g, day)
	}
	return w.b, true
}

// binWriter writes the binary form of a range that rangeFits: the range and the number
// of streams, then stream for each stream in key order, then doneCount and done for each
// done stream.
type binWriter struct {
	b            []byte
	prev, prevMs int64 // the day and ms the next stream's are written from
}

func newBinWriter(b []byte, from, to int64, streams int) binWriter {
	b = append(b, cursorBinary)
	b = binary.AppendVarint(b, from)
	b = binary.AppendUvarint(b, uint64(to-from))
	b = binary.AppendUvarint(b, uint64(streams))
	return binWriter{b: b, prev: floorDiv(from, dayMs), prevMs: from}
}

func (w *binWriter) stream(g uint64, day, ms int64, seq uint64) {
	w.b = binary.AppendUvarint(w.b, g)
	w.b = binary.AppendVarint(w.b, day-w.prev)
	w.b = binary.AppendVarint(w.b, ms-w.prevMs)
	w.b = binary.AppendUvarint(w.b, seq)
	w.prev, w.prevMs = day, ms
}

func (w *binWriter) doneCount(n int) { w.b = binary.AppendUvarint(w.b, uint64(n)) }

func (w *binWriter) done(g uint64, day int64) {
	w.b = binary.AppendUvarint(w.b, g)
	w.b = binary.AppendVarint(w.b, day-w.prev)
	w.prev = day
}

// String is the cursor written.
func (w *binWriter) String() string { return base64.RawURLEncoding.EncodeToString(w.b) }

// rangeFits: the binary form holds ranges that start within ±2⁶² ms and end after they
// start, at most 2⁶² ms after.
func rangeFits(from, to int64) bool {
	return from >= -1<<62 && from <= 1<<62 && to > from && to-from <= 1<<62
}

// splitStream reads a stream's key as the feed writes it, "<group>/<YYYYMMDD>" (a group
// below 2³², a day of the years 0001–9999).
func splitStream(k string) (g uint64, day int64, ok bool) {
	i := strings.IndexByte(k, '/')
	if i < 0 || len(k) != i+9 {
		return 0, 0, false
	}
	if g, ok = decimal(k[:i]); !ok || g > 1<<32-1 {
		return 0, 0, false
	}
	var d [8]int64
	for j := range d {
		c := k[i+1+j]
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		d[j] = int64(c - '0')
	}
	y, m, dd := d[0]*1000+d[1]*100+d[2]*10+d[3], d[4]*10+d[5], d[6]*10+d[7]
	if y < 1 || m < 1 || m > 12 || dd < 1 || dd > daysIn(y, m) {
		return 0, 0, false
	}
	return g, daysFromCivil(y, m, dd), true
}

// splitID reads a stream id as Redis writes it, "<ms>-<seq>" (ms below 2⁶², seq of 19
// digits at most).
func splitID(id string) (ms int64, seq uint64, ok bool) {
	i := strings.IndexByte(id, '-')
	if i < 0 {
		return 0, 0, false
	}
	m, ok1 := decimal(id[:i])
	seq, ok2 := decimal(id[i+1:])
	return int64(m), seq, ok1 && ok2 && m < 1<<62
}

// decimal reads s as a number of 1–19 digits without leading zeros.
func decimal(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil and civilFromDays convert between a proleptic Gregorian date and days
// since 1970-01-01 (Howard Hinnant's algorithms, chrono-compatible low-level date
// algorithms).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// ParseCursor decodes a cursor made by String (or the JSON form of an earlier jaego).
func ParseCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, inventory.ErrBadCursor
	}
	var c *Cursor
	if b[0] == cursorBinary {
		if c = parseBinary(b); c == nil {
			return nil, inventory.ErrBadCursor
		}
		return c, nil
	}
	c = &Cursor{}
	if err := json.Unmarshal(b, c); err != nil || c.To <= c.From {
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

// parseBinary reads b, a cursor's binary form; nil unless b is exactly what appendBinary
// writes for what it holds.
func parseBinary(b []byte) *Cursor {
	r := binReader{b: b[1:]}
	c := &Cursor{From: r.varint()}
	span := r.uvarint()
	if r.bad || span > 1<<62 || !rangeFits(c.From, c.From+int64(span)) {
		return nil
	}
	c.To = c.From + int64(span)
	n := r.uvarint()
	if n > uint64(len(r.b)) { // a stream takes 4 bytes at least
		return nil
	}
	c.Pos = make(map[string]string, n)
	keys := make([]string, 0, n)
	day, ms := floorDiv(c.From, dayMs), c.From
	var buf [48]byte
	for range n {
		g := r.uvarint()
		day += r.varint()
		delta, seq := r.varint(), r.uvarint()
		if r.bad || delta > 1<<62 || delta < -1<<62 {
			return nil
		}
		ms += delta
		k, ok := streamKey(buf[:0], g, day)
		if !ok || ms < 0 {
			return nil
		}
		key := string(k)
		id := strconv.AppendInt(buf[:0], ms, 10)
		id = strconv.AppendUint(append(id, '-'), seq, 10)
		c.Pos[key] = string(id)
		keys = append(keys, key)
	}
	if n = r.uvarint(); n > uint64(len(r.b)) {
		return nil
	}
	for range n {
		g := r.uvarint()
		day += r.varint()
		k, ok := streamKey(buf[:0], g, day)
		if !ok || r.bad {
			return nil
		}
		c.Done = append(c.Done, string(k))
	}
	if r.bad || len(r.b) != 0 || len(c.Pos) != len(keys) || !slices.IsSorted(keys) {
		return nil // (a key twice: fewer in Pos)
	}
	// One form per cursor: what was read must be what is written for it (no overlong
	// varint, no id or range the form does not hold).
	var again [512]byte
	if w, ok := c.appendBinary(again[:0], keys); !ok || string(w) != string(b) {
		return nil
	}
	return c
}

// streamKey appends the key of group g's stream of day (days since 1970-01-01) to b.
func streamKey(b []byte, g uint64, day int64) ([]byte, bool) {
	if g > 1<<32-1 || day < daysFromCivil(1, 1, 1) || day > daysFromCivil(9999, 12, 31) {
		return nil, false
	}
	y, m, d := civilFromDays(day)
	b = strconv.AppendUint(b, g, 10)
	return append(b, '/', byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10),
		byte('0'+m/10), byte('0'+m%10), byte('0'+d/10), byte('0'+d%10)), true
}

// binReader reads varints until one is malformed (then bad, and zeros).
type binReader struct {
	b   []byte
	bad bool
}

func (r *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a zigzag varint (binary.AppendVarint's).
func (r *binReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
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
