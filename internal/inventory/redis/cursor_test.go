package redis

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// FuzzCursor: every cursor has one binary form, and a cursor of either form reads back as
// itself. b is read as a binary form (after its version byte) and as an earlier jaego's
// JSON: what the binary reader takes is written back byte for byte; what the JSON reader
// takes is written (in binary when it can be) and reads back as the same cursor. Seeds: a
// 48-stream cursor in both forms, and each way of not being one.
func FuzzCursor(f *testing.F) {
	cur, _ := benchCursor()
	c, _ := ParseCursor(cur)
	bin, _ := base64Decode(cur)
	canonical, _ := json.Marshal(c)
	f.Add(bin)
	f.Add(canonical)
	for _, s := range []string{`{"f":1,"t":2}`, `{"f":-0,"t":01}`, `{"f":1,"t":2,"p":{}}`, `{"f":1,"t":2,"d":[]}`,
		`{"f":1,"t":2,"p":{"a/1":"1-1","a/1":"2-2"},"d":["x/1","y<2"]}`, `{"f":1,"t":2,"p":{"a\u002f1":"1-1"}}`, `{"f":1,"t":2} `,
		`{"f":1e3,"t":2}`, `{"t":2,"f":1}`, `{"f":9223372036854775808,"t":2}`, `{"f":1,"t":2,"p":{"é/1":"1-1"}}`, `{"F":1,"t":2}`,
		`{"f":-86400001,"t":5,"p":{"3/19691231":"0-1","04/20261204":"1-1"}}`, `{"f":1,"t":2,"p":{"3/20260230":"1-1","4/20261204":"01-1"}}`,
		"\x01\x02\x02\x01\x00\x00\x00\x00\x00", "\x01\x02\x82\x00\x00\x00", "\x01\x02\x02\x02\x01\x00\x00\x00\x01\x00\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 && b[0] == cursorBinary {
			if c := parseBinary(b); c != nil {
				if got := c.String(); got != base64.RawURLEncoding.EncodeToString(b) {
					t.Fatalf("%x: read as %+v, written as %x", b, c, mustDecode(t, got))
				}
				checkReadsBack(t, c)
			}
			return
		}
		if c, err := ParseCursor(base64.RawURLEncoding.EncodeToString(b)); err == nil {
			checkReadsBack(t, c)
		}
	})
}

