package redis

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// FuzzCursorJSON: the hand-written cursor JSON agrees with encoding/json. What the fast
// reader accepts, json.Unmarshal reads to the same cursor; what json.Unmarshal reads, the
// fast writer writes as json.Marshal does (or leaves to it). Seeds: below, a canonical
// cursor and each way of not being one.
func FuzzCursorJSON(f *testing.F) {
	cur, _ := benchCursor()
	c, _ := ParseCursor(cur)
	canonical, _ := json.Marshal(c)
	for _, s := range []string{string(canonical), `{"f":1,"t":2}`, `{"f":-0,"t":01}`, `{"f":1,"t":2,"p":{}}`, `{"f":1,"t":2,"d":[]}`,
		`{"f":1,"t":2,"p":{"a/1":"1-1","a/1":"2-2"},"d":["x/1","y<2"]}`, `{"f":1,"t":2,"p":{"a\u002f1":"1-1"}}`, `{"f":1,"t":2} `,
		`{"f":1e3,"t":2}`, `{"t":2,"f":1}`, `{"f":9223372036854775808,"t":2}`, `{"f":1,"t":2,"p":{"é/1":"1-1"}}`, `{"F":1,"t":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ref Cursor
		refErr := json.Unmarshal(b, &ref)
		if fast, ok := parseCursorJSON(b); ok {
			if refErr != nil {
				t.Fatalf("%q: read by hand, refused by encoding/json (%v)", b, refErr)
			}
			if !reflect.DeepEqual(*fast, ref) {
				t.Fatalf("%q: read by hand as %+v, by encoding/json as %+v", b, *fast, ref)
			}
		}
		if refErr != nil {
			return
		}
		want, err := json.Marshal(&ref)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := ref.appendJSON(nil, ref.sortedKeys()); ok && string(got) != string(want) {
			t.Fatalf("%+v: written by hand as %s, by encoding/json as %s", ref, got, want)
		}
		if got, err := base64Decode(ref.String()); err != nil || string(got) != string(want) {
			t.Fatalf("%+v: String() holds %s, encoding/json writes %s", ref, got, want)
		}
	})
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
	}
	m, _ := newMover(cur)
	if _, err := m.Past([]inventory.Change{{ID: "1764850009999-0/1/20261204"}, {ID: "1764850009999-1"}}); err == nil {
		t.Fatal("a change id without its stream moved the cursor")
	}
}
