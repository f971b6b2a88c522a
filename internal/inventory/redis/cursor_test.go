package redis

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
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

// BenchmarkMoverPast: a cursor moved past 100 more changes and written (a webhook
// message's position).
func BenchmarkMoverPast(b *testing.B) {
	cur, _ := benchCursor()
	const batches = 512
	changes := make([][]inventory.Change, batches)
	for k := range changes {
		for i := range 100 {
			changes[k] = append(changes[k], inventory.Change{ID: fmt.Sprintf("%d-%d/%d/20261204", 1764850001000+k*100+i, i, i%48)})
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