// checkReadsBack: c written and read is c (an absent map or list and an empty one alike),
// and a cursor its form can hold is written in binary.
func checkReadsBack(t *testing.T, c *Cursor) {
	t.Helper()
	s := c.String()
	back, err := ParseCursor(s)
	if err != nil {
		t.Fatalf("%+v: written as %q, refused: %v", c, s, err)
	}
	norm := func(c *Cursor) Cursor {
		n := *c
		if len(n.Pos) == 0 {
			n.Pos = nil
		}
		if len(n.Done) == 0 {
			n.Done = nil
		}
		return n
	}
	if !reflect.DeepEqual(norm(back), norm(c)) {
		t.Fatalf("%+v: written and read as %+v", c, back)
	}
	if _, ok := c.appendBinary(nil, c.sortedKeys()); ok != (mustDecode(t, s)[0] == cursorBinary) {
		t.Fatalf("%+v: the binary form can hold it: %v, written as %q", c, ok, s)
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64Decode(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

// TestCursorForms: a cursor jaego gave out as JSON reads as the same cursor in binary, at
// a sixth of the size; a key or id the binary form cannot hold stays JSON; each way a
// binary form can be malformed or written twice over is refused.
func TestCursorForms(t *testing.T) {
	cur, _ := benchCursor()
	c, err := ParseCursor(cur)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(c)
	old, err := ParseCursor(base64.RawURLEncoding.EncodeToString(js))
	if err != nil || old.String() != cur {
		t.Fatalf("the JSON form read as %+v (%v), written as %q, want %q", old, err, old.String(), cur)
	}
	if b := mustDecode(t, cur); b[0] != cursorBinary || len(cur)*6 > len(base64.RawURLEncoding.EncodeToString(js)) {
		t.Fatalf("48 streams: %d characters in binary, %d in JSON", len(cur), len(base64.RawURLEncoding.EncodeToString(js)))
	}
	for _, odd := range []*Cursor{
		{From: 1, To: 2, Pos: map[string]string{"3/20260230": "1-1"}}, // no such day
		{From: 1, To: 2, Pos: map[string]string{"03/20261204": "1-1"}},
		{From: 1, To: 2, Pos: map[string]string{"3/20261204": "01-1"}},
		{From: 1, To: 2, Pos: map[string]string{"3/20261204": "17"}}, // an id without its seq
		{From: 1, To: 2, Done: []string{"x/20261204"}},
		{From: 1, To: 2, Pos: map[string]string{"3/20261204": "5-18446744073709551615"}}, // a seq of 20 digits
		{From: 1, To: 2, Pos: map[string]string{"3/20261204": "4611686018427387904-0"}},  // 2⁶² ms
		{From: -1 << 63, To: 0},
	} {
		s := odd.String()
		if b := mustDecode(t, s); b[0] != '{' {
			t.Fatalf("%+v written as %x", odd, b)
		}
		checkReadsBack(t, odd)
	}
	for _, c := range []*Cursor{
		{From: -86400001, To: 5, Pos: map[string]string{"0/19691231": "0-0", "4294967295/99991231": "4611686018427387903-9999999999999999999"}},
		{From: 1, To: 2, Pos: map[string]string{"7/00010101": "5-1"}, Done: []string{"9/20261204", "1/20261203", "9/20261204"}},
	} {
		if b := mustDecode(t, c.String()); b[0] != cursorBinary {
			t.Fatalf("%+v written as %x", c, b)
		}
		checkReadsBack(t, c)
	}
	good := mustDecode(t, (&Cursor{From: 0, To: 1, Pos: map[string]string{"1/19700101": "5-1", "2/19700101": "6-2"}}).String())
	for name, b := range map[string][]byte{
		"trailing":      append(slices.Clone(good), 0),
		"cut":           good[:len(good)-1],
		"overlong":      {1, 0x80, 0x00, 1, 0, 0},
		"empty range":   {1, 0, 0, 0, 0},
		"unsorted":      {1, 0, 1, 2, 2, 0, 6, 2, 1, 0, 10, 1, 0},
		"twice":         {1, 0, 1, 2, 1, 0, 10, 1, 1, 0, 12, 2, 0},
		"year 10000":    {1, 0, 1, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0},
		"group > 2^32":  {1, 0, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0},
		"streams > len": {1, 0, 1, 0x7f, 1, 0, 0, 0},
	} {
		if _, err := ParseCursor(base64.RawURLEncoding.EncodeToString(b)); err == nil {
			t.Errorf("%s (%x): read", name, b)
		}
	}
	if back, err := ParseCursor(base64.RawURLEncoding.EncodeToString(good)); err != nil || back.Pos["2/19700101"] != "6-2" {
		t.Fatalf("the well-formed one: %+v, %v", back, err)
	}
}

// benchCursor is an open-ended cursor over 48 groups of one day, and 100 changes after it.
func benchCursor() (string, []inventory.Change) {
	c := NewCursor(time.UnixMilli(1764806400000), time.UnixMilli(1764806400000).Add(100*365*24*time.Hour))
	for g := range 48 {
		c.Pos[fmt.Sprintf("%d/20261204", g)] = fmt.Sprintf("1764850000%03d-%d", g, g*7)
	}
	var changes []inventory.Change
	for i := range 100 {
		changes = append(changes, inventory.Change{ID: fmt.Sprintf("1764850001%03d-%d/%d/20261204", i, i, i%48)})
	}
	return c.String(), changes
}

// BenchmarkAdvance: a cursor read, moved past 100 changes and written.
func BenchmarkAdvance(b *testing.B) {
	cur, changes := benchCursor()
	f := &Feed{}
	for b.Loop() {
		if _, _, err := f.Advance(cur, changes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMoverPast: a cursor moved past n more changes of 48 streams and written (100:
// a batch-100 webhook message's position; 1000: the hub's after a page).
func BenchmarkMoverPast(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			cur, _ := benchCursor()
			const batches = 64
			changes := make([][]inventory.Change, batches)
			for k := range changes {
				for i := range n {
					changes[k] = append(changes[k], inventory.Change{ID: fmt.Sprintf("%d-%d/%d/20261204", 1764850001000+k*n+i, i, i%48)})
				}
			}
			var m *mover
			k := 0
			for b.Loop() {
				if k%batches == 0 {
					m, _ = newMover(cur)
				}
				if _, err := m.Past(changes[k%batches]); err != nil {
					b.Fatal(err)
				}
				k++
			}
		})
	}
}

func BenchmarkCursorString(b *testing.B) {
	cur, _ := benchCursor()
	c, _ := ParseCursor(cur)
	for b.Loop() {
		_ = c.String()
	}
}

func BenchmarkParseCursor(b *testing.B) {
	cur, _ := benchCursor()
	for b.Loop() {
		if _, err := ParseCursor(cur); err != nil {
			b.Fatal(err)
		}
	}
}

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestMoverPast: a mover moved batch by batch lands where Advance, which walks every change,
// does over the same changes: streams the cursor already holds (changes it is past, and
// past), streams it has not read, changes of one stream in their order and of the streams
// interleaved; and a malformed id is an error.
func TestMoverPast(t *testing.T) {
	f := &Feed{}
	cur, _ := benchCursor()                           // 48 streams of 20261204, at 1764850000000+g ms
	rnd := rand.New(rand.NewPCG(7, uint64(len(cur)))) //nolint:gosec // a test's shuffle
	for round := range 50 {
		next := map[string]uint64{} // per stream, the next id's ms
		var changes []inventory.Change
		for range 1 + rnd.IntN(400) {
			g, day := rnd.IntN(56), "20261204" // groups 48–55: not in the cursor
			if rnd.IntN(8) == 0 {
				day = "20261205"
			}
			sub := strconv.Itoa(g) + "/" + day
			if _, ok := next[sub]; !ok {
				next[sub] = 1764850000000 + uint64(rnd.IntN(80)) // some behind the cursor
			}
			next[sub] += 1 + uint64(rnd.IntN(2))
			changes = append(changes, inventory.Change{ID: fmt.Sprintf("%d-%d/%s", next[sub], rnd.IntN(2), sub)})
		}
		_, want, err := f.Advance(cur, changes)
		if err != nil {
			t.Fatal(err)
		}
		m, err := newMover(cur)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for rest := changes; len(rest) > 0; {
			n := min(len(rest), 1+rnd.IntN(120))
			if got, err = m.Past(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if got != want {
			a, _ := ParseCursor(got)
			b, _ := ParseCursor(want)
			t.Fatalf("round %d: the mover's cursor\n%+v\nAdvance's\n%+v", round, a, b)
		}
		if c, err := ParseCursor(got); err != nil || c.String() != got { // the mover's writer is Cursor's
			t.Fatalf("round %d: the mover wrote %q, read (%v) and written again %q", round, got, err, c.String())
		}
	}
	// A cursor of an earlier jaego's JSON, with a stream the binary form cannot hold: moved,
	// it stays JSON and moves.
	odd := &Cursor{From: 1764806400000, To: 1764806400000 + 1<<40, Pos: map[string]string{"x/20251204": "1764850000000-0", "1/20251204": "1764850000000-0"}}
	om, err := newMover(odd.String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := om.Past([]inventory.Change{{ID: "1764850000005-0/1/20251204"}, {ID: "1764850000007-1/x/20251204"}, {ID: "1764850000009-0/2/20251204"}})
	moved, perr := ParseCursor(s)
	if err != nil || perr != nil || mustDecode(t, s)[0] != '{' ||
		!reflect.DeepEqual(moved.Pos, map[string]string{"x/20251204": "1764850000007-1", "1/20251204": "1764850000005-0", "2/20251204": "1764850000009-0"}) {
		t.Fatalf("the JSON cursor moved to %q (%v, %v): %+v", s, err, perr, moved)
	}
	m, _ := newMover(cur)
	if _, err := m.Past([]inventory.Change{{ID: "1764850009999-0/1/20261204"}, {ID: "1764850009999-1"}}); err == nil {
		t.Fatal("a change id without its stream moved the cursor")
	}
}
