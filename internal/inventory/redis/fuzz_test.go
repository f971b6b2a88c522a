package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

// FuzzParseCursor: a cursor string from a client either parses to a cursor that encodes
// back to one that parses to the same, or is ErrBadCursor — never a panic, never another
// error. Seeds: testdata/fuzz/FuzzParseCursor.
func FuzzParseCursor(f *testing.F) {
	c := invredis.NewCursor(time.UnixMilli(1764000000000), time.UnixMilli(1764086400000))
	c.Pos["3/20261125"] = "1764000001234-7"
	c.Done = []string{"4/20261124"}
	for _, s := range []string{c.String(), "", "%%%", "e30", "eyJmIjoxLCJ0IjowfQ", "eyJmIjoxLCJ0IjoyLCJwIjp7IngiOiIxLTEifX0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cur, err := invredis.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, inventory.ErrBadCursor) {
				t.Fatalf("%q: %v, want ErrBadCursor", s, err)
			}
			return
		}
		again, err := invredis.ParseCursor(cur.String())
		if err != nil || again.String() != cur.String() {
			t.Fatalf("%q: re-encoded %q did not parse back (%v)", s, cur.String(), err)
		}
	})
}
